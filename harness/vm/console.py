"""Reading a guest console for kernel crashes. Pure."""

from __future__ import annotations

import re

_CRASH = re.compile(
    r"(Kernel panic - not syncing|BUG: kernel NULL pointer|BUG: unable to handle|"
    r"general protection fault|Oops: |kernel BUG at|RIP: 0010:)"
)


def find_crash(console: str, context: int = 12) -> str | None:
    """An excerpt around the first panic/oops on the console, or None."""
    lines = console.splitlines()
    for i, line in enumerate(lines):
        if _CRASH.search(line):
            start = max(0, i - 2)
            return "\n".join(lines[start : i + context])
    return None


def crash_headline(excerpt: str) -> str:
    for line in excerpt.splitlines():
        m = _CRASH.search(line)
        if m:
            return line[m.start():].strip()[:160]
    return excerpt.splitlines()[0][:160] if excerpt else ""
