"""The console script's first code: stop signals are caught from here on, before the
harness's modules load (they take a moment). A signal that lands that early is kept and
honoured once the command knows where its results go (cli._main), so that even then the
results file is written, marked partial. Imports nothing of the harness at load."""

from __future__ import annotations

import signal

EARLY: list[int] = []  # stop signals received before cli took over


def _record(signum: int, frame: object) -> None:
    EARLY.append(signum)


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _record)
    from .cli import entry

    entry(early=EARLY)
