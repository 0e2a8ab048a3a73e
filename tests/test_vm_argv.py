from pathlib import Path, PurePosixPath

import pytest

from harness.vm.accel import choose_accel, cpu_has_virt, creates_vm, kvm_usable
from harness.vm.argv import (
    GUEST_PYTHONPATH,
    GUEST_RESULTS,
    Share,
    foreign_accel,
    foreign_shares,
    guest_path,
    shared_dirs,
    vng_argv,
)


def _argv(**kw):
    return vng_argv("vng", Path("/k/boot/vmlinuz-6.1"), Path("/run/k"), ["python3", "-m", "x"],
                    accel=kw.pop("accel", "tcg"), **kw)


def test_guest_sees_host_read_only_but_one_dir():
    argv = _argv()
    assert "--rw" not in argv  # the root stays read-only
    assert [a for a in argv if a.startswith("--rwdir")] == ["--rwdir=/run/k"]
    assert "--force-9p" in argv


def test_no_network_unless_asked():
    assert "--network" not in _argv()
    a = _argv(network=True)
    assert a[a.index("--network") + 1] == "user"


def test_kernel_args_enable_bpf_lsm_and_panic_exit():
    argv = _argv(append=["foo=1"])
    appended = [argv[i + 1] for i, a in enumerate(argv) if a == "--append"]
    assert any(a.startswith("lsm=") and a.endswith(",bpf") for a in appended)
    assert "panic=-1" in appended and "foo=1" in appended
    assert "softlockup_panic=1" in appended and "hung_task_panic=1" in appended


def test_command_is_an_argv_after_double_dash():
    argv = _argv()
    assert argv[argv.index("--") + 1 :] == ["python3", "-m", "x"]
    assert argv[argv.index("-r") + 1] == "/k/boot/vmlinuz-6.1"


def test_accel_flags():
    assert "--disable-kvm" in _argv(accel="tcg")
    assert "--disable-kvm" not in _argv(accel="kvm")


def test_kvm_needs_more_than_the_device_node(tmp_path):
    dev = tmp_path / "kvm"
    dev.write_text("")
    cpu = tmp_path / "cpuinfo"
    cpu.write_text("processor: 0\nflags\t\t: fpu sse2 hypervisor\n")
    assert not kvm_usable(dev, cpu)  # the device exists, but the CPU cannot run a guest
    cpu.write_text("flags: fpu vmx sse2\n")
    assert kvm_usable(dev, cpu)
    assert not kvm_usable(tmp_path / "absent", cpu)
    assert cpu_has_virt("flags: svm") and not cpu_has_virt("flags: sse")


def test_kvm_on_an_arm64_host_is_a_device_that_creates_a_vm(tmp_path):
    # an arm64 /proc/cpuinfo says nothing of EL2: the device is asked to create a VM
    dev = tmp_path / "kvm"
    dev.write_text("")
    cpu = tmp_path / "cpuinfo"
    cpu.write_text("processor: 0\nFeatures\t: fp asimd evtstrm aes\n")
    assert kvm_usable(dev, cpu, machine="aarch64", vm_test=lambda d: True)
    assert not kvm_usable(dev, cpu, machine="aarch64", vm_test=lambda d: False)
    assert not kvm_usable(tmp_path / "absent", cpu, machine="aarch64", vm_test=lambda d: True)
    assert not kvm_usable(dev, cpu, machine="x86_64", vm_test=lambda d: True)  # flags decide
    # a file that is not KVM answers no ioctl: never taken for KVM
    assert not creates_vm(dev)


def test_choose_accel():
    assert choose_accel("tcg", usable=True) == "tcg"
    assert choose_accel("auto", usable=False) == "tcg"
    assert choose_accel("auto", usable=True) == "kvm"


# a guest of another architecture (arm64 on x86_64): its own root, the host shared in parts


def _shares(tmp_path):
    objs = tmp_path / "objs"
    objs.mkdir()
    (objs / "a.bpf.o").write_bytes(b"")
    work = tmp_path / "work"
    (work / "k").mkdir(parents=True)
    return foreign_shares(work / "k", Path("/src/harness"),
                          [work / "k.job.json", objs / "a.bpf.o", objs],
                          ("6.1.0-57-arm64", Path("/cache/k/lib/modules/6.1.0-57-arm64")))


def _foreign_argv(tmp_path, accel="tcg"):
    return vng_argv("vng", Path("/k/boot/vmlinuz-6.1.0-57-arm64"), tmp_path / "work/k",
                    ["/usr/bin/python3", "-m", "harness.guest", "/j.json"], accel=accel,
                    arch="arm64", root=Path("/roots/arm64-x"), shares=_shares(tmp_path))


def test_foreign_guest_boots_on_its_root_with_9p(tmp_path):
    argv = _foreign_argv(tmp_path)
    assert argv[argv.index("--arch") + 1] == "arm64"
    assert argv[argv.index("--root") + 1] == "/roots/arm64-x"
    assert "--force-9p" in argv and "--disable-kvm" in argv
    assert "--rw" not in argv  # the root stays read-only
    assert argv[argv.index("--") + 1:] == ["/usr/bin/python3", "-m", "harness.guest", "/j.json"]


def test_foreign_guest_writes_only_the_run_directory(tmp_path):
    argv = _foreign_argv(tmp_path)
    rw = [a for a in argv if a.startswith("--rwdir")]
    assert rw == [f"--rwdir={GUEST_RESULTS}={tmp_path / 'work/k'}"]
    ro = [a for a in argv if a.startswith("--rodir")]
    assert f"--rodir={GUEST_PYTHONPATH}/harness=/src/harness" in ro
    assert "--rodir=/lib/modules/6.1.0-57-arm64=/cache/k/lib/modules/6.1.0-57-arm64" in ro
    # the job's directory and the objects' directory, once each, at their host path
    assert f"--rodir=/run/ebpf-harness/host{tmp_path / 'objs'}={tmp_path / 'objs'}" in ro
    assert f"--rodir=/run/ebpf-harness/host{tmp_path / 'work'}={tmp_path / 'work'}" in ro
    assert len(ro) == 4


def test_host_guest_unchanged_without_a_root():
    argv = _argv()
    assert "--arch" not in argv and "--root" not in argv
    assert not [a for a in argv if a.startswith("--rodir")]


def test_shared_dirs_drop_files_and_nested_dirs(tmp_path):
    (tmp_path / "a/b").mkdir(parents=True)
    (tmp_path / "a/b/x.o").write_bytes(b"")
    (tmp_path / "c").mkdir()
    got = shared_dirs([tmp_path / "a/b/x.o", tmp_path / "a", tmp_path / "c", tmp_path / "c"])
    assert got == [tmp_path / "a", tmp_path / "c"]
    # the host's whole root is never shared (a command's cwd "/" is the guest's own)
    assert shared_dirs([Path("/"), tmp_path / "c"]) == [tmp_path / "c"]


def test_guest_path_prefers_the_writable_share(tmp_path):
    shares = _shares(tmp_path)
    work = tmp_path / "work"
    # the run directory is inside the shared work directory: writes must go to the rw share
    assert guest_path(work / "k" / "events.jsonl", shares) == f"{GUEST_RESULTS}/events.jsonl"
    assert guest_path(work / "k.job.json", shares) == f"/run/ebpf-harness/host{work}/k.job.json"
    assert guest_path(tmp_path / "objs/a.bpf.o", shares).endswith("objs/a.bpf.o")
    with pytest.raises(ValueError, match="not shared"):
        guest_path(Path("/elsewhere/x"), shares)


def test_share_guest_paths_sit_in_the_guest_tmpfs(tmp_path):
    for s in _shares(tmp_path):
        assert isinstance(s, Share)
        assert (PurePosixPath("/run") in s.guest.parents
                or s.guest.parent == PurePosixPath("/lib/modules"))


def test_foreign_accel():
    assert foreign_accel("kvm", "arm64", "x86_64") == "tcg"  # no KVM across architectures
    assert foreign_accel("kvm", "arm64", "aarch64") == "kvm"  # an arm64 host's own KVM
    assert foreign_accel("kvm", "", "x86_64") == "kvm"  # the host's architecture
    assert foreign_accel("tcg", "arm64", "aarch64") == "tcg"


def test_many_directories_are_merged_into_their_parents_to_fit_the_machine():
    """27 bundled programs' directories were 27 9p devices, more than arm64's 'virt'
    machine has: they are shared through their parents, never through '/'."""
    from harness.vm.argv import shared_dirs

    progs = [Path(f"/w/programs/{d}/p{i}/check.py") for d in ("obs", "sec", "net")
             for i in range(9)]
    other = [Path("/c/objects/a.o"), Path("/c/runs/x/job.json")]
    dirs = shared_dirs(progs + other, limit=10)
    assert len(dirs) <= 10 and Path("/") not in dirs
    assert all(any(d in p.parents for d in dirs) for p in progs + other)
    assert set(shared_dirs(progs + other, limit=3)) == {Path("/w/programs"), Path("/c/objects"),
                                                         Path("/c/runs/x")}
    with pytest.raises(ValueError, match="only the host's root holds them all"):
        shared_dirs([Path("/a/x"), Path("/b/y")], limit=1)
