"""Reading verifier logs: statistics and the few lines that explain a rejection. Pure."""

from __future__ import annotations

import re

from .results import VerifierInfo

# log_level 4 (BPF_LOG_STATS) lines, one set per program; seen unchanged from 5.10 to 7.3
_PROCESSED = re.compile(
    r"processed (\d+) insns \(limit \d+\) max_states_per_insn (\d+) total_states (\d+) "
    r"peak_states (\d+)"
)
_TIME = re.compile(r"^verification time (\d+) usec", re.M)
# "stack depth 16+0" (one frame per subprogram); 7.x prints "stack depth max 16" and a
# "subprog N (name) ... stack S" line per subprogram
_STACK = re.compile(r"^stack depth (?:max )?([\d+]+)", re.M)
_NOISE = re.compile(
    r"^(\d+: \(|\d+: R\d|R\d+(_\w+)?=|;|from \d+ to \d+|func#|last_idx|regs=|parent |"
    r"mark_precise|\d+: frame|frame\d|Live regs|subprog \d+ \(|\s*$)"
)


def parse_stats(log: str) -> dict[str, int | None]:
    """The statistics lines of a log; a log of several programs gives sums of the counts
    and maxima of the peaks (as VerifierInfo documents)."""
    processed = [tuple(map(int, m)) for m in _PROCESSED.findall(log)]
    times = [int(t) for t in _TIME.findall(log)]
    # "stack depth 16+0+32": one frame per subprogram
    stacks = [sum(int(x) for x in s.split("+") if x) for s in _STACK.findall(log)]
    return {
        "insns_processed": sum(p[0] for p in processed) if processed else None,
        "max_states_per_insn": max(p[1] for p in processed) if processed else None,
        "states": sum(p[2] for p in processed) if processed else None,
        "peak_states": max(p[3] for p in processed) if processed else None,
        "verification_usec": sum(times) if times else None,
        "stack_depth": max(stacks) if stacks else None,
    }


def summarize(log: str, keep: int = 3) -> str:
    """The last meaningful lines of a log (the verifier's reason), with a count of the rest."""
    lines = [ln.rstrip() for ln in log.splitlines()]
    meaningful = [
        ln for ln in lines
        if ln.strip() and not _NOISE.match(ln.strip()) and not _PROCESSED.search(ln)
        and not ln.startswith(("verification time", "stack depth", "mark_read"))
    ]
    tail = meaningful[-keep:]
    omitted = len(lines) - len(tail)
    text = " | ".join(t.strip() for t in tail)
    return f"{text} ({omitted} lines omitted)" if omitted > 0 and text else text


def info_from(raw: dict | None) -> VerifierInfo | None:
    if not raw:
        return None
    log = raw.get("log", "") or ""
    return VerifierInfo(
        **parse_stats(log),
        verified_insns=raw.get("verified_insns"),
        insns=raw.get("insns"),
        xlated_bytes=raw.get("xlated_bytes"),
        jited_bytes=raw.get("jited_bytes"),
        summary=summarize(log) if log else "",
        log=log,
    )
