"""An arm64 Debian kernel booted on this host (TCG unless the host is arm64 with KVM), on
the cached arm64 guest root (harness.vm.guestroot): fetched and verified like every
kernel, the guest agent running a command and an object compiled for arm64 against that
kernel's own BTF, through the same session code as the CLI.

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

DATA = Path(__file__).resolve().parent.parent / "data"


def test_arm64_kernel_runs_a_check_on_its_own_root(tmp_path):
    cfg = load_config()
    progress = Progress()
    [kernel] = prepare_kernels("6.1/arm64", cfg, progress)
    assert kernel.arch == "arm64" and kernel.release.endswith("-arm64")
    obj = str(DATA / "getpid_events.bpf.c")
    subjects = subjects_for_paths([obj], [kernel], cfg, arch="arm64")
    subjects.append(subject_for_command(["uname", "-rm"], alive=None, network=False,
                                        timeout=60))
    report = execute([kernel], subjects, cfg, progress, workdir=tmp_path)
    [info] = report.kernels
    assert info.boot_seconds, info.notes
    assert not [n for n in info.notes if "release" in n]  # the guest booted this kernel
    uname = report.cell("uname -rm", kernel.id)
    assert uname is not None and uname.status == "pass", uname and uname.detail
    assert uname.output.split() == [kernel.release, "aarch64"]
    prog = report.cell(f"{obj}:on_getpid", kernel.id)
    assert prog is not None and prog.status == "pass", prog and prog.detail
    print(f"{kernel.release}: boot {info.boot_seconds} s, VM {info.vm_seconds} s ({info.accel})")
