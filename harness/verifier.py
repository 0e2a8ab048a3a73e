"""Reading verifier logs: statistics and the few lines that explain a rejection. Pure."""

from __future__ import annotations

import re

from .results import VerifierInfo

_PROCESSED = re.compile(
    r"processed (\d+) insns \(limit \d+\) max_states_per_insn \d+ total_states (\d+) "
    r"peak_states (\d+)"
)
_NOISE = re.compile(
    r"^(\d+: \(|\d+: R\d|R\d+(_\w+)?=|;|from \d+ to \d+|func#|last_idx|regs=|parent |"
    r"mark_precise|\d+: frame|frame\d|Live regs|\s*$)"
)


def parse_stats(log: str) -> tuple[int | None, int | None, int | None]:
    matches = _PROCESSED.findall(log)
    if not matches:
        return None, None, None
    a, b, c = matches[-1]
    return int(a), int(b), int(c)


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
    processed, states, peak = parse_stats(log)
    return VerifierInfo(
        insns_processed=processed,
        states=states,
        peak_states=peak,
        verified_insns=raw.get("verified_insns"),
        insns=raw.get("insns"),
        summary=summarize(log) if log else "",
        log=log,
    )
