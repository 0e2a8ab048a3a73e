"""Verdicts before booting: every (program, kernel) cell predicted from that kernel's own
BTF, with the loader modelled (model.py), and held against what then happened.

``forecast`` gives, per kernel, the predicted verdict of each cell a run will have: a
checked object's program rows and its object row (the object row decided by the same
rule as the observed one, bpfobj/verdict.object_row, from the predicted program rows), a
bundled program's cell (its object's programs combined), a bpftrace script's cell (an
attach refusal when a probe's kernel place is missing, else unknown). BCC tools,
commands and tests get none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bpfobj import verdict as objverdict
from ..errors import HarnessError
from ..kernels.cache import Cache
from ..kernels.model import KernelSpec
from ..results import Result
from .model import KernelFacts, Predicted, agrees, combine, predict_object, predict_script

__all__ = ["Forecast", "Predicted", "agrees", "forecast", "object_prediction"]


@dataclass
class Forecast:
    """kernel id -> cell subject -> its prediction; notes on kernels it could not read."""

    cells: dict[str, dict[str, Predicted]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def get(self, kernel: str, subject: str) -> Predicted | None:
        return self.cells.get(kernel, {}).get(subject)


def object_prediction(label: str, programs: Mapping[str, Predicted], sections: dict[str, str],
                      setup: Mapping[str, Any] | None = None) -> Predicted | None:
    """An object's predicted row from its programs' predictions, by the rule that decides
    its observed row (alternatives and optional programs count the same way)."""
    if not programs:
        return None
    setup = setup or {}
    pset = setup.get("programs", {})
    rows = {n: Result(subject=f"{label}:{n}", kernel="", section=sections.get(n, ""),
                      status={"pass": "pass", "unknown": "setup"}.get(p.verdict, "reject"),
                      stage="attach" if p.verdict == "attach" else "load", detail=p.reason)
            for n, p in programs.items()}
    optional = {n for n, s in sections.items() if s.startswith("?")
                or pset.get(n, {}).get("optional")}
    row = objverdict.object_row(label, "", rows, {n: sections[n] for n in rows},
                                setup.get("alternatives", []), optional)
    if row.status == "pass":
        carried = row.detail.partition("; ")[2]
        return Predicted("pass", carried)
    if row.status == "setup":
        return Predicted("unknown", row.detail)
    first = next((p for n, p in programs.items() if p.refusal and n in row.detail), None)
    return Predicted(first.verdict if first else "reject", row.detail)


def _object_path(task: Mapping[str, Any]) -> str:
    return str(task.get("path") or task.get("object") or "") \
        if task.get("kind") in ("object", "program") else ""


def _script(task: Mapping[str, Any]) -> list[list[tuple[str, str | None]]] | None:
    from ..bpftrace import probe_blocks

    try:
        return probe_blocks(Path(str(task.get("script", ""))).read_text())
    except (OSError, UnicodeDecodeError):
        return None  # the check itself says why it cannot be read


def forecast(kernels: Iterable[KernelSpec], subjects_of: Mapping[str, list[Any]],
             cache: Cache) -> Forecast:
    """Predictions for every cell of these kernels (subjects_of: kernel id -> its
    orchestrator Subjects). A kernel whose BTF cannot be read gets a note, no cells."""
    from .facts import kernel_facts, read_model

    out = Forecast()
    known: list[tuple[KernelSpec, KernelFacts]] = []
    for k in kernels:
        try:
            known.append((k, kernel_facts(k, cache)))
        except (HarnessError, OSError) as e:
            out.notes.append(f"kernel {k.id}: no prediction ({e})")
    functions = frozenset().union(*(f.caps.functions for _, f in known))
    for k, facts in known:
        cells: dict[str, Predicted] = {}
        for s in subjects_of.get(k.id, []):
            if s.task.get("kind") == "bpftrace":
                script = _script(s.task)
                if script is not None:
                    cells[s.id] = predict_script(script, facts)
                continue
            path = _object_path(s.task)
            if not path or s.compile_error is not None:
                continue
            try:
                model = read_model(Path(path))
            except (HarnessError, OSError):
                continue  # the check itself says why it cannot be read
            setup = s.task.get("setup") or {}
            progs = predict_object(model, facts, setup, functions)
            if s.expands:
                cells.update({f"{s.id}:{n}": p for n, p in progs.items()})
                row = object_prediction(s.id, progs, dict(model.info.programs), setup)
                if row is not None:
                    cells[s.id] = row
            else:
                row = combine(progs)
                link = getattr(s.decl, "link", "") if s.decl is not None else ""
                if row is not None and row.verdict == "pass" and link \
                        and link not in facts.caps.link_types:
                    row = Predicted("attach", f"its check attaches with a BPF link of type "
                                    f"{link} (program.toml), not in this kernel")
                if row is not None:
                    cells[s.id] = row
        out.cells[k.id] = cells
    return out


def prediction_dict(p: Predicted | None, status: str | None) -> dict[str, Any] | None:
    """What a result carries: the prediction and, once observed, whether it held."""
    if p is None:
        return None
    return {**p.to_dict(), "agrees": agrees(p, status) if status is not None else None}
