"""Renderers (Markdown, JUnit, HTML, badge, site), the regression gate and the `report`
commands, on results models built in code."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from reports_data import kernels, sample, vi

from harness.cli import main
from harness.report.badge import render_badge
from harness.report.diff import diff, render_md, render_term
from harness.report.html import render_html, write_site
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.report.terminal import render_matrix
from harness.results import Report, Result, VerifierInfo, schema


def test_markdown_matrix_legend_kernels_and_details():
    md = render_markdown(sample())
    lines = md.splitlines()
    assert lines[0].startswith("## ❌") and "6 of 8 cells as expected" in lines[0]
    head = next(ln for ln in lines if ln.startswith("| subject |"))
    assert head == "| subject | 5.10 | 6.1 | 6.12 | 7.2 |"
    assert "| `observability/loop` | ⏭️ | ✅ | ⛔ | ✅ |" in lines
    assert "**Legend:**" in md and "⛔ refused at load" in md
    assert "| 6.12 | 6.12.94+deb-amd64 | debian:test 6.12.94-1 | tcg | 8 s | 40 s |" in md
    # exactly the two cells not as expected get a details block, with the verifier summary
    assert md.count("<details>") == 2
    assert "R1 invalid mem access 'scalar'" in md and "BUG: kernel NULL pointer" in md
    assert "needs bpf_loop" not in md  # an expected skip is not listed


def test_markdown_of_an_ok_run_has_no_details():
    r = sample()
    r.results = [x for x in r.results if x.meets_expectation]
    md = render_markdown(r)
    assert md.startswith("## ✅") and "<details>" not in md


def test_junit_one_case_per_cell_with_failures_skips_and_properties():
    root = ET.fromstring(render_junit(sample()))
    assert root.get("tests") == "8" and root.get("failures") == "2" and root.get("skipped") == "1"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["kernel 5.10", "kernel 6.1", "kernel 6.12", "kernel 7.2"]
    k612 = suites[2]
    props = {p.get("name"): p.get("value") for p in k612.find("properties")}
    assert props["release"] == "6.12.94+deb-amd64" and props["accel"] == "tcg"
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    rej = cases[("observability/loop", "6.12")]
    assert rej.find("failure").get("type") == "reject"
    assert "invalid mem access" in rej.find("failure").text
    assert cases[("observability/loop", "5.10")].find("skipped") is not None
    assert cases[("observability/loop", "6.1")].find("failure") is None


def test_badge_counts_and_colour():
    svg = render_badge(sample())
    ET.fromstring(svg)
    assert "6/8 as expected" in svg and "#e05d44" in svg
    r = sample()
    r.results = [x for x in r.results if x.meets_expectation]
    assert "#4c1" in render_badge(r)


def test_html_is_self_contained_with_matrix_charts_and_escaped_logs():
    html = render_html(sample())
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"?(https?:)?//", html)
    assert 'id="matrix"' in html and html.count('data-cell="') == 8
    for chart in ("chart-insns", "chart-status", "chart-time"):
        assert f'id="{chart}"' in html
    # the subject '<x>' and verifier text are escaped, never markup
    assert "security/lsm &lt;x&gt;" in html and "<x>" not in html
    assert "R1 invalid mem access &#39;scalar&#39;" in html
    assert "verification µs" in html  # statistics of a passing cell


def test_site_has_index_report_results_and_badge(tmp_path: Path):
    index = write_site(sample(), tmp_path / "site")
    names = sorted(p.name for p in index.parent.iterdir())
    assert names == ["badge.svg", "index.html", "report.html", "results.json"]
    text = index.read_text()
    assert 'href="report.html"' in text and "6 of 8 cells as expected" in text
    assert Report.read(index.parent / "results.json").to_dict() == sample().to_dict()


# -- the regression gate ------------------------------------------------------------------

def test_identical_results_pass_the_gate():
    d = diff(sample(), sample())
    assert not d.failed and not d.of("worse") and len(d.of("unchanged")) == 8
    assert render_term(d).startswith("regression gate: PASS")


def test_a_program_that_now_needs_a_newer_helper_fails_the_gate_naming_the_cell():
    base, new = sample(), sample()
    cell = new.cell("security/lsm <x>", "5.10")
    cell.status, cell.stage, cell.detail = "reject", "load", "verifier: invalid func unknown#181"
    d = diff(base, new)
    assert d.failed
    [w] = d.of("worse")
    assert (w.subject, w.kernel, w.transition) == ("security/lsm <x>", "5.10", "pass → reject")
    assert "security/lsm <x> @ 5.10: pass → reject: verifier: invalid func unknown#181" in render_term(d)
    assert "| `security/lsm <x>` | 5.10 | pass → reject |" in render_md(d)


def test_better_changed_new_and_gone():
    base, new = sample(), sample()
    new.cell("observability/loop", "6.12").status = "pass"
    new.cell("security/lsm <x>", "6.12").status = "timeout"
    new.results = [r for r in new.results if r.kernel != "7.2"]
    new.kernels = [k for k in new.kernels if k.id != "7.2"]
    new.results.append(Result("networking/new", "6.1", "pass", "behavior"))
    new.results.append(Result("networking/broken", "6.1", "fail", "attach", "no such hook"))
    d = diff(base, new)
    assert [c.subject for c in d.of("better")] == ["observability/loop"]
    assert [c.transition for c in d.of("changed")] == ["crash → timeout"]
    assert d.gone_kernels == ["7.2"] and len(d.of("gone")) == 2
    assert d.new_subjects == ["networking/new"]
    # a new subject that does not meet its expectation is a regression
    assert [c.subject for c in d.of("worse")] == ["networking/broken"] and d.failed


def test_kernels_are_matched_by_line_and_the_build_change_is_named():
    base = sample()
    new = sample()
    new.kernels = kernels(builds={"6.12": "6.12.107"})
    d = diff(base, new)
    assert not d.failed and not d.new_kernels and not d.gone_kernels
    assert d.builds == [("6.12", "6.12.94+deb-amd64", "6.12.107+deb-amd64")]
    assert "build changed: 6.12: 6.12.94+deb-amd64 → 6.12.107+deb-amd64" in render_term(d)


def test_pinned_builds_are_matched_exactly():
    base = sample()
    base.kernels = kernels(pinned=True)
    new = sample()
    new.kernels = kernels(pinned=True, builds={"6.12": "6.12.107"})
    d = diff(base, new)
    assert d.new_kernels == ["6.12"] and d.gone_kernels == ["6.12"]
    assert not d.builds


def test_instruction_growth_is_reported_and_fails_only_past_the_limit():
    base, new = sample(), sample()
    new.cell("security/lsm <x>", "5.10").verifier = vi(130)  # +30%
    d = diff(base, new)
    assert not d.failed and [s.pct for s in d.growth()] == [30.0]
    assert "security/lsm <x> @ 5.10: 100 → 130 (+30.0%)" in render_term(d)
    assert diff(base, new, max_insns_growth=50).failed is False
    d = diff(base, new, max_insns_growth=10)
    assert d.failed and "grew more than 10%" in render_term(d)


def test_other_statistics_are_compared():
    base, new = sample(), sample()
    new.cell("observability/loop", "6.1").verifier = vi(10, )
    new.cell("observability/loop", "6.1").verifier.jited_bytes = 150
    d = diff(base, new)
    assert [(s.stat, s.base, s.new) for s in d.stats] == [("jited_bytes", 110, 150)]


# -- the report commands --------------------------------------------------------------------

def _write(tmp_path: Path, name: str, report: Report) -> Path:
    p = tmp_path / name
    report.write(p)
    return p


def test_report_render_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    p = _write(tmp_path, "r.json", sample())
    # like check and matrix, 1 when a cell does not meet its expectation
    assert main(["report", "render", str(p)]) == 1
    assert "NOT OK: 6 of 8" in capsys.readouterr().out
    assert main(["report", str(p)]) == 1  # the form before `render` existed
    assert "NOT OK: 6 of 8" in capsys.readouterr().out
    for fmt, check in (("md", "| subject |"), ("junit", "<testsuites"), ("html", "<!DOCTYPE html>")):
        out = tmp_path / f"out.{fmt}"
        assert main(["report", "render", str(p), "--format", fmt, "-o", str(out)]) == 1
        assert check in out.read_text()


def test_report_render_merges_several_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    whole = sample()
    paths = []
    for k in ("5.10", "6.1", "6.12", "7.2"):
        part = copy.deepcopy(whole)
        part.kernels = [x for x in part.kernels if x.id == k]
        part.results = [x for x in part.results if x.kernel == k]
        paths.append(str(_write(tmp_path, f"{k}.json", part)))
    assert main(["report", "render", *paths, "-f", "md"]) == 1
    assert "| `observability/loop` | ⏭️ | ✅ | ⛔ | ✅ |" in capsys.readouterr().out
    out = tmp_path / "merged.json"
    assert main(["report", "merge", *paths, "-o", str(out)]) == 0
    def key(r: dict) -> tuple[str, str]:
        return r["subject"], r["kernel"]

    merged = Report.read(out).to_dict()["results"]
    assert sorted(merged, key=key) == sorted(json.loads(whole.to_json())["results"], key=key)


def test_report_merge_conflict_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    a = _write(tmp_path, "a.json", sample())
    other = sample()
    other.cell("observability/loop", "6.12").status = "pass"
    b = _write(tmp_path, "b.json", other)
    assert main(["report", "merge", str(a), str(b), "-o", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a.json" in err and "b.json" in err and "6.12" in err
    assert not (tmp_path / "m.json").exists()


def test_report_diff_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    base = _write(tmp_path, "base.json", sample())
    same = _write(tmp_path, "same.json", sample())
    assert main(["report", "diff", str(base), str(same)]) == 0
    worse = sample()
    worse.cell("observability/loop", "7.2").status = "reject"
    new = _write(tmp_path, "new.json", worse)
    capsys.readouterr()
    assert main(["report", "diff", str(base), str(new), "--format", "md"]) == 1
    assert "observability/loop` | 7.2 | pass → reject" in capsys.readouterr().out


def test_report_schema_and_badge(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["report", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == schema()
    p = _write(tmp_path, "r.json", sample())
    # 6 of 8 as expected: the badge is written, and the exit status says not all are
    assert main(["report", "badge", str(p), "-o", str(tmp_path / "b.svg")]) == 1
    assert "6/8" in (tmp_path / "b.svg").read_text()


@pytest.mark.parametrize("content", ["[]", "{bad", '{"schema_version": 9, "results": []}'])
def test_report_of_a_bad_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  content: str):
    p = tmp_path / "bad.json"
    p.write_text(content)
    assert main(["report", "render", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ebpf-harness: error:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_statistics_show_in_every_report():
    r = sample()
    r.cell("security/lsm <x>", "6.12").verifier = VerifierInfo(insns_processed=77, stack_depth=48)
    md = render_markdown(r)
    assert "insns processed 77, stack bytes 48" in md
    assert "stack bytes 48" in render_junit(r)


def test_causes_are_counted_in_the_reports():
    from harness.classify import classify

    r = sample()
    for x in r.results:
        x.cause = classify(x.status, x.stage, x.detail, x.verifier)
    assert r.cell("observability/loop", "6.12").cause == "verifier-rejection"
    md = render_markdown(r)
    assert "| `kernel-crash` | 1 | the kernel crashed |" in md
    assert "(load, verifier-rejection)" in md
    text = render_matrix(r)
    assert "not as expected, by cause: kernel-crash 1, verifier-rejection 1" in text
    assert 'type="verifier-rejection"' in render_junit(r)
    assert "cause: <code>kernel-crash</code>" in render_html(r)


def test_the_terminal_matrix_says_how_the_run_used_the_machine():
    r = sample()
    assert "run:" not in render_matrix(r)  # a merged or older report: nothing to say
    r.run = {"jobs": 2, "cpus": 1, "accel": "tcg", "cores": 2, "auto": True,
             "why": "2 core(s), tcg: 1 core(s) per guest"}
    assert ("run: 2 VM(s) at a time, 1 vCPU(s) each (-j auto: 2 core(s), tcg: 1 core(s) "
            "per guest)") in render_matrix(r)
