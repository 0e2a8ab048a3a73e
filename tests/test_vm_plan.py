"""How a run uses the machine (harness.vm.plan) and how -j/--cpus are read."""

import pytest

from harness.cli import build_parser
from harness.config import load_config
from harness.errors import ConfigError
from harness.vm.plan import choose, memory_mb


def test_tcg_auto_runs_one_single_vcpu_guest_per_core():
    p = choose("tcg", kernels=5, cores=2, available_mb=20000, guest_mb=2048)
    assert (p.jobs, p.cpus, p.auto) == (2, 1, True)
    assert "2 core(s), tcg" in p.why


def test_auto_never_boots_more_guests_than_kernels_and_a_lone_guest_gets_the_cores():
    p = choose("tcg", kernels=1, cores=2, available_mb=20000, guest_mb=2048)
    assert (p.jobs, p.cpus) == (1, 2)
    p = choose("tcg", kernels=3, cores=16, available_mb=64000, guest_mb=2048)
    assert (p.jobs, p.cpus) == (3, 2)


def test_kvm_auto_keeps_two_vcpus_per_guest():
    assert (choose("kvm", 5, 4, 16000, 2048).jobs, choose("kvm", 5, 4, 16000, 2048).cpus) == (2, 2)
    assert choose("kvm", 5, 1, 16000, 2048).jobs == 1


def test_auto_jobs_fit_in_memory():
    p = choose("tcg", kernels=5, cores=8, available_mb=1024 + 2 * 2048 + 100, guest_mb=2048)
    assert p.jobs == 2 and "memory for 2 guest(s)" in p.why
    assert choose("tcg", 5, 8, available_mb=500, guest_mb=2048).jobs == 1


def test_given_jobs_and_cpus_are_kept():
    p = choose("tcg", kernels=5, cores=2, available_mb=None, guest_mb=2048, jobs=1)
    assert (p.jobs, p.cpus, p.auto) == (1, 2, False)
    p = choose("tcg", kernels=5, cores=2, available_mb=None, guest_mb=2048, jobs=2, cpus=2)
    assert (p.jobs, p.cpus) == (2, 2)
    assert choose("tcg", kernels=2, cores=2, available_mb=None, guest_mb=2048, jobs=8).jobs == 2


@pytest.mark.parametrize(("text", "mb"), [("2G", 2048), ("1536M", 1536), ("1024", 1024),
                                          ("4GiB", 4096)])
def test_memory_sizes(text, mb):
    assert memory_mb(text) == mb


def test_memory_size_that_is_not_one():
    with pytest.raises(ValueError, match="give a size"):
        memory_mb("lots")


def test_jobs_and_cpus_from_the_command_line_and_the_environment(tmp_path):
    args = build_parser().parse_args(["matrix", "-j", "auto", "--cpus", "1"])
    assert (args.jobs, args.cpus) == (0, 1)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["matrix", "-j", "0"])
    cfg = load_config(tmp_path, env={"EBPF_HARNESS_JOBS": "auto", "EBPF_HARNESS_CPUS": "2"})
    assert (cfg.jobs, cfg.cpus) == (0, 2)
    assert load_config(tmp_path, env={}).jobs == 0  # auto by default
    with pytest.raises(ConfigError, match="positive number, or auto"):
        load_config(tmp_path, env={"EBPF_HARNESS_JOBS": "-3"})


def test_the_shim_caches_the_root_mount_of_virtme_ngs_script_only():
    from harness.vm.shim import cached_script

    script = ("if ! /bin/mount -n -t 9p -o {access},version=9p2000.L,trans=virtio,access=any,"
              "msize=524288 /dev/root /newroot/; then\n")
    out = cached_script(script)
    assert out is not None and "msize=524288,cache=loose /dev/root /newroot/" in out
    assert cached_script(out) is None  # already has a cache mode: left alone
    assert cached_script("mount -t 9p something else") is None  # another virtme-ng


def test_the_installed_virtme_ng_is_one_the_shim_knows():
    """The shim only edits a script it recognises; this catches a virtme-ng upgrade that
    would silently drop the cache (and the speed) on older kernels."""
    import virtme.mkinitramfs as mk

    from harness.vm.shim import cached_script

    assert cached_script(mk._MOUNT_ROOT_HOST) is not None


def test_the_shim_is_installed_first_on_vngs_path(tmp_path, monkeypatch):
    from harness.vm import backend
    from harness.vm.backend import VMRequest, VngBackend

    seen = {}

    def popen(argv, **kw):
        seen["path"] = kw["env"]["PATH"]
        raise OSError("no VM in this test")

    monkeypatch.setattr(backend.tools, "popen", popen)
    monkeypatch.setattr(backend.tools, "which", lambda name: "/opt/venv/bin/vng")
    rundir = tmp_path / "run" / "6.1"
    rundir.mkdir(parents=True)
    with pytest.raises(OSError):
        VngBackend().run(VMRequest("6.1", tmp_path / "bz", rundir, ("true",)))
    first, second = seen["path"].split(":")[:2]
    assert first == str(tmp_path / "run" / ".bin") and second == "/opt/venv/bin"
    shim = tmp_path / "run" / ".bin" / "virtme-run"
    assert shim.stat().st_mode & 0o111 and "harness.vm.shim" in shim.read_text()
    with pytest.raises(OSError):
        VngBackend().run(VMRequest("6.1", tmp_path / "bz", rundir, ("true",), root_cache=False))
    assert seen["path"].split(":")[0] == "/opt/venv/bin"


def test_root_cache_can_be_switched_off(tmp_path):
    assert load_config(tmp_path, env={}).root_cache is True
    assert load_config(tmp_path, env={"EBPF_HARNESS_ROOT_CACHE": "false"}).root_cache is False
    with pytest.raises(ConfigError, match="true or false"):
        load_config(tmp_path, env={"EBPF_HARNESS_ROOT_CACHE": "maybe"})


def test_kernels_are_fetched_side_by_side_in_order_and_a_failure_names_its_kernel(
        tmp_path, monkeypatch):
    import threading
    from types import SimpleNamespace

    from harness import session
    from harness.errors import MirrorError
    from harness.report.progress import Progress

    both = threading.Barrier(2, timeout=10)  # each fetch waits for the other: side by side

    def spec(kid):
        return SimpleNamespace(id=kid, release=f"{kid}-rel", origin="test")

    def prepare(req, catalog, config, progress=None):
        both.wait()
        if req.id == "6.1":
            raise MirrorError("cannot reach the mirror for 6.1")
        return spec(req.id)

    monkeypatch.setattr(session, "prepare", prepare)
    cfg = load_config(tmp_path, env={}).with_overrides(cache_dir=tmp_path / "c")
    quiet = Progress(quiet=True)
    with pytest.raises(MirrorError, match="mirror for 6\\.1"):
        session.prepare_kernels("5.10,6.1", cfg, quiet)
    both.reset()

    def prepare_ok(req, catalog, config, progress=None):
        both.wait()
        return spec(req.id)

    monkeypatch.setattr(session, "prepare", prepare_ok)
    assert [k.id for k in session.prepare_kernels("6.12,5.10", cfg, quiet)] == ["6.12", "5.10"]
