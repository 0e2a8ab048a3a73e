"""The compatibility matrix for a terminal. Pure: Report -> text."""

from __future__ import annotations

from ..results import Report
from . import cells


def render_matrix(report: Report, width: int = 100) -> str:
    kinfo = report.kernel_order()
    kernels = [k.id for k in kinfo]
    subjects = report.subjects()
    lines: list[str] = []
    if not subjects:
        return "no results\n"
    labels = {s: cells.row_label(report, s, "└ ") for s in subjects}
    sw = min(max(len(x) for x in labels.values()), 48)
    cw = max([8, *(len(k) for k in kernels)]) + 1
    header = "subject".ljust(sw) + "  " + "".join(k.rjust(cw) for k in kernels)
    lines.append(header)
    lines.append("-" * len(header))
    for s in subjects:
        name = labels[s] if len(labels[s]) <= sw else "…" + labels[s][-(sw - 1):]
        row = name.ljust(sw) + "  "
        row += "".join(cells.term(report.cell(s, k)).rjust(cw) for k in kernels)
        lines.append(row)
    lines.append("")
    lines.append("kernels: " + "; ".join(
        f"{k.id} = {k.release} [{k.accel or '?'}"
        + (f", VM {k.vm_seconds:.0f}s" if k.vm_seconds else "") + "]"
        for k in kinfo))
    if report.run.get("jobs"):
        run = report.run
        lines.append(f"run: {run['jobs']} VM(s) at a time, {run.get('cpus', '?')} vCPU(s) each "
                     f"({'-j auto: ' if run.get('auto') else ''}{run.get('why', '')})")
    lines.append("legend: " + " | ".join(f"{m}: {t}" for m, t in cells.legend(symbols=False)))
    if cells.has_objects(report):
        lines.append(cells.INFO_ROWS.replace("↳", "└"))
    if any(cells.predicted_only(r) for r in report.results):
        lines.append(f"{cells.PREDICTED_LEGEND[0]}: {cells.PREDICTED_LEGEND[2]}")
    disagree = cells.disagreements(report)
    if disagree:  # a bug in the prediction or a kernel surprise: first
        lines.append("")
        lines.append(f"predicted before booting, observed otherwise ({len(disagree)}):")
        lines += [f" ? {d}" for d in disagree]
    explained = [r for s in subjects for k in kernels
                 if (r := report.cell(s, k)) is not None and cells.worth_explaining(r)]
    explained.sort(key=lambda r: not r.unexplained)  # the ones worth a look first
    if explained:
        lines.append("")
        lines.append("why:")
        for r in explained:
            mark = "!" if not r.meets_expectation else " "
            detail = " ".join(r.detail.split())
            if len(detail) > width * 2:
                detail = detail[: width * 2 - 1] + "…"
            tag = f"{r.status}, {r.stage}, {r.cause}" if r.cause else f"{r.status}, {r.stage}"
            if r.unexplained:
                minimum = r.predicted or "minimum kernel"  # an object row: its programs'
                tag = f"UNEXPLAINED: refused at or above its predicted {minimum}; {tag}"
            expect = cells.expectation_text(r)
            if expect and not r.info:
                tag += f"; {expect}"
            lines.append(f" {mark} {r.subject} @ {r.kernel} [{tag}]: {detail}")
    for r in report.results:
        if r.status == "pass" and not r.meets_expectation:
            lines.append(f" ! {r.subject} @ {r.kernel}: {r.detail}")
    diffs = cells.differences(report)
    if diffs:
        lines.append("differences from the same line's generic x86_64 build:")
        lines += [f"   {d}" for d in diffs]
    predicted = cells.predictions(report)
    if predicted:
        lines.append("predicted minimum kernel (read from the object) vs observed:")
        lines += [f"   {p}" for p in predicted]
    summary = cells.prediction_summary(report)
    if summary:
        lines.append(summary)
    for note in report.notes:
        lines.append(f"note: {note}")
    bad = cells.causes(cells.not_as_expected(report))
    if bad:
        lines.append("not as expected, by cause: " + ", ".join(f"{c} {n}" for c, n, _ in bad))
    lines.append("")
    lines.append(cells.verdict_line(report))
    return "\n".join(lines) + "\n"
