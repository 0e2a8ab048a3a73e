"""JUnit XML: one testsuite per kernel, one testcase per cell (classname the subject, name
the kernel id), so that CI systems show the matrix natively. Pure: Report -> text.

A cell that does not meet its expectation is a <failure> (an <error> for a harness
problem), an expected skip is <skipped>; the kernel's release, origin and accelerator
are properties of its suite and of each case.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..results import Report, Result
from . import cells
from .markdown import stats_line


def _props(parent: ET.Element, items: dict[str, str]) -> None:
    props = ET.SubElement(parent, "properties")
    for k, v in items.items():
        ET.SubElement(props, "property", name=k, value=v)


def _body(r: Result) -> str:
    parts = [r.detail]
    if r.verifier and r.verifier.summary:
        parts.append(f"verifier: {r.verifier.summary}")
    if stats_line(r):
        parts.append(f"statistics: {stats_line(r)}")
    if r.output:
        parts.append(r.output[-4000:])
    if r.console:
        parts.append(r.console[-4000:])
    return "\n\n".join(p for p in parts if p)


def render_junit(report: Report) -> str:
    root = ET.Element("testsuites", name="ebpf-harness")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    diffs = cells.difference_by_cell(report)
    for k in report.kernel_order():
        rs = [r for r in report.results if r.kernel == k.id]
        suite = ET.SubElement(root, "testsuite", name=f"kernel {k.id}")
        kprops = {"release": k.release, "origin": k.origin, "accel": k.accel or "unknown"}
        _props(suite, kprops)
        counts = {"tests": len(rs), "failures": 0, "errors": 0, "skipped": 0}
        for r in rs:
            case = ET.SubElement(suite, "testcase", classname=r.subject, name=k.id,
                                 time=f"{r.duration or 0:.3f}")
            props = {**kprops, "status": r.status, "stage": r.stage, "cause": r.cause}
            if (r.subject, k.id) in diffs:  # an arm64 or rt cell unlike its line's generic one
                props["difference"] = diffs[r.subject, k.id]
            _props(case, props)
            if r.meets_expectation and r.status != "pass":
                # not run, or refused where that was expected: neither a pass nor a failure
                what = r.detail if r.status == "skip" else \
                    f"{r.status} as {cells.expectation_text(r)}: {r.detail}"
                ET.SubElement(case, "skipped", message=what[:500])
                counts["skipped"] += 1
            elif not r.meets_expectation:
                tag = "error" if r.status in ("error", "setup") else "failure"
                el = ET.SubElement(case, tag, message=f"{r.status} ({r.stage}): {r.detail[:500]}",
                                   type=r.cause or r.status)
                el.text = _body(r)
                counts["errors" if tag == "error" else "failures"] += 1
        for key, v in counts.items():
            suite.set(key, str(v))
            totals[key] += v
        suite.set("time", f"{k.vm_seconds or 0:.3f}")
    for key, v in totals.items():
        root.set(key, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
