"""The regression gate: compare a run with a baseline, cell by cell. Pure.

Cells are matched by subject and kernel *line* (6.12), so a baseline taken on 6.12.94
gates a run on 6.12.107 and the diff says that the build changed; kernels pinned by a
lock file in both runs are matched by exact release instead.

A cell is
  worse      it passed and now does not (reject, fail, crash, timeout, error, or skip:
             declared unsupported), or it is new and does not meet its expectation
  better     it did not pass and now passes
  changed    another change of status (reject -> fail, ...)
  unchanged  same status
  new, gone  only in the run, only in the baseline
Rows shown for information (info: an object's programs, unless --per-program)
never count as worse. The gate fails on any worse cell, and on verifier-instruction growth above a threshold
when one is given (growth alone is reported, never fatal, without it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..results import STATS, KernelInfo, Report, Result
from .markdown import md_cell

GROWTH_STAT = "insns_processed"


@dataclass(frozen=True)
class CellChange:
    subject: str
    kernel: str  # the new run's kernel id (the baseline's for a gone cell)
    kind: str  # worse | better | changed | unchanged | new | gone
    base: Result | None
    new: Result | None

    @property
    def transition(self) -> str:
        b = self.base.status if self.base else "—"
        n = self.new.status if self.new else "—"
        return f"{b} → {n}"


@dataclass(frozen=True)
class StatChange:
    subject: str
    kernel: str
    stat: str
    base: int
    new: int

    @property
    def pct(self) -> float | None:
        return None if self.base == 0 else (self.new - self.base) * 100.0 / self.base


@dataclass
class Diff:
    cells: list[CellChange] = field(default_factory=list)
    stats: list[StatChange] = field(default_factory=list)
    new_kernels: list[str] = field(default_factory=list)
    gone_kernels: list[str] = field(default_factory=list)
    builds: list[tuple[str, str, str]] = field(default_factory=list)  # (kernel, base, new release)
    max_insns_growth: float | None = None

    def of(self, kind: str) -> list[CellChange]:
        return [c for c in self.cells if c.kind == kind]

    @property
    def new_subjects(self) -> list[str]:
        return _subjects(self.of("new"), self.cells)

    @property
    def gone_subjects(self) -> list[str]:
        return _subjects(self.of("gone"), self.cells)

    def growth(self) -> list[StatChange]:
        """Growth of the verifier's instruction count, largest first."""
        g = [s for s in self.stats if s.stat == GROWTH_STAT and s.new > s.base]
        return sorted(g, key=lambda s: -(s.pct or float("inf")))

    def growth_over(self) -> list[StatChange]:
        if self.max_insns_growth is None:
            return []
        return [s for s in self.growth() if s.pct is None or s.pct > self.max_insns_growth]

    @property
    def failed(self) -> bool:
        return bool(self.of("worse") or self.growth_over())


def _subjects(changes: list[CellChange], all_cells: list[CellChange]) -> list[str]:
    """Subjects whose every cell is in `changes` (a wholly new or wholly gone subject)."""
    subs = dict.fromkeys(c.subject for c in changes)
    other = {c.subject for c in all_cells if c not in changes}
    return [s for s in subs if s not in other]


def _keys(base: list[KernelInfo], new: list[KernelInfo]) -> tuple[dict[str, str], dict[str, str]]:
    """kernel id -> match key, for each side: the line, or the release where both sides
    pinned different builds of a line (or one side has several builds of it)."""

    def by_line(ks: list[KernelInfo]) -> dict[str, list[KernelInfo]]:
        out: dict[str, list[KernelInfo]] = {}
        for k in ks:
            out.setdefault(k.line, []).append(k)
        return out

    bl, nl = by_line(base), by_line(new)
    bkey: dict[str, str] = {}
    nkey: dict[str, str] = {}
    for line in set(bl) | set(nl):
        bs, ns = bl.get(line, []), nl.get(line, [])
        exact = len(bs) > 1 or len(ns) > 1 or (
            bs and ns and bs[0].pinned and ns[0].pinned and bs[0].release != ns[0].release)
        for k in bs:
            bkey[k.id] = k.release if exact else line
        for k in ns:
            nkey[k.id] = k.release if exact else line
    return bkey, nkey


def _kind(b: Result | None, n: Result | None) -> str:
    if b is None:
        assert n is not None
        return "new" if n.meets_expectation else "worse"
    if n is None:
        return "gone"
    if b.status == n.status:
        return "unchanged"
    if b.status == "pass":
        # a row shown for information (a program of an object whose row carries the
        # verdict) changes; only verdict rows get worse
        return "changed" if n.info else "worse"
    if n.status == "pass":
        return "better"
    return "changed"


def _stat_changes(subject: str, kernel: str, b: Result, n: Result) -> list[StatChange]:
    if b.verifier is None or n.verifier is None:
        return []
    out = []
    for name, _label in STATS:
        bv, nv = getattr(b.verifier, name), getattr(n.verifier, name)
        if bv is not None and nv is not None and bv != nv:
            out.append(StatChange(subject, kernel, name, bv, nv))
    return out


def check_growth(pct: float | None, with_baseline: bool, flag: str = "--max-insns-growth",
                 baseline_flag: str = "--baseline") -> None:
    """The instruction-growth limit: a percentage of 0 or more, measured against a
    baseline (ConfigError otherwise). The CLI and the plugin both ask here."""
    if pct is None:
        return
    if pct < 0:
        raise ConfigError(f"{flag} {pct:g}: give a percentage of 0 or more")
    if not with_baseline:
        raise ConfigError(f"{flag} needs {baseline_flag} BASE.json: the growth is measured "
                          "against the baseline's instruction counts")


def diff(base: Report, new: Report, max_insns_growth: float | None = None) -> Diff:
    bkey, nkey = _keys(base.kernels, new.kernels)
    d = Diff(max_insns_growth=max_insns_growth)
    b_by_key = {bkey[k.id]: k for k in base.kernels}
    n_by_key = {nkey[k.id]: k for k in new.kernels}
    label = {key: k.id for key, k in b_by_key.items()} | {key: k.id for key, k in n_by_key.items()}
    d.new_kernels = [n_by_key[x].id for x in n_by_key if x not in b_by_key]
    d.gone_kernels = [b_by_key[x].id for x in b_by_key if x not in n_by_key]
    for key in n_by_key:
        if key in b_by_key and b_by_key[key].release != n_by_key[key].release:
            d.builds.append((n_by_key[key].id, b_by_key[key].release, n_by_key[key].release))
    bcells = {(r.subject, bkey.get(r.kernel, r.kernel)): r for r in base.results}
    ncells = {(r.subject, nkey.get(r.kernel, r.kernel)): r for r in new.results}
    order = [*ncells, *(k for k in bcells if k not in ncells)]
    for subject, key in order:
        b, n = bcells.get((subject, key)), ncells.get((subject, key))
        kid = label.get(key, key)
        d.cells.append(CellChange(subject, kid, _kind(b, n), b, n))
        if b is not None and n is not None:
            d.stats.extend(_stat_changes(subject, kid, b, n))
    return d


# -- rendering --------------------------------------------------------------------------

def _pct(s: StatChange) -> str:
    return "new" if s.pct is None else f"{s.pct:+.1f}%"


def _why(c: CellChange) -> str:
    r = c.new if c.new is not None else c.base
    return " ".join((r.detail if r else "").split())[:240]


def verdict(d: Diff) -> str:
    worse, over = d.of("worse"), d.growth_over()
    if not d.failed:
        return (f"PASS: no cell got worse ({len(d.of('better'))} better, "
                f"{len(d.of('unchanged'))} unchanged, {len(d.of('changed'))} changed)")
    parts = []
    if worse:
        parts.append(f"{len(worse)} cell(s) got worse")
    if over:
        parts.append(f"{len(over)} verifier instruction count(s) grew more than "
                     f"{d.max_insns_growth:g}%")
    return "FAIL: " + ", ".join(parts)


def render_term(d: Diff) -> str:
    lines = [f"regression gate: {verdict(d)}"]
    for kind in ("worse", "better", "changed"):
        cs = d.of(kind)
        if cs:
            lines.append(f"{kind}:")
            lines += [f"  {c.subject} @ {c.kernel}: {c.transition}: {_why(c)}" for c in cs]
    for title, items in (("new subjects", d.new_subjects), ("gone subjects", d.gone_subjects),
                         ("new kernels", d.new_kernels), ("gone kernels", d.gone_kernels)):
        if items:
            lines.append(f"{title}: {', '.join(items)}")
    for kid, b, n in d.builds:
        lines.append(f"build changed: {kid}: {b} → {n}")
    growth = d.growth()
    if growth:
        limit = f" (limit {d.max_insns_growth:g}%)" if d.max_insns_growth is not None else ""
        lines.append(f"verifier instructions processed grew{limit}:")
        over = set(map(id, d.growth_over()))
        lines += [f"  {'!' if id(s) in over else ' '} {s.subject} @ {s.kernel}: "
                  f"{s.base} → {s.new} ({_pct(s)})" for s in growth]
    return "\n".join(lines) + "\n"


def render_md(d: Diff) -> str:
    icon = "❌" if d.failed else "✅"
    out = [f"## {icon} Regression gate: {verdict(d)}", ""]
    for kind in ("worse", "better", "changed"):
        cs = d.of(kind)
        if not cs:
            continue
        out += [f"### {kind.capitalize()} ({len(cs)})", "", "| subject | kernel | status | why |",
                "|---|---|---|---|"]
        out += [f"| `{md_cell(c.subject)}` | {c.kernel} | {c.transition} | {md_cell(_why(c))} |"
                for c in cs]
        out.append("")
    for title, items in (("New subjects", d.new_subjects), ("Gone subjects", d.gone_subjects),
                         ("New kernels", d.new_kernels), ("Gone kernels", d.gone_kernels)):
        if items:
            out += [f"**{title}:** " + ", ".join(f"`{i}`" for i in items), ""]
    if d.builds:
        out += ["**Builds changed:** " + "; ".join(f"{k}: {b} → {n}" for k, b, n in d.builds), ""]
    growth = d.growth()
    if growth:
        limit = f" (limit {d.max_insns_growth:g}%)" if d.max_insns_growth is not None else ""
        out += [f"### Verifier instructions processed grew{limit}", "",
                "| subject | kernel | base | new | growth |", "|---|---|--:|--:|--:|"]
        out += [f"| `{md_cell(s.subject)}` | {s.kernel} | {s.base} | {s.new} | {_pct(s)} |"
                for s in growth]
        out.append("")
    return "\n".join(out) + "\n"

