"""Reading a guest console for kernel crashes and splats. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

# fatal: kernels boot with oops=panic, so every oops ends in a panic
_CRASH = re.compile(
    r"(Kernel panic - not syncing|BUG: kernel NULL pointer|BUG: unable to handle|"
    r"general protection fault|Oops: |kernel BUG at)"
)
# not fatal, but a kernel bug or a bad program's doing (the kinds BPF CI's console
# scanner looks for): warnings, sanitizers, lockdep, sleeping in atomic context, stalls
_SPLAT = re.compile(
    r"(WARNING: CPU: \d+ PID: \d+ at .*|BUG: KASAN: .*|BUG: KFENCE: .*|UBSAN: .*|"
    r"WARNING: possible circular locking dependency detected|WARNING: possible recursive locking"
    r" detected|WARNING: suspicious RCU usage|WARNING: inconsistent lock state|"
    r"BUG: sleeping function called from invalid context.*|BUG: scheduling while atomic.*|"
    r"INFO: task .* blocked for more than \d+ seconds|INFO: rcu_\w+ detected stalls.*|"
    r"BUG: soft lockup.*|WARNING: .* still has locks held!)"
)
_STAMP = re.compile(r"^\s*\[\s*(\d+\.\d+)\]")


@dataclass(frozen=True)
class Splat:
    seconds: float | None  # the guest's uptime on the console line, when printed
    headline: str
    excerpt: str


def find_splats(console: str, context: int = 10) -> list[Splat]:
    """Every non-fatal kernel splat on the console, in order."""
    lines = console.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = _SPLAT.search(line)
        if m:
            stamp = _STAMP.match(line)
            out.append(Splat(float(stamp.group(1)) if stamp else None, m.group(0).strip()[:160],
                             "\n".join(lines[i : i + context])))
    return out


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
