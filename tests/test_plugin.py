"""The pytest plugin with pytester. The 'local' backend runs the guest side on this
machine instead of a VM, so these tests are fast; tests/vm proves the real thing."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def bzimage(path: Path, release: str) -> Path:
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x400)
    s = f"{release} (builder@host) #1 SMP".encode() + b"\0"
    data[0x600 : 0x600 + len(s)] = s
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def kernels(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> str:
    # the harness's cache (run directories) inside this test's directory
    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "cache"))
    a = bzimage(pytester.path / "bzA", "5.10.0-t")
    b = bzimage(pytester.path / "bzB", "6.12.0-t")
    return f"{a},{b}"


def run(pytester: pytest.Pytester, kernels: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--kernels", kernels, "--ebpf-backend", "local",
                                         "-p", "no:cacheprovider", *args)


SAMPLE = """
import os
import pytest

def test_plain():
    assert True

def test_kernel(kernel):
    assert kernel.version.major >= 5
    print("KERNEL", kernel.id)

@pytest.mark.kernels(">=6.1", "<7.0")
def test_ranged():
    pass

@pytest.mark.min_kernel("6.1", feature="bpf_magic")
def test_min(kernel):
    value = 1
    assert value == 2, "magic is missing"

@pytest.mark.parametrize("n", [1, 2])
def test_param(kernel, n):
    assert n
"""


def test_inert_without_kernels(pytester: pytest.Pytester):
    pytester.makepyfile(test_a="def test_a():\n    assert True\n")
    r = pytester.runpytest_subprocess("-v")
    r.assert_outcomes(passed=1)
    assert "ebpf-harness: kernels" not in r.stdout.str()  # no summary line, no VM


def test_kernel_fixture_without_kernels_says_what_to_do(pytester: pytest.Pytester):
    pytester.makepyfile(test_a="def test_a(kernel):\n    pass\n")
    r = pytester.runpytest_subprocess()
    r.assert_outcomes(errors=1)
    r.stdout.fnmatch_lines(["*run pytest with --kernels*"])


def test_parametrization_markers_and_ids(pytester: pytest.Pytester, kernels: str):
    pytester.makepyfile(test_s=SAMPLE)
    r = run(pytester, kernels, "-v", "-rA")
    r.stdout.fnmatch_lines([
        "*test_kernel[[]5.10.0-t[]] PASSED*",
        "*test_kernel[[]6.12.0-t[]] PASSED*",
        "*test_param[[]1-5.10.0-t[]] PASSED*",  # the kernel id comes last
    ])
    out = r.stdout.str()
    assert "test_ranged[6.12.0-t]" in out and "test_ranged[5.10.0-t]" not in out
    # below the minimum: a skip naming the feature; at or above it: a real failure
    assert "SKIPPED" in out and "needs bpf_magic (>= 6.1)" in out
    r.stdout.fnmatch_lines(["*FAILED*test_min[[]6.12.0-t[]]*"])
    # the assertion was rewritten in the guest and its message came back
    r.stdout.fnmatch_lines(["*AssertionError: magic is missing*", "*assert 1 == 2*"])
    r.stdout.fnmatch_lines(["*KERNEL 5.10.0-t*"])  # captured stdout of the guest body
    r.assert_outcomes(passed=8, failed=1, skipped=1)


def test_k_selection_and_exitfirst(pytester: pytest.Pytester, kernels: str):
    pytester.makepyfile(test_s=SAMPLE)
    r = run(pytester, kernels, "-k", "test_kernel")
    r.assert_outcomes(passed=2)
    r = run(pytester, kernels, "-x", "-k", "test_min")
    r.assert_outcomes(failed=1, skipped=1)


def test_results_model_and_junit(pytester: pytest.Pytester, kernels: str):
    pytester.makepyfile(test_s=SAMPLE)
    out = pytester.path / "r.json"
    junit = pytester.path / "j.xml"
    run(pytester, kernels, "--ebpf-json", str(out), "--junitxml", str(junit))
    d = json.loads(out.read_text())
    assert d["schema_version"] == 5
    cells = {(r["subject"], r["kernel"]): r for r in d["results"]}
    assert cells[("test_s.py::test_min", "5.10.0-t")]["status"] == "skip"
    fail = cells[("test_s.py::test_min", "6.12.0-t")]
    assert fail["status"] == "fail" and "magic is missing" in fail["detail"]
    assert cells[("test_s.py::test_param[2]", "6.12.0-t")]["status"] == "pass"
    assert ("test_s.py::test_plain", "5.10.0-t") not in cells  # not a kernel test
    assert sorted(k["id"] for k in d["kernels"]) == ["5.10.0-t", "6.12.0-t"]
    # the two kernels' guests ran side by side, sharing the cores (vm.plan under TCG)
    from harness.vm.plan import host_cores

    assert [k["cpus"] for k in d["kernels"]] == [min(2, max(1, host_cores() // 2))] * 2
    xml = junit.read_text()
    assert 'name="test_kernel[5.10.0-t]"' in xml and 'name="test_kernel[6.12.0-t]"' in xml


TEARDOWN = """
import pytest

@pytest.fixture
def broken_cleanup():
    yield
    raise RuntimeError("cleanup failed")

def test_torn(kernel, broken_cleanup):
    pass

@pytest.mark.min_kernel("6.1", feature="bpf_magic")
def test_new(kernel):
    pass
"""


def test_one_cell_per_test_and_expected_skips(pytester: pytest.Pytester, kernels: str):
    pytester.makepyfile(test_t=TEARDOWN)
    out = pytester.path / "r.json"
    run(pytester, kernels, "--ebpf-json", str(out))
    d = json.loads(out.read_text())
    keys = [(r["subject"], r["kernel"]) for r in d["results"]]
    assert len(keys) == len(set(keys)) == 4  # call and teardown are one cell
    cells = {k: r for k, r in zip(keys, d["results"], strict=True)}
    torn = cells[("test_t.py::test_torn", "6.12.0-t")]
    assert torn["status"] == "fail" and "cleanup failed" in torn["output"]
    skip = cells[("test_t.py::test_new", "5.10.0-t")]
    # not run, as the test asked: as expected, not a failure
    assert (skip["status"], skip["expected"], skip["expected_by"]) == ("skip", "skip", "test")
    assert cells[("test_t.py::test_new", "6.12.0-t")]["status"] == "pass"


def test_reports_and_baseline_gate(pytester: pytest.Pytester, kernels: str):
    pytester.makepyfile(test_g="def test_g(kernel):\n    assert True\n")
    base = pytester.path / "base.json"
    r = run(pytester, kernels, "--ebpf-json", str(base), "--ebpf-md", "r.md", "--ebpf-html", "r.html")
    r.assert_outcomes(passed=2)
    assert "| `test_g.py::test_g` | ✅ | ✅ |" in (pytester.path / "r.md").read_text()
    assert 'id="matrix"' in (pytester.path / "r.html").read_text()
    # the same tests against their own baseline: the gate passes
    r = run(pytester, kernels, "--ebpf-baseline", str(base))
    assert r.ret == 0 and "regression gate: PASS" in r.stdout.str()
    # a test that now fails on one kernel is a regression the gate names
    pytester.makepyfile(test_g="import os\n\ndef test_g(kernel):\n"
                               "    assert kernel.id != '5.10.0-t'\n")
    r = run(pytester, kernels, "--ebpf-baseline", str(base))
    assert r.ret == 1
    r.stdout.fnmatch_lines(["*regression gate: FAIL*", "*test_g.py::test_g @ 5.10.0-t: pass → fail*"])
    # a baseline that is not a results file is a usage error before any VM
    (pytester.path / "bad.json").write_text("[]")
    r = run(pytester, kernels, "--ebpf-baseline", "bad.json")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "not an ebpf-harness results file" in r.stderr.str()


def test_xdist_keeps_each_kernel_on_one_worker(pytester: pytest.Pytester, kernels: str):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_s=SAMPLE)
    out = pytester.path / "r.json"
    r = run(pytester, kernels, "-n", "2", "-v", "--ebpf-json", str(out))
    r.assert_outcomes(passed=8, failed=1, skipped=1)
    # one guest session per kernel, not one per worker and kernel
    runs = sorted(Path(pytester.path).rglob("pytest-reports.jsonl"))
    assert len(runs) == 2, runs
    # the controller writes the results model, with plain subjects
    subjects = {r["subject"] for r in json.loads(out.read_text())["results"]}
    assert "test_s.py::test_kernel" in subjects and not any("@" in s for s in subjects)


def test_unknown_kernel_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile(test_a="def test_a(kernel):\n    pass\n")
    r = pytester.runpytest_subprocess("--kernels", "4.19")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*unknown kernel '4.19'*"])


@pytest.mark.parametrize(("growth", "message"), [
    ("5", "*--ebpf-max-insns-growth needs --ebpf-baseline BASE.json*"),
    ("-1", "*--ebpf-max-insns-growth -1: give a percentage of 0 or more*"),
])
def test_growth_without_a_baseline_is_a_usage_error(pytester: pytest.Pytester, kernels: str,
                                                    growth: str, message: str):
    pytester.makepyfile(test_a="def test_a(kernel):\n    pass\n")
    r = run(pytester, kernels, f"--ebpf-max-insns-growth={growth}")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines([message])


def test_pure_helpers():
    from harness.plugin.host import base_nodeid, failure_line, guests_at_once, outcome_status

    # xdist workers' guests run side by side: each worker plans for all of them
    assert guests_at_once(3, 3, None) == 3
    assert guests_at_once(1, 5, {"workercount": 2}) == 2
    assert guests_at_once(1, 2, {"workercount": 8}) == 2
    from harness.plugin.selection import KernelRef, min_kernel_decision, select
    from harness.versions import KernelVersion

    assert base_nodeid("t.py::test_x[6.12]", "6.12") == "t.py::test_x"
    assert base_nodeid("t.py::test_x[a-6.12]", "6.12") == "t.py::test_x[a]"
    assert base_nodeid("t.py::test_x[a-6.12]@kernel-6.12", "6.12") == "t.py::test_x[a]"
    assert failure_line("def f():\n>   assert x\nE   assert 1 == 2\nE   +1\nt.py:3: AssertionError") \
        == "assert 1 == 2"
    # the host's own record of a test its guest never finished, never its message's words
    assert outcome_status("failed", "call", "crash") == ("crash", "run")
    assert outcome_status("failed", "call") == ("fail", "behavior")
    assert outcome_status("failed", "setup") == ("fail", "run")
    assert outcome_status("passed", "call") == ("pass", "behavior")
    ks = [KernelRef(i, i, KernelVersion.parse(i)) for i in ("5.10", "6.1", "6.12", "7.3")]
    assert [k.id for k in select(ks, (">=6.1", "<7.0"))] == ["6.1", "6.12"]
    d = min_kernel_decision(ks[0], "5.17", "bpf_loop")
    assert d.skip and "bpf_loop" in d.reason
    assert not min_kernel_decision(ks[1], "5.17", None).skip
