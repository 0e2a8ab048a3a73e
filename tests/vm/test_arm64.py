"""An arm64 Debian kernel booted on this host (TCG unless the host is arm64 with KVM), on
the cached arm64 guest root (harness.vm.guestroot): fetched and verified like every
kernel, the guest agent running a command and an object compiled for arm64 against that
kernel's own BTF, and a bpftrace script run by the root's bpftrace, through the same
session code as the CLI.

One VM boot, about 15 s of guest time under TCG (an x86_64 6.1 boot here: about 10 s);
the root is built once per cache (about 2.5 min, mmdebstrap under qemu-user) and reused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_config
from harness.report.progress import Progress
from harness.session import execute, prepare_kernels, subject_for_command, subjects_for_paths

pytestmark = pytest.mark.vm
pytest_plugins = ["pytester"]

DATA = Path(__file__).resolve().parent.parent / "data"
SCRIPT = (Path(__file__).resolve().parents[2] / "programs" / "security" / "exec_audit_bt"
          / "exec_audit_bt.bt")
CACHE = load_config().cache_dir  # at import, while HOME is still the real one


def test_arm64_kernel_runs_a_check_on_its_own_root(tmp_path):
    cfg = load_config()
    progress = Progress()
    [kernel] = prepare_kernels("6.1/arm64", cfg, progress)
    assert kernel.arch == "arm64" and kernel.release.endswith("-arm64")
    obj = str(DATA / "getpid_events.bpf.c")
    subjects = subjects_for_paths([obj], [kernel], cfg, arch="arm64")
    subjects.append(subject_for_command(["uname", "-rm"], alive=None, network=False,
                                        timeout=60))
    # a bpftrace script runs with the root's own bpftrace (an arm64 build), seeing its trigger
    subjects += subjects_for_paths([str(SCRIPT)], [kernel], cfg, arch="arm64")
    report = execute([kernel], subjects, cfg, progress, workdir=tmp_path)
    [info] = report.kernels
    assert info.boot_seconds, info.notes
    assert not [n for n in info.notes if "release" in n]  # the guest booted this kernel
    uname = report.cell("uname -rm", kernel.id)
    assert uname is not None and uname.status == "pass", uname and uname.detail
    assert uname.output.split() == [kernel.release, "aarch64"]
    prog = report.cell(f"{obj}:on_getpid", kernel.id)
    assert prog is not None and prog.status == "pass", prog and prog.detail
    script = report.cell(str(SCRIPT), kernel.id)
    assert script is not None and (script.status, script.stage) == ("pass", "behavior"), (
        script and script.detail)
    assert "exec /bin/true by uid 0" in script.output
    assert info.features["bpftrace"]["Probe types"]["kprobe"] == "yes"
    print(f"{kernel.release}: boot {info.boot_seconds} s, VM {info.vm_seconds} s ({info.accel})")


USER_TESTS = '''
import os
import platform


def test_runs_in_each_columns_own_kernel(kernel):
    assert os.uname().release == kernel.release
    assert platform.machine() == ("aarch64" if kernel.release.endswith("-arm64") else "x86_64")
    assert kernel.has_prog_type("kprobe")


def test_bpftrace_in_each_column(kernel, bpftrace, tmp_path):
    script = tmp_path / "getppid.bt"
    script.write_text('tracepoint:syscalls:sys_enter_getppid { printf("getppid by %s\\\\n", comm); }')
    run = bpftrace.run(script, trigger=["/usr/bin/python3", "-c", "import os; os.getppid()"],
                       expect="getppid by python3")
    assert run.ok and run.stage == "behavior", run.detail
'''


def test_the_plugin_runs_a_users_tests_in_x86_64_and_arm64_columns_of_one_session(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """A user's test file in 6.1 and 6.1/arm64 in one pytest session: the arm64 guest runs
    its own root's python3, pytest and bpftrace, with the plugin named and the paths
    mapped."""
    # pytester moves HOME; keep the cache where the kernels and the arm64 root already are
    monkeypatch.setenv("XDG_CACHE_HOME", str(CACHE.parent))
    pytester.makepyfile(test_user=USER_TESTS)
    r = pytester.runpytest_subprocess("--kernels", "6.1,6.1/arm64", "-v", "-p",
                                      "no:cacheprovider", timeout=900)
    r.stdout.fnmatch_lines(["*test_runs_in_each_columns_own_kernel?6.1? PASSED*",
                            "*test_runs_in_each_columns_own_kernel?6.1/arm64? PASSED*"])
    text = r.stdout.str()
    for k in ("6.1", "6.1/arm64"):  # the bpftrace fixture: the host's, then the root's bpftrace
        assert f"test_bpftrace_in_each_column[{k}] PASSED" in text, text
    r.assert_outcomes(passed=4)
