"""Progress lines on stderr while kernels download and boot."""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    def __init__(self, stream=None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
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

    def note(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                self.stream.write(f"{self._stamp()} {text}\n")
                self.stream.flush()
