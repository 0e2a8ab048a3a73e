"""The results model: round trip, schema validation on read, version 1 files, merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reports_data import sample

from harness.errors import ResultsError
from harness.report.terminal import render_matrix
from harness.results import SCHEMA_VERSION, Report, merge, read_all, validate


def test_round_trip_validates_against_the_shipped_schema(tmp_path: Path):
    r = sample()
    p = tmp_path / "r.json"
    r.write(p)
    d = json.loads(p.read_text())
    assert d["schema_version"] == SCHEMA_VERSION == 5
    validate(d)
    back = Report.read(p)
    assert back.to_dict() == r.to_dict()
    assert back.cell("observability/loop", "6.1").verifier.jited_bytes == 110
    assert oct(p.stat().st_mode & 0o777) == "0o644"


def test_version_1_files_are_read(tmp_path: Path):
    d = sample().to_dict()
    d["schema_version"] = 1
    for k in d["kernels"]:
        del k["pinned"]
    for r in d["results"]:
        if r["verifier"]:
            for key in ("max_states_per_insn", "verification_usec", "stack_depth",
                        "xlated_bytes", "jited_bytes"):
                del r["verifier"][key]
    p = tmp_path / "v1.json"
    p.write_text(json.dumps(d))
    back = Report.read(p)
    assert back.schema_version == SCHEMA_VERSION
    v = back.cell("observability/loop", "6.1").verifier
    assert v.insns_processed == 10 and v.jited_bytes is None
    assert not back.kernels[0].pinned


def test_version_3_files_are_upgraded_to_what_happened_beside_what_was_expected(tmp_path: Path):
    """Version 3 wrote an expected refusal as 'skip' with the real status in the detail, and
    rows for information as expected 'info'; version 4 reads them as what happened."""
    res = [
        {"subject": "observability/loop", "kernel": "5.10", "status": "skip", "stage": "load",
         "detail": "needs bpf_loop (>= 5.17); reject: verifier: invalid func unknown#181",
         "expected": "skip", "cause": "missing-helper"},
        {"subject": "o.bpf.o", "kernel": "5.10", "status": "skip", "stage": "load",
         "detail": "below its minimum kernel: program p: needs x; fail: attach failed",
         "expected": "skip", "row": "object", "cause": "attach-failure"},
        {"subject": "o.bpf.o:p", "kernel": "5.10", "status": "pass", "stage": "attach",
         "detail": "ok", "expected": "info", "row": "program", "parent": "o.bpf.o"},
        {"subject": "o.bpf.o:q", "kernel": "5.10", "status": "skip", "stage": "load",
         "detail": "switched off by the set-up file (q.toml)", "expected": "info",
         "row": "program", "parent": "o.bpf.o"},
        {"subject": "t.py::test_x", "kernel": "5.10", "status": "skip", "stage": "run",
         "detail": "needs 6.1", "expected": "skip"},
    ]
    d = {"schema_version": 3, "kernels": [{"id": "5.10", "release": "5.10.0-1-amd64",
                                            "version": "5.10.223"}], "results": res}
    p = tmp_path / "v3.json"
    p.write_text(json.dumps(d))
    back = Report.read(p)
    loop, obj, prog, off, test = back.results
    assert (loop.status, loop.expected, loop.expected_by, loop.expected_reason) == \
        ("reject", "refusal", "declaration", "needs bpf_loop (>= 5.17)")
    assert loop.as_expected and loop.cause == "missing-helper"
    assert (obj.status, obj.expected, obj.expected_by, obj.as_expected) == \
        ("fail", "refusal", "prediction", True)
    assert prog.info and prog.expected == "pass" and prog.meets_expectation
    assert (off.status, off.cause, off.expected) == ("skip", "switched-off", "skip")
    assert (test.status, test.expected, test.expected_by) == ("skip", "skip", "test")
    assert back.ok and back.counts() == (3, 3)
    validate(back.to_dict())  # written again as version 4


@pytest.mark.parametrize(("content", "message"), [
    ("[1, 2]", "not an ebpf-harness results file"),
    ('{"a": 1}', "not an ebpf-harness results file"),
    ("{not json", "not JSON"),
    ('{"schema_version": 6, "results": [], "kernels": []}', "schema_version 6"),
    ('{"schema_version": 2, "kernels": [], "results": [{"subject": "x", "kernel": "6.1"}]}',
     "at results/0: 'status' is a required property"),
    ('{"schema_version": 2, "kernels": [], "results": [{"subject": "x", "kernel": "6.1", '
     '"status": "great", "stage": "run"}]}', "at results/0/status: 'great' is not one of"),
    ('{"schema_version": 2, "kernels": [{"id": "6.1"}], "results": []}',
     "'release' is a required property"),
])
def test_bad_results_files_are_one_line_errors(tmp_path: Path, content: str, message: str):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(ResultsError, match=message) as e:
        Report.read(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_a_missing_file_is_a_results_error(tmp_path: Path):
    with pytest.raises(ResultsError, match="cannot read results file"):
        Report.read(tmp_path / "nope.json")


def _split(report: Report, kernels: set[str]) -> Report:
    return Report(kernels=[k for k in report.kernels if k.id in kernels],
                  results=[r for r in report.results if r.kernel in kernels],
                  loaders=dict(report.loaders))


def test_merge_joins_per_kernel_runs_into_one_matrix():
    whole = sample()
    parts = [(f"r-{k}.json", _split(whole, {k})) for k in ("5.10", "6.1", "6.12", "7.2")]
    merged = merge(parts)
    assert {k.id for k in merged.kernels} == {"5.10", "6.1", "6.12", "7.2"}
    assert len(merged.results) == len(whole.results)
    assert render_matrix(merged) == render_matrix(whole)
    # the same cell twice with the same outcome is fine
    assert len(merge([("a", whole), ("b", sample())]).results) == len(whole.results)


def test_merge_conflict_names_both_files_subject_and_kernel():
    a, b = sample(), sample()
    b.cell("observability/loop", "6.12").status = "pass"
    with pytest.raises(ResultsError) as e:
        merge([("a.json", a), ("b.json", b)])
    msg = str(e.value)
    assert "observability/loop @ 6.12" in msg and "a.json" in msg and "b.json" in msg
    assert "reject" in msg and "pass" in msg


def test_merge_refuses_two_builds_under_one_kernel_id():
    a, b = sample(), sample()
    b.kernels[0].release = "6.12.107+deb-amd64"
    with pytest.raises(ResultsError, match=r"kernel 6.12 is 6\.12\.94.* in a\.json but 6\.12\.107"):
        merge([("a.json", a), ("b.json", b)])


def test_read_all_merges_several_files(tmp_path: Path):
    whole = sample()
    for k in ("5.10", "6.1", "6.12", "7.2"):
        _split(whole, {k}).write(tmp_path / f"{k}.json")
    merged = read_all(sorted(tmp_path.glob("*.json")))
    assert len(merged.results) == 8 and not merged.ok
    assert merged.interrupted is False


def test_merge_of_an_interrupted_run_is_partial():
    a, b = _split(sample(), {"5.10"}), _split(sample(), {"6.1"})
    b.interrupted = True
    m = merge([("a", a), ("b", b)])
    assert m.interrupted and not m.ok
    assert "partial" in render_matrix(m)


def test_ok_means_every_cell_meets_expectation():
    r = sample()
    assert not r.ok
    r.cell("observability/loop", "6.12").status = "pass"
    r.cell("security/lsm <x>", "6.12").status = "pass"
    assert r.ok
    r.interrupted = True
    assert not r.ok


def test_matrix_columns_in_version_order_and_failures_explained():
    text = render_matrix(sample())
    header = text.splitlines()[0].split()
    assert header[1:] == ["5.10", "6.1", "6.12", "7.2"]
    assert "REJECT!" in text and "CRASH!" in text
    assert "observability/loop @ 6.12 [reject, load]: verifier: invalid mem access" in text
    assert "needs bpf_loop" in text
    assert "NOT OK: 6 of 8 cells as expected, 2 not" in text


def test_atomic_writes_leave_no_temporary_file_behind(tmp_path: Path):
    from harness.fsio import write_atomic

    p = tmp_path / "d" / "f.json"
    write_atomic(p, b"one")
    write_atomic(p, b"two")
    assert p.read_bytes() == b"two" and oct(p.stat().st_mode & 0o777) == "0o644"
    assert [x.name for x in p.parent.iterdir()] == ["f.json"]
