"""Progress lines on stderr while kernels download, boot and are checked."""

from __future__ import annotations

import sys
import threading
import time

from ..events import AgentUp, BootStarted, CheckFinished, ChecksPlanned, Event, Note, VMEnded


class Progress:
    def __init__(self, stream=None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._total: dict[str, int] = {}  # per kernel: checks expected, and done
        self._done: dict[str, int] = {}
        self._t0 = time.monotonic()

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self._t0:6.1f}s]"

    def download(self, label: str, done: int, total: int) -> None:
        if self.quiet:
            return
        with self._lock:
            now = time.monotonic()
            finished = total and done >= total
            if not finished and now - self._last.get(label, 0) < (0.2 if self.tty else 5):
                return
            self._last[label] = now
            mb = done / 1e6
            if total:
                frac = min(1.0, done / total)
                bar = "#" * int(frac * 24)
                text = f"{self._stamp()} download {label} [{bar:<24}] {mb:6.1f}/{total / 1e6:.1f} MB"
            else:
                text = f"{self._stamp()} download {label} {mb:6.1f} MB"
            if self.tty:
                end = "\n" if finished else "\r"
                self.stream.write("\x1b[2K" + text + end)
            elif finished or total == 0:
                self.stream.write(text + "\n")
            self.stream.flush()

    def kernel(self, kernel_id: str, phase: str, detail: str) -> None:
        if self.quiet:
            return
        with self._lock:
            self.stream.write(f"{self._stamp()} {kernel_id:>8} {phase:<6} {detail}\n")
            self.stream.flush()

    def event(self, ev: Event) -> None:
        """A kernel's run as it goes: boot, the agent up, each check's verdict as it comes
        (failures with their detail), the end. One line each, readable in a CI log."""
        if self.quiet:
            return
        k = ev.kernel
        with self._lock:
            if isinstance(ev, BootStarted):
                self._total[k], self._done[k] = ev.checks, 0
                line = f"boot   {ev.release} ({ev.accel}), {ev.checks} check(s)"
            elif isinstance(ev, AgentUp):
                up = f" after {ev.boot_seconds:.1f}s of guest time" if ev.boot_seconds else ""
                line = f"up{up}"
            elif isinstance(ev, ChecksPlanned):
                self._total[k] = self._total.get(k, 0) + max(0, ev.programs - 1)
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
                line = f"done   {ev.as_expected}/{ev.cells} as expected in {ev.seconds:.0f}s"
            else:
                return
            self.stream.write(f"{self._stamp()} {k:>8} {line}\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                self.stream.write(f"{self._stamp()} {text}\n")
                self.stream.flush()
