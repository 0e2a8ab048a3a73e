import json

import pytest

from harness.errors import ConfigError
from harness.report.terminal import render_matrix
from harness.results import SCHEMA_VERSION, KernelInfo, Report, Result, VerifierInfo


def sample() -> Report:
    ks = [KernelInfo(i, f"{v}-amd64", v, accel="tcg", vm_seconds=10) for i, v in
          [("6.12", "6.12.107"), ("5.10", "5.10.223"), ("7.2", "7.2.13"), ("6.1", "6.1.150")]]
    rs = [
        Result("p", "5.10", "skip", "load", "needs bpf_loop (>= 5.17)", expected="skip"),
        Result("p", "6.1", "pass", "behavior", verifier=VerifierInfo(insns_processed=10)),
        Result("p", "6.12", "reject", "load", "verifier: invalid mem access"),
        Result("p", "7.2", "pass", "behavior"),
    ]
    return Report(kernels=ks, results=rs, loaders={"libbpf": "1.1.2"})


def test_round_trip_and_schema():
    r = sample()
    d = json.loads(r.to_json())
    assert d["schema_version"] == SCHEMA_VERSION and list(d)[:2] == ["schema_version", "harness_version"]
    back = Report.from_dict(d)
    assert back.results[1].verifier.insns_processed == 10
    assert back.to_dict() == r.to_dict()
    d["schema_version"] = 99
    with pytest.raises(ConfigError, match="schema_version 99"):
        Report.from_dict(d)


def test_ok_means_every_cell_meets_expectation():
    r = sample()
    assert not r.ok
    r.results[2].status = "pass"
    assert r.ok
    r.interrupted = True
    assert not r.ok


def test_matrix_columns_in_version_order_and_failures_explained():
    text = render_matrix(sample())
    header = text.splitlines()[0].split()
    assert header[1:] == ["5.10", "6.1", "6.12", "7.2"]
    assert "REJECT!" in text
    assert "p @ 6.12 [load]: verifier: invalid mem access" in text
    assert "needs bpf_loop" in text
    assert "NOT OK: 3 of 4 cells as expected, 1 not" in text
    assert "legend:" in text


def test_merge_later_wins():
    a, b = sample(), sample()
    b.results[2].status = "pass"
    a.merge(b)
    assert a.cell("p", "6.12").status == "pass" and len(a.results) == 4
