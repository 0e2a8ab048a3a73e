"""The HTML report: one self-contained file (no network: styles, scripts and plotly.js are
inlined), and a static site around it. Reads only the results model.

Choices: Jinja2 for the page (autoescaping keeps verifier logs inert), Plotly for the
charts (interactive hover and legend toggles across dozens of programs, and plotly.js
ships inside the Python package, so it can be inlined with no CDN; the cost is about
4.5 MB of script per report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..classify import CAUSES
from ..results import STATS, Report, Result, write_text_atomic
from . import cells
from .badge import render_badge
from .templating import render

STATUS_COLOURS = {
    "pass": "#2e9d4c", "skip": "#9aa5b1", "reject": "#d64545", "fail": "#e8833a",
    "error": "#b58900", "crash": "#6c3483", "timeout": "#2874a6", "setup": "#7f8c8d",
}


def _figure_html(fig: Any, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def charts(report: Report) -> list[dict[str, str]]:
    """The charts that say more than the table: verifier work per program across kernels,
    cells by status per kernel, and time per kernel. Each: {id, title, html}."""
    import plotly.graph_objects as go

    kinfo = report.kernel_order()
    kids = [k.id for k in kinfo]
    out: list[dict[str, Any]] = []
    layout = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 10, "b": 50},
              "height": 420, "autosize": True, "legend": {"font": {"size": 10}}}

    fig = go.Figure()
    for s in report.subjects():
        ys = []
        for k in kids:
            r = report.cell(s, k)
            # a rejected program's count stops where the verifier gave up: not comparable
            v = r.verifier if r is not None and r.status == "pass" else None
            ys.append((v.insns_processed or None) if v is not None else None)
        if any(y is not None for y in ys):
            fig.add_trace(go.Scatter(x=kids, y=ys, mode="lines+markers", name=s,
                                     hovertemplate="%{fullData.name}<br>kernel %{x}: "
                                                   "%{y} insns processed<extra></extra>"))
    if fig.data:
        fig.update_layout(**layout, yaxis={"title": "instructions processed", "type": "log",
                                                "dtick": 1},
                          xaxis={"title": "kernel", "type": "category"})
        fig.update_layout(height=520, legend={"font": {"size": 10}, "orientation": "v"})
        out.append({"id": "chart-insns", "wide": True,
                    "title": "Verifier instructions processed per program",
                    "note": "The verifier's own work per program (log scale; the limit is "
                            "1,000,000). Click a program in the legend to hide it.",
                    "html": _figure_html(fig, "chart-insns")})

    fig = go.Figure()
    for status, colour in STATUS_COLOURS.items():
        ys = [sum(1 for r in report.results if r.kernel == k and r.status == status) for k in kids]
        if any(ys):
            fig.add_trace(go.Bar(x=kids, y=ys, name=status, marker_color=colour))
    if fig.data:
        fig.update_layout(**layout, barmode="stack", yaxis={"title": "cells"},
                          xaxis={"title": "kernel", "type": "category"})
        out.append({"id": "chart-status", "wide": False, "title": "Cells by status per kernel",
                    "note": "",
                    "html": _figure_html(fig, "chart-status")})

    boot = [k.boot_seconds for k in kinfo]
    vm = [k.vm_seconds for k in kinfo]
    if any(v is not None for v in boot + vm):
        fig = go.Figure([go.Bar(x=kids, y=boot, name="boot (to the agent)"),
                         go.Bar(x=kids, y=vm, name="whole VM")])
        fig.update_layout(**layout, barmode="group", yaxis={"title": "seconds"},
                          xaxis={"title": "kernel", "type": "category"})
        accel = ", ".join(sorted({k.accel for k in kinfo if k.accel})) or "unknown"
        out.append({"id": "chart-time", "wide": False, "title": "Time per kernel",
                    "note": f"Accelerator: {accel}.", "html": _figure_html(fig, "chart-time")})
    return out


def _cell_view(r: Result | None, idx: int) -> dict[str, Any]:
    if r is None:
        return {"idx": idx, "word": "", "status": "none", "unexpected": False,
                "title": "no result"}
    stats = []
    if r.verifier:
        stats = [(label, getattr(r.verifier, name)) for name, label in STATS
                 if getattr(r.verifier, name) is not None]
    return {
        "idx": idx, "r": r, "word": cells.term(r), "status": r.status,
        "unexpected": not r.meets_expectation, "stats": stats,
        "title": f"{r.subject} @ {r.kernel}: {r.status} ({r.stage})"
                 + (f"; {cells.expectation_text(r)}" if cells.expectation_text(r) else "")
                 + (f"; predicted {r.prediction['verdict']}" if r.prediction else ""),
    }


def render_html(report: Report, title: str = "eBPF compatibility report") -> str:
    import plotly.offline

    kinfo = report.kernel_order()
    rows = []
    idx = 0
    for s in report.subjects():
        row_cells = []
        for k in kinfo:
            row_cells.append({**_cell_view(report.cell(s, k.id), idx), "kernel": k.id})
            idx += 1
        label = cells.row_label(report, s)
        rows.append({"subject": s, "label": label.strip(), "child": label != s,
                     "domain": cells.domain(s), "cells": row_cells,
                     "statuses": " ".join(sorted({c["status"] for c in row_cells}))})
    good, total = report.counts()
    return render(
        "report.html.j2",
        title=title,
        report=report,
        kernels=kinfo,
        rows=rows,
        domains=sorted({r["domain"] for r in rows}),
        statuses=[s for s in cells.STATUS if any(r.status == s for r in report.results)],
        legend=[(st, word, text) for st, (word, _sym, text) in cells.STATUS.items()],
        verdict=cells.verdict_line(report),
        good=good,
        total=total,
        info_rows=cells.INFO_ROWS if cells.has_objects(report) else "",
        charts=charts(report),
        plotly_js=plotly.offline.get_plotlyjs(),
        colours=STATUS_COLOURS,
        causes=CAUSES,
        differences=cells.differences(report),
        disagreements=cells.disagreements(report),
        prediction_summary=cells.prediction_summary(report),
    )


def write_site(report: Report, directory: Path, title: str = "eBPF compatibility report") -> Path:
    """A static site (for GitHub Pages): index.html with the verdict and the badge,
    report.html, results.json and badge.svg. Returns the index path."""
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomic(directory / "report.html", render_html(report, title))
    write_text_atomic(directory / "badge.svg", render_badge(report))
    report.write(directory / "results.json")
    good, total = report.counts()
    index = render("index.html.j2", title=title, report=report, kernels=report.kernel_order(),
                   verdict=cells.verdict_line(report), good=good, total=total,
                   unexpected=cells.not_as_expected(report))
    write_text_atomic(directory / "index.html", index)
    return directory / "index.html"
