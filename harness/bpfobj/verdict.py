"""An object's verdict from its programs' verdicts. Pure.

Real objects carry several ways to hook the same event and load whichever the kernel has
(fentry or kprobe of one function; tp_btf or raw_tp of one event; a function renamed
between kernels), programs that are optional (SEC("?...")), and placeholders the loader
fills in. Their programs' rows alone cry wolf; the object row says what the object's own
loader would find: it **works** on this kernel (through which alternatives), or it is
**broken** (which group has no working alternative, and why).

Groups come from the set-up file's [[alternatives]]; where it gives none, the obvious
cases are grouped and the row says the grouping was inferred: programs on the entry of
the same function (fentry, kprobe, ksyscall), on its return (fexit, kretprobe), on the
same event (tp_btf, raw_tp, tracepoint), the function name compared without leading
underscores (blk_account_io_start and __blk_account_io_start).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..results import Result

_ENTRY = ("fentry", "kprobe", "ksyscall", "fentry.s")
_EXIT = ("fexit", "kretprobe", "kretsyscall", "fexit.s")
_EVENT = ("tp_btf", "raw_tp", "raw_tracepoint", "tp", "tracepoint")
_FUNCTION_HOOKS = (*_ENTRY, *_EXIT, "fmod_ret", "lsm", "lsm.s", "kprobe.multi",
                   "kretprobe.multi")
# names libbpf tools give targets they replace at run time (fsdist's dummy_file_read,
# funclatency's dummy_kprobe, ksnoop's foo)
_PLACEHOLDER = re.compile(r"^(?:dummy|placeholder|foo|bar)(?:_\w*)?$|_dummy$")
_NO_VERDICT = ("crash", "timeout", "error")  # worst first


def hook(section: str) -> tuple[str, str] | None:
    """(what, name) a program of this section attaches to: ('function', 'vfs_read'),
    ('tracepoint', 'sched/sched_switch'), ('event', 'block_rq_issue'); None when the
    section names no hook."""
    base, _, target = section.lstrip("?").partition("/")
    if not target:
        return None
    if base in _FUNCTION_HOOKS:
        return "function", target.split(":")[0]
    if base in ("tp", "tracepoint"):
        return "tracepoint", target
    if base in ("tp_btf", "raw_tp", "raw_tracepoint"):
        return "event", target
    if base.startswith(("uprobe", "uretprobe")):
        return "symbol", target
    return None


def is_placeholder(name: str) -> bool:
    return bool(_PLACEHOLDER.search(name))


def alternative_key(section: str) -> tuple[str, str] | None:
    """Programs with the same key hook the same thing in different ways."""
    base, _, target = section.lstrip("?").partition("/")
    if not target:
        return None
    name = target.rsplit("/", 1)[-1].lstrip("_")
    if base in _ENTRY:
        return "entry of", name
    if base in _EXIT:
        return "return of", name
    if base in _EVENT:
        return "event", name
    return None


@dataclass(frozen=True)
class Group:
    programs: tuple[str, ...]  # in order of preference
    inferred: bool
    optional: bool
    what: str = ""  # 'entry of vfs_read', or 'declared alternatives'


def groups(sections: dict[str, str], declared: list[list[str]],
           optional: set[str]) -> list[Group]:
    """Every program in exactly one group; a program alone is a group of one."""
    out: list[Group] = []
    placed: set[str] = set()
    for alt in declared:
        chosen = tuple(p for p in alt if p in sections and p not in placed)
        if chosen:
            out.append(Group(chosen, False, all(p in optional for p in chosen),
                             "declared alternatives"))
            placed.update(chosen)
    by_key: dict[tuple[str, str], list[str]] = {}
    for name, sec in sections.items():
        if name in placed:
            continue
        key = alternative_key(sec)
        if key is not None:
            by_key.setdefault(key, []).append(name)
    for key, progs in by_key.items():
        # alternatives hook the same thing in different ways; two programs on the very
        # same hook by the same mechanism (two tracepoint programs of one event) both run
        hooks = {sections[p].lstrip("?") for p in progs}
        if len(progs) > 1 and len(hooks) == len(progs):
            # preference: BTF-based first (fentry, tp_btf), as libbpf tools try them first
            progs.sort(key=lambda p: _rank(sections[p]))
            out.append(Group(tuple(progs), True, all(p in optional for p in progs),
                             f"{key[0]} {key[1]}"))
            placed.update(progs)
    for name in sections:
        if name not in placed:
            out.append(Group((name,), False, name in optional))
    order = {n: i for i, n in enumerate(sections)}
    return sorted(out, key=lambda g: min(order[p] for p in g.programs))


def _rank(section: str) -> int:
    base = section.lstrip("?").partition("/")[0]
    return 0 if base in ("fentry", "fexit", "tp_btf", "fentry.s", "fexit.s") else \
        1 if base in ("raw_tp", "raw_tracepoint") else 2


def _short(r: Result) -> str:
    why = r.cause or r.status
    what = hook(r.section)
    if r.cause == "hook-missing" and what:
        return f"{r.section}: {what[0]} {what[1]} missing"
    return f"{r.section or r.subject}: {why}"


def object_row(label: str, kernel: str, rows: dict[str, Result], sections: dict[str, str],
               declared: list[list[str]], optional: set[str]) -> Result:
    """The object's row on one kernel, from its programs' rows (name -> Result).

    Its status says what the object's loader would find (works: pass; a group with no
    working alternative: reject or fail; no verdict: the worst of crash, timeout, error;
    else setup). Its expectation comes from its programs' expectations, not from what
    happened: a refusal when some required group has every member expected to be refused
    (below its predicted minimum), else a pass."""
    grps = groups(sections, declared, optional)
    used: list[str] = []
    broken: list[tuple[Group, list[Result]]] = []
    unknown: list[Result] = []
    no_verdict: list[Result] = []
    notes: list[str] = []
    refused_groups: list[tuple[Group, list[Result]]] = []  # expected to be refused
    # programs that carried a group only as an alternative inferred from the sections,
    # the preferred one having failed: whether the object's loader falls back to them is
    # the loader's to say, not the sections'
    inferred_only: list[str] = []
    for g in grps:
        members = [(p, rows[p]) for p in g.programs if p in rows and not _off(rows[p])]
        if not members:
            continue  # switched off by the set-up, or no verdict at all (collect adds one)
        rs = [r for _, r in members]
        if not g.optional and all(r.expected == "refusal" for r in rs):
            refused_groups.append((g, rs))
        works = next((p for p, r in members if r.status == "pass"), None)
        if works is not None:
            used.append(works)
            skipped = [r for p, r in members[: [p for p, _ in members].index(works)]]
            if skipped:
                notes.append(f"{works} instead of " + ", ".join(_short(r) for r in skipped))
                if g.inferred and not g.optional:
                    inferred_only.append(f"{works} (in place of "
                                         + ", ".join(_short(r) for r in skipped) + ")")
            continue
        if g.optional:
            notes.append("optional " + ", ".join(f"{p} not working ({_short(r)})"
                                                  for p, r in members))
        elif any(r.status in _NO_VERDICT for r in rs):
            no_verdict += [r for r in rs if r.status in _NO_VERDICT]
        elif any(r.status == "setup" for r in rs):
            unknown += [r for r in rs if r.status == "setup"]
        else:
            broken.append((g, rs))
    inferred = [g for g in grps if g.inferred and len(g.programs) > 1]
    tail = ("; alternatives inferred: " + ", ".join(g.what for g in inferred)) if inferred else ""
    total = sum(len(g.programs) for g in grps)
    dur = sum(r.duration or 0 for r in rows.values()) or None
    expected, by, reason = "pass", "", ""
    if refused_groups:
        g, rs = refused_groups[0]
        expected, by, reason = "refusal", rs[0].expected_by, f"{_what(g)}: {rs[0].expected_reason}"

    def row(status: str, stage: str, cause: str, detail: str, unexplained: bool = False) -> Result:
        return Result(subject=label, kernel=kernel, status=status, stage=stage, detail=detail,
                      cause=cause, row="object", duration=dur, expected=expected,
                      expected_by=by, expected_reason=reason, unexplained=unexplained)
    if no_verdict:
        worst = min(no_verdict, key=lambda r: _NO_VERDICT.index(r.status))
        return row(worst.status, worst.stage, worst.cause,
                   f"no verdict: program {_name(worst, label)}: {worst.detail}")
    if broken:
        # the groups nobody expected to fail first: they are the ones worth a look
        broken.sort(key=lambda b: all(r.expected == "refusal" for r in b[1]))
        g, rs = broken[0]
        first = rs[0]
        status = "reject" if all(r.status == "reject" for r in rs) else "fail"
        more = f" (and {len(broken) - 1} more group(s))" if len(broken) > 1 else ""
        why = "; ".join(f"{_name(r, label)}: {r.detail}" for r in rs)
        return row(status, first.stage, first.cause,
                   f"broken: {_what(g)} has no working alternative{more}: {why}{tail}",
                   unexplained=any(r.unexplained for _, b in broken for r in b))
    if unknown:
        names = ", ".join(_name(r, label) for r in unknown)
        return row("setup", unknown[0].stage, "needs-setup",
                   f"verdict unknown until the loader set-up is given for {names}: "
                   f"{unknown[0].detail}")
    if inferred_only:
        return row("setup", "attach", "needs-setup",
                   "works only if its loader falls back to " + "; ".join(inferred_only)
                   + ": an alternative inferred from the sections, not declared; declare it "
                   "in a set-up file ([[alternatives]] programs = [...]) to confirm" + tail)
    return row("pass", "attach", "", f"works: {len(used)} of {total} programs in use"
               + (f"; {'; '.join(notes)}" if notes else "") + tail)


def _off(r: Result) -> bool:
    """Switched off by the set-up file: not part of what the object loads."""
    return r.cause == "switched-off"


def _what(g: Group) -> str:
    return f"{g.what} ({', '.join(g.programs)})" if len(g.programs) > 1 else f"program {g.programs[0]}"


def _name(r: Result, label: str) -> str:
    return r.subject[len(label) + 1:] if r.subject.startswith(label + ":") else r.subject
