"""The matrix as GitHub-flavoured Markdown, for $GITHUB_STEP_SUMMARY and pull-request
comments. Pure: Report -> text."""

from __future__ import annotations

from ..results import STATS, Report, Result
from . import cells

DETAIL_LIMIT = 1500  # characters of a verifier summary or output per cell (summaries cap at 1 MiB)


def md_cell(text: str) -> str:
    """Text for one table cell: on one line, its '|' escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _seconds(v: float | None) -> str:
    return f"{v:.0f} s" if v else "—"


def stats_line(r: Result) -> str:
    v = r.verifier
    if v is None:
        return ""
    parts = [f"{label} {getattr(v, name)}" for name, label in STATS
             if getattr(v, name) is not None]
    return ", ".join(parts)


def _details(r: Result) -> list[str]:
    cause = f", {r.cause}" if r.cause else ""
    head = f"<code>{r.subject}</code> @ {r.kernel}: {cells.symbol(r)} {r.status} ({r.stage}{cause})"
    body = [f"<details><summary>{head}</summary>", ""]
    expect = cells.expectation_text(r)
    if expect:
        body += [f"*{md_cell(expect)}*", ""]
    body.append(_fence(r.detail))
    if r.verifier and r.verifier.summary:
        body += ["**verifier:**", "", _fence(r.verifier.summary)]
    stats = stats_line(r)
    if stats:
        body += [f"*statistics:* {stats}", ""]
    if r.output and r.status != "reject":
        body += ["**output (end):**", "", _fence(r.output[-DETAIL_LIMIT:])]
    if r.console:
        body += ["**console:**", "", _fence(r.console[-DETAIL_LIMIT:])]
    body += ["</details>", ""]
    return body


def _fence(text: str) -> str:
    text = text.strip()[:DETAIL_LIMIT] or "(none)"
    fence = "~~~~" if "```" in text else "```"
    return f"{fence}text\n{text}\n{fence}\n"


def render_markdown(report: Report, title: str = "eBPF compatibility matrix") -> str:
    kinfo = report.kernel_order()
    icon = "✅" if report.ok else "❌"
    out = [f"## {icon} {title}: {cells.verdict_line(report)}", ""]
    if not report.results:
        return "\n".join([*out, "No results.", ""])
    out.append("| subject | " + " | ".join(k.id for k in kinfo) + " |")
    out.append("|---|" + "|".join(":-:" for _ in kinfo) + "|")
    for s in report.subjects():
        row = [cells.symbol(report.cell(s, k.id)) for k in kinfo]
        label = cells.row_label(report, s)
        name = f"↳ `{md_cell(label.strip()[2:])}`" if label != s else f"`{md_cell(s)}`"
        out.append(f"| {name} | " + " | ".join(row) + " |")
    out += ["", "**Legend:** " + " · ".join(f"{m} {t}" for m, t in cells.legend(symbols=True)),
            ""]
    if cells.has_objects(report):
        out += [cells.INFO_ROWS, ""]
    if any(cells.predicted_only(r) for r in report.results):
        out += [f"{cells.PREDICTED_LEGEND[1]} {cells.PREDICTED_LEGEND[2]}", ""]
    disagree = cells.disagreements(report)
    if disagree:  # a bug in the prediction or a kernel surprise: first
        out += [f"### Predicted before booting, observed otherwise ({len(disagree)})", ""]
        out += [f"- {md_cell(d)}" for d in disagree]
        out.append("")
    summary = cells.prediction_summary(report)
    if summary:
        out += [summary, ""]
    out += ["### Kernels", "", "| kernel | release | origin | accel | boot | VM |",
            "|---|---|---|---|--:|--:|"]
    for k in kinfo:
        origin = k.origin + (" (pinned)" if k.pinned else "")
        out.append(f"| {k.id} | {k.release} | {md_cell(origin) or '—'} | {k.accel or '—'} | "
                   f"{_seconds(k.boot_seconds)} | {_seconds(k.vm_seconds)} |")
    out.append("")
    diffs = cells.differences(report)
    if diffs:
        out += ["### Differences from the same line's generic x86_64 build", ""]
        out += [f"- {md_cell(d)}" for d in diffs]
        out.append("")
    predicted = cells.predictions(report)
    if predicted:
        out += ["### Predicted minimum kernel vs observed", ""]
        out += [f"- {md_cell(p)}" for p in predicted]
        out.append("")
    if report.notes:
        out += ["### Notes", ""] + [f"- {md_cell(n)}" for n in report.notes] + [""]
    bad = cells.not_as_expected(report)
    unexplained = [r for r in bad if r.unexplained]
    if unexplained:
        out += [f"### Unexplained ({len(unexplained)}): refused at or above the predicted "
                "minimum kernel", ""]
        out += [f"- `{md_cell(r.subject)}` @ {r.kernel} (predicted {r.predicted}): "
                f"{md_cell(r.detail)[:300]}" for r in unexplained]
        out.append("")
    if bad:
        out += [f"### Not as expected ({len(bad)})", "", "| cause | cells | what it means |",
                "|---|--:|---|"]
        out += [f"| `{c}` | {n} | {md_cell(what)} |" for c, n, what in cells.causes(bad)]
        out.append("")
        for r in bad:
            out += _details(r)
    return "\n".join(out) + "\n"
