"""The compatibility matrix for a terminal. Pure: Report -> text."""

from __future__ import annotations

from ..results import Report, Result
from ..versions import KernelVersion

SYMBOL = {
    "pass": "pass",
    "reject": "REJECT",
    "fail": "FAIL",
    "skip": "skip",
    "error": "ERROR",
    "crash": "CRASH",
    "timeout": "TIMEOUT",
}
LEGEND = (
    "pass: accepted (and attached / behaved where checked) | skip: below the declared minimum "
    "kernel | REJECT: refused at load | FAIL: attach, behaviour or command failed | ERROR: "
    "harness problem | CRASH: kernel crashed | TIMEOUT: no verdict in time | '!' marks a cell "
    "that does not meet its expectation"
)


def _kernel_order(report: Report) -> list[str]:
    def key(k):
        try:
            return KernelVersion.parse(k.version or k.release)
        except Exception:
            return KernelVersion(0, 0, 0)

    return [k.id for k in sorted(report.kernels, key=key)]


def _cell(r: Result | None) -> str:
    if r is None:
        return "-"
    text = SYMBOL.get(r.status, r.status)
    return text if r.meets_expectation else text + "!"


def render_matrix(report: Report, width: int = 100) -> str:
    kernels = _kernel_order(report)
    subjects = report.subjects()
    lines: list[str] = []
    if not subjects:
        return "no results\n"
    sw = min(max(len(s) for s in subjects), 48)
    cw = max([8, *(len(k) for k in kernels)]) + 1
    header = "subject".ljust(sw) + "  " + "".join(k.rjust(cw) for k in kernels)
    lines.append(header)
    lines.append("-" * len(header))
    for s in subjects:
        name = s if len(s) <= sw else "…" + s[-(sw - 1):]
        row = name.ljust(sw) + "  "
        row += "".join(_cell(report.cell(s, k)).rjust(cw) for k in kernels)
        lines.append(row)
    lines.append("")
    kinfo = {k.id: k for k in report.kernels}
    lines.append("kernels: " + "; ".join(
        f"{k} = {kinfo[k].release} [{kinfo[k].accel or '?'}"
        + (f", VM {kinfo[k].vm_seconds:.0f}s" if kinfo[k].vm_seconds else "") + "]"
        for k in kernels))
    lines.append("legend: " + LEGEND)
    explained = [r for s in subjects for k in kernels
                 if (r := report.cell(s, k)) is not None and r.status != "pass"]
    if explained:
        lines.append("")
        lines.append("why:")
        for r in explained:
            mark = "!" if not r.meets_expectation else " "
            detail = " ".join(r.detail.split())
            if len(detail) > width * 2:
                detail = detail[: width * 2 - 1] + "…"
            lines.append(f" {mark} {r.subject} @ {r.kernel} [{r.stage}]: {detail}")
    bad = [r for r in report.results if not r.meets_expectation]
    for r in report.results:
        if r.status == "pass" and r.expected == "skip":
            lines.append(f" ! {r.subject} @ {r.kernel}: {r.detail}")
    lines.append("")
    total = len(report.results)
    verdict = "OK" if report.ok else "NOT OK"
    extra = " (interrupted: results are partial)" if report.interrupted else ""
    lines.append(f"{verdict}: {total - len(bad)} of {total} cells as expected, "
                 f"{len(bad)} not{extra}")
    return "\n".join(lines) + "\n"
