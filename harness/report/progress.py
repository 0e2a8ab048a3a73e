"""Progress on stderr while kernels download, boot and are checked: one renderer of the
typed events (events.py) of both.

One line per thing that happened (a boot, a check's verdict with its time, a failure with
its detail, a VM's end), readable in a CI log. On a terminal, a status line below them
says per kernel how many checks are done and which one is running, and for how long.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time

from ..events import (
    AgentUp,
    BootStarted,
    CheckFinished,
    ChecksPlanned,
    CheckStarted,
    DownloadProgress,
    Event,
    FetchEvent,
    KernelFetchFailed,
    KernelReady,
    KernelResolving,
    Note,
    RunPlanned,
    VMEnded,
)

TICK = 1.0  # seconds between redraws of the status line
FETCH_EVENTS = (KernelResolving, DownloadProgress, KernelReady, KernelFetchFailed)


class Progress:
    def __init__(self, stream=None, quiet: bool = False, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet = quiet
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._total: dict[str, int] = {}  # per kernel: checks expected, and done
        self._done: dict[str, int] = {}
        self._running: dict[str, tuple[str, float]] = {}  # kernel -> (check or phase, since)
        self._status = ""  # the status line on screen (tty only)
        self._ticker: threading.Thread | None = None
        self._t0 = time.monotonic()

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self._t0:6.1f}s]"

    def _write(self, line: str) -> None:
        """A permanent line (lock held): above the status line, which is drawn again."""
        if self.tty and self._status:
            self.stream.write("\r\x1b[2K")
        self.stream.write(line + "\n")
        self._draw()

    def _draw(self) -> None:
        if not self.tty:
            self.stream.flush()
            return
        now = time.monotonic()
        parts = []
        for k, (what, since) in self._running.items():
            count = f" {self._done.get(k, 0)}/{max(self._total.get(k, 0), self._done.get(k, 0))}"
            parts.append(f"{k}{count} {what} {now - since:.0f}s")
        width = shutil.get_terminal_size((100, 20)).columns - 1
        status = " | ".join(parts)[:width]
        self.stream.write("\r\x1b[2K" + status)
        self._status = status
        self.stream.flush()

    def _tick(self) -> None:
        while True:
            time.sleep(TICK)
            with self._lock:
                if not self._running:
                    self._ticker = None
                    return
                self._draw()

    def _download(self, ev: DownloadProgress) -> None:
        """A download's bar, redrawn at most twice a second on a terminal (else a line
        every five seconds), and one line when it is done. Lock held."""
        label, done, total = ev.label, ev.done, ev.total
        now = time.monotonic()
        finished = total and done >= total
        if not finished and now - self._last.get(label, 0) < (0.5 if self.tty else 5):
            return
        self._last[label] = now
        mb = done / 1e6
        if total:
            frac = min(1.0, done / total)
            bar = "#" * int(frac * 24)
            text = f"{self._stamp()} download {label} [{bar:<24}] {mb:6.1f}/{total / 1e6:.1f} MB"
        else:
            text = f"{self._stamp()} download {label} {mb:6.1f} MB"
        if self.tty and not finished:
            since = self._running.get(label, ("", now))[1]
            self._running[label] = (f"{mb:.0f}/{total / 1e6:.0f} MB", since)
            self._draw()
            return
        self._running.pop(label, None)
        if finished or total == 0 or self.tty:
            self._write(text)

    def _fetch_event(self, ev: FetchEvent) -> None:
        """Preparing kernels: what is resolved, downloads, what is ready. Lock held.
        A failure shows nothing here: its error is raised to the caller, which prints it."""
        if isinstance(ev, DownloadProgress):
            self._download(ev)
        elif isinstance(ev, KernelResolving):
            what = (f"locked build {ev.locked_release} ({ev.origin})" if ev.locked_release
                    else "resolving in the signed archive index")
            self._write(f"{self._stamp()} {ev.kernel:>8} {'fetch':<6} {what}")
        elif isinstance(ev, KernelReady):
            locked = ", locked" if ev.locked else ""
            self._write(f"{self._stamp()} {ev.kernel:>8} {'ready':<6} {ev.release} "
                        f"({ev.origin}{locked})")

    def event(self, ev: Event | FetchEvent) -> None:
        """A kernel's preparation (fetch events) and run as it goes: boot, the agent up,
        each check's verdict as it comes (failures with their detail), the end. One line
        each, readable in a CI log."""
        if self.quiet:
            return
        if isinstance(ev, FETCH_EVENTS):
            with self._lock:
                self._fetch_event(ev)
            return
        k = ev.kernel
        now = time.monotonic()
        with self._lock:
            if isinstance(ev, RunPlanned):
                line = (f"{ev.kernels} kernel(s), {ev.jobs} at a time, {ev.cpus} vCPU(s) each "
                        f"({ev.why})")
                self._write(f"{self._stamp()} {line}")
                return
            if isinstance(ev, BootStarted):
                self._total[k], self._done[k] = ev.checks, 0
                self._running[k] = ("booting", now)
                line = f"boot   {ev.release} ({ev.accel}), {ev.checks} check(s)"
            elif isinstance(ev, AgentUp):
                self._running[k] = ("up", now)
                up = f" after {ev.boot_seconds:.1f}s of guest time" if ev.boot_seconds else ""
                line = f"up{up}"
            elif isinstance(ev, ChecksPlanned):
                self._total[k] = self._total.get(k, 0) + max(0, ev.programs - 1)
                return
            elif isinstance(ev, CheckStarted):
                self._running[k] = (ev.subject, now)
                self._draw()
                return
            elif isinstance(ev, CheckFinished):
                self._done[k] = self._done.get(k, 0) + 1
                took = f" {ev.duration:.1f}s" if ev.duration is not None else ""
                line = f"[{self._done[k]}/{max(self._total.get(k, 0), self._done[k])}] " \
                       f"{ev.status:<7} {ev.subject}{took}"
                if ev.status not in ("pass", "skip"):
                    line += f": {' '.join(ev.detail.split())[:160]}"
            elif isinstance(ev, Note):
                line = f"note   {ev.text}"
            elif isinstance(ev, VMEnded):
                self._running.pop(k, None)
                line = f"done   {ev.as_expected}/{ev.cells} as expected in {ev.seconds:.0f}s"
            else:
                return
            self._write(f"{self._stamp()} {k:>8} {line}")
            if self.tty and self._running and self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
                self._ticker.start()
            if self.tty and not self._running and self._status:
                self.stream.write("\r\x1b[2K")
                self._status = ""
                self.stream.flush()

    def note(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                self._write(f"{self._stamp()} {text}")
