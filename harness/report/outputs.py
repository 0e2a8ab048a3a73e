"""Writing the reports a run was asked for, and the baseline gate: one place for the CLI
and the pytest plugin."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..results import Report, write_text_atomic
from .diff import Diff, diff


@dataclass(frozen=True)
class Outputs:
    json: Path | None = None
    md: Path | None = None
    html: Path | None = None
    junit: Path | None = None
    baseline: Report | None = None  # read before the run, so a bad file fails at once
    max_insns_growth: float | None = None


def render(report: Report, fmt: str) -> str:
    if fmt == "md":
        from .markdown import render_markdown

        return render_markdown(report)
    if fmt == "html":
        from .html import render_html

        return render_html(report)
    if fmt == "junit":
        from .junit import render_junit

        return render_junit(report)
    from .terminal import render_matrix

    return render_matrix(report)


def write_outputs(report: Report, outs: Outputs) -> list[Path]:
    """Every requested file, each written whole or not at all; returns their paths."""
    written = []
    if outs.json:
        report.write(outs.json)
        written.append(outs.json)
    for fmt, path in (("md", outs.md), ("html", outs.html), ("junit", outs.junit)):
        if path:
            write_text_atomic(path, render(report, fmt))
            written.append(path)
    return written


def gate(report: Report, outs: Outputs) -> Diff | None:
    if outs.baseline is None:
        return None
    return diff(outs.baseline.view(report.per_program), report, outs.max_insns_growth)
