from pathlib import Path

from harness.vm.accel import choose_accel, cpu_has_virt, kvm_usable
from harness.vm.argv import vng_argv


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


def test_choose_accel():
    assert choose_accel("tcg", usable=True) == "tcg"
    assert choose_accel("auto", usable=False) == "tcg"
    assert choose_accel("auto", usable=True) == "kvm"
