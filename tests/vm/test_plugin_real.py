"""The pytest plugin on real kernels: a user's test file, unknown to the harness, runs
with `pytest --kernels A,B`; bodies run in the guest, failures come back rewritten, and a
test that crashes one kernel leaves the other kernel's results intact."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.build.compile import compile_bpf
from harness.config import load_config
from harness.report.progress import Progress
from harness.session import _vmlinux_for, prepare_kernels, subjects_for_paths

pytestmark = pytest.mark.vm
pytest_plugins = ["pytester"]

KERNELS = os.environ.get("EBPF_HARNESS_TEST_KERNELS", "5.10,7.3")
DATA = Path(__file__).resolve().parent.parent / "data"
CACHE = load_config().cache_dir  # at import, while HOME is still the real one

USER_TESTS = '''
import os
import struct

OBJ = {obj!r}
CAPABLE = {capable!r}  # the object inside Debian's /usr/sbin/capable (libbpf-tools)
FEATURES = {features!r}  # ring buffer (5.8), bpf_loop (5.17), XDP


def test_body_runs_in_the_guest(kernel):
    assert os.uname().release == kernel.release
    assert kernel.has_prog_type("kprobe")


def test_failure_comes_back_rewritten(kernel):
    major = kernel.version.major
    assert major == 99, "deliberate failure"


def test_bpf_fixture_ring_buffer(kernel, bpf):
    obj = bpf.load(OBJ, attach=True)
    rb = obj.ringbuf("events")
    me = os.getpid()
    seen = []
    for _ in range(20):
        seen += [struct.unpack_from("<I", e)[0] for e in rb.poll(0.2)]
        if me in seen:
            break
    assert me in seen


def test_bpf_fixture_set_up_as_the_loader_would(kernel, bpf):
    # capable leaves its stack map for the loader to size; the fixture takes the same
    # set-up as a set-up file, as keyword arguments
    obj = bpf.load(CAPABLE, attach=True,
                   maps={{"stackmap": {{"value_size": 1016, "max_entries": 1024}}}},
                   variables={{"targ_pid": -1, "unique_type": "UNQ_OFF", "kernel_stack": True}},
                   programs={{"kprobe__cap_capable_exit": {{"target": "cap_capable"}}}})
    assert obj.maps["stackmap"].value_size == 1016
    assert all(p.links for p in obj.programs.values())  # both attached


def test_bpftrace_fixture_sees_its_trigger(kernel, bpftrace, tmp_path):
    script = tmp_path / "exec.bt"
    script.write_text(r'tracepoint:syscalls:sys_enter_execve {{ printf("exec %s\\n", '
                      r'str(args->filename)); }}')
    run = bpftrace.run(script, trigger=["/bin/true"], expect="exec /bin/true")
    assert run.ok and run.stage == "behavior", run.detail


def test_bpf_fixture_skips_below_the_objects_minimum(kernel, bpf):
    # nothing declared: below the minimum read from the object, a rejection is a skip
    bpf.load(FEATURES)
    assert (kernel.version.major, kernel.version.minor) >= (5, 17)


def test_zz_crash_on_the_oldest(kernel):
    if kernel.release == {oldest!r}:
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("c")


def test_zzz_after_the_crash(kernel):
    pass
'''


@pytest.fixture(scope="module")
def setup():
    cfg = load_config()
    kernels = prepare_kernels(KERNELS, cfg, Progress())
    obj = compile_bpf(DATA / "getpid_events.bpf.c", cfg.cache_dir / "objects",
                      _vmlinux_for(kernels, cfg))
    [capable] = subjects_for_paths(["/usr/sbin/capable"], kernels, cfg)
    features = compile_bpf(DATA / "features.bpf.c", cfg.cache_dir / "objects",
                           _vmlinux_for(kernels, cfg))
    return kernels, obj, capable.task["path"], str(features)


def test_user_test_file_on_two_kernels(pytester: pytest.Pytester, setup, monkeypatch):
    kernels, obj, capable, features = setup
    oldest = min(kernels, key=lambda k: k.version)
    newest = max(kernels, key=lambda k: k.version)
    # pytester moves HOME; keep the kernel cache where the kernels already are
    monkeypatch.setenv("XDG_CACHE_HOME", str(CACHE.parent))
    pytester.makepyfile(test_user=USER_TESTS.format(obj=str(obj), capable=capable,
                                                    features=features, oldest=oldest.release))
    out = pytester.path / "r.json"
    r = pytester.runpytest_subprocess("--kernels", KERNELS, "-v", "-rA", "--ebpf-json", str(out),
                                      timeout=1800)
    text = r.stdout.str()
    print(text)
    for k in (oldest.id, newest.id):
        assert f"test_body_runs_in_the_guest[{k}] PASSED" in text
        assert f"test_bpf_fixture_ring_buffer[{k}] PASSED" in text
        assert f"test_bpf_fixture_set_up_as_the_loader_would[{k}] PASSED" in text
        assert f"test_bpftrace_fixture_sees_its_trigger[{k}] PASSED" in text
        assert f"test_failure_comes_back_rewritten[{k}] FAILED" in text
    # the assertion was rewritten inside the guest; its message reached the host
    r.stdout.fnmatch_lines(["*AssertionError: deliberate failure*", "*assert * == 99*"])
    # the crash fails only the oldest kernel's remaining tests, with the console excerpt
    assert f"test_zz_crash_on_the_oldest[{oldest.id}] FAILED" in text
    assert f"test_zzz_after_the_crash[{oldest.id}] FAILED" in text
    assert "Kernel panic" in text
    assert f"test_zz_crash_on_the_oldest[{newest.id}] PASSED" in text
    assert f"test_zzz_after_the_crash[{newest.id}] PASSED" in text
    assert f"test_bpf_fixture_skips_below_the_objects_minimum[{oldest.id}] SKIPPED" in text
    assert f"test_bpf_fixture_skips_below_the_objects_minimum[{newest.id}] PASSED" in text
    r.stdout.fnmatch_lines(["*needs bpf_loop helper (5.17) (>= 5.17); this kernel is 5.10*"])
    r.assert_outcomes(passed=11, failed=4, skipped=1)
    crashed = r.stdout.str().split(f"test_zz_crash_on_the_oldest[{oldest.id}]", 1)[1]
    assert "kernel crashed" in crashed
    import json

    cells = {(x["subject"], x["kernel"]): x["status"] for x in json.loads(out.read_text())["results"]}
    assert cells[("test_user.py::test_zzz_after_the_crash", oldest.id)] == "crash"
    assert cells[("test_user.py::test_zzz_after_the_crash", newest.id)] == "pass"
