"""The guest root of a foreign architecture: its key, its mmdebstrap command, its package
record and the host checks, all without building anything."""

import json
from pathlib import Path

import pytest

from harness.config import Config
from harness.errors import ToolError
from harness.vm import guestroot
from harness.vm.argv import GUEST_RESULTS, foreign_shares
from harness.vm.guestroot import (
    PACKAGES,
    RootSpec,
    binfmt_problem,
    installed_versions,
    is_foreign,
    job_in_guest,
    missing_packages,
    mmdebstrap_argv,
)

MIRROR = "http://mirror.invalid/debian"


def test_key_changes_with_what_the_root_holds():
    base = RootSpec("arm64", MIRROR)
    assert base.key() == RootSpec("arm64", MIRROR + "/").key()
    # the package order does not matter, the list does
    assert base.key() == RootSpec("arm64", MIRROR, packages=tuple(reversed(PACKAGES))).key()
    others = [RootSpec("amd64", MIRROR), RootSpec("arm64", MIRROR, suite="trixie"),
              RootSpec("arm64", "http://other.invalid/debian"),
              RootSpec("arm64", MIRROR, packages=(*PACKAGES, "strace"))]
    assert len({base.key(), *(o.key() for o in others)}) == 5
    assert base.name == f"arm64-{base.key()}"


def test_mmdebstrap_argv_verifies_with_the_given_keyring():
    argv = mmdebstrap_argv(RootSpec("arm64", MIRROR), Path("/c/root"), Path("/k.gpg"))
    assert argv[0] == "mmdebstrap"
    assert "--arch=arm64" in argv and "--variant=minbase" in argv
    assert "--keyring=/k.gpg" in argv
    assert argv[-3:] == ["bookworm", "/c/root", MIRROR]
    include = next(a for a in argv if a.startswith("--include="))[len("--include="):].split(",")
    assert include == sorted(PACKAGES)
    assert "busybox-static" in include and "python3" in include  # virtme-ng and the agent


def test_installed_versions_reads_dpkg_status():
    status = (
        "Package: python3\nStatus: install ok installed\nVersion: 3.11.2-1+b1\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n"
        "Package: bpftool\nStatus: install ok installed\nArchitecture: arm64\n"
        "Version: 7.1.0+6.1.158-1\n"
    )
    assert installed_versions(status) == {"bpftool": "7.1.0+6.1.158-1", "python3": "3.11.2-1+b1"}
    assert missing_packages(("python3", "kmod"), {"python3": "1"}) == ["kmod"]


def test_foreign_is_by_machine():
    assert is_foreign("arm64", "x86_64")
    assert not is_foreign("arm64", "aarch64")
    assert not is_foreign("amd64", "x86_64")


def test_binfmt_problem_says_what_is_missing(tmp_path):
    assert "not mounted" in binfmt_problem("arm64", "x86_64", tmp_path)
    (tmp_path / "register").write_text("")
    assert "no qemu-aarch64 entry" in binfmt_problem("arm64", "x86_64", tmp_path)
    (tmp_path / "qemu-aarch64").write_text("disabled\ninterpreter /usr/libexec/x\n")
    assert "disabled" in binfmt_problem("arm64", "x86_64", tmp_path)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/x\n")
    assert binfmt_problem("arm64", "x86_64", tmp_path) is None
    assert binfmt_problem("arm64", "aarch64", tmp_path / "absent") is None  # native


def test_check_host_names_what_to_run(monkeypatch):
    def which(tool):
        raise ToolError(f"'{tool}' was not found on PATH; install {tool}")

    monkeypatch.setattr(guestroot.tools, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(guestroot, "binfmt_problem", lambda arch, machine: "binfmt_misc is off")
    with pytest.raises(ToolError, match=r"binfmt_misc is off; run ./quickstart arm64"):
        guestroot.check_host("arm64", "x86_64")
    monkeypatch.setattr(guestroot.tools, "which", which)
    with pytest.raises(ToolError, match="mmdebstrap"):
        guestroot.check_host("arm64", "x86_64")


def test_cached_root_is_used_only_with_its_key(tmp_path):
    spec = RootSpec("arm64", MIRROR)
    path = guestroot.root_dir(tmp_path, spec)
    assert guestroot.load(tmp_path, spec) is None
    path.mkdir(parents=True)
    assert guestroot.load(tmp_path, spec) is None  # a tree without its record: unfinished
    guestroot.manifest_path(path).write_text(json.dumps(
        {"key": spec.key(), "packages": {"python3": "3.11.2-1+b1"}}))
    got = guestroot.load(tmp_path, spec)
    assert got is not None and got.packages == {"python3": "3.11.2-1+b1"}
    assert got.built_seconds is None
    # ensure() returns it without building (no mmdebstrap is called)
    assert guestroot.ensure(Config(cache_dir=tmp_path), spec).path == path


def test_finish_links_poweroff_to_busybox(tmp_path):
    (tmp_path / "usr/sbin").mkdir(parents=True)
    guestroot.finish(tmp_path)
    assert (tmp_path / "usr/sbin/poweroff").readlink() == Path("/usr/bin/busybox")
    # an old kernel package's ../../../usr/src from /usr/lib/modules/REL resolves
    (tmp_path / "usr/src/linux-headers-6.1.0-50-arm64").mkdir(parents=True)
    assert (tmp_path / "usr/usr/src/linux-headers-6.1.0-50-arm64").is_dir()
    guestroot.finish(tmp_path)  # idempotent


def test_job_in_guest_names_paths_as_the_guest_sees_them(tmp_path):
    work, objs = tmp_path / "work", tmp_path / "objs"
    (work / "k").mkdir(parents=True)
    objs.mkdir()
    shares = foreign_shares(work / "k", Path("/src/harness"), [work / "k.job.json", objs])
    job = {"protocol": 2, "kernel_id": "6.1/arm64", "results": str(work / "k/events.jsonl"),
           "check_timeout": 60.0, "setup": True, "hide": ["/home"],
           "tasks": [{"kind": "object", "subject": "o", "path": str(objs / "a.bpf.o")},
                     {"kind": "command", "subject": "c", "argv": ["uname", "-r"]},
                     {"kind": "command", "subject": "d", "argv": ["true"], "cwd": "/"},
                     {"kind": "command", "subject": "e", "argv": ["true"], "cwd": str(objs)}]}
    got = job_in_guest(job, shares)  # type: ignore[arg-type]
    assert got["results"] == f"{GUEST_RESULTS}/events.jsonl"
    assert got["tasks"][0]["path"] == f"/run/ebpf-harness/host{objs}/a.bpf.o"
    assert got["tasks"][1] == job["tasks"][1]  # argv: the guest's own programs
    assert got["tasks"][2]["cwd"] == "/"  # the guest's root, never the host's shared
    assert got["tasks"][3]["cwd"] == f"/run/ebpf-harness/host{objs}"
    assert got["hide"] == []  # the host's root is not visible there at all
    assert job["results"].startswith(str(work))  # the input is left alone


def test_a_commands_shared_host_paths_are_mapped_and_its_own_programs_are_not(tmp_path):
    """The pytest plugin's guest command names its rootdir, its guest.json and its tests
    by host path: in a foreign guest they are where the shares show them."""
    work, tests = tmp_path / "work", tmp_path / "proj"
    (work / "k").mkdir(parents=True)
    tests.mkdir()
    shares = foreign_shares(work / "k", Path("/src/harness"), [work / "g.json", tests])
    job = {"protocol": 2, "kernel_id": "6.12/arm64", "results": str(work / "k/events.jsonl"),
           "check_timeout": 60.0, "setup": True, "hide": [],
           "tasks": [{"kind": "command", "subject": "p", "cwd": str(tests),
                      "argv": ["/usr/bin/python3", "-m", "pytest", "--rootdir", str(tests),
                               "--ebpf-guest", str(work / "g.json"), "t.py::x[6.12/arm64]"]}]}
    (task,) = job_in_guest(job, shares)["tasks"]  # type: ignore[arg-type]
    assert task["argv"] == ["/usr/bin/python3", "-m", "pytest", "--rootdir",
                            f"/run/ebpf-harness/host{tests}", "--ebpf-guest",
                            f"/run/ebpf-harness/host{work}/g.json", "t.py::x[6.12/arm64]"]


def test_a_foreign_guest_gets_no_hang_panics_it_has_no_room_for():
    from harness.vm.argv import HANG_PANICS, kernel_args, vng_argv

    assert set(HANG_PANICS) <= set(kernel_args())
    assert not set(HANG_PANICS) & set(kernel_args(hang_panics=False))
    argv = vng_argv("vng", Path("/k/Image"), Path("/w/k"), ["true"], accel="tcg", arch="arm64",
                    root=Path("/roots/arm64"), shares=foreign_shares(Path("/w/k"), Path("/h")))
    assert "hung_task_panic=1" not in argv and any(a.startswith("lsm=") for a in argv)


def test_a_lock_pins_the_guest_root_and_a_root_that_differs_is_named(tmp_path):
    """The lock records each foreign architecture's root, package by package; a cached
    root that differs from it is rebuilt, and what differs is said."""
    from harness.kernels.lock import LockedRoot, dumps, loads, new_lock, write_lock
    from tests.test_lock import _kernel

    root = LockedRoot("arm64", "bookworm", (("libbpf1", "1:1.1.2-0+deb12u1"),
                                            ("python3", "3.11.2-1+b1")))
    lock = new_lock([_kernel()]).with_root(root)
    back = loads(dumps(lock), "k.lock")
    assert back.root("arm64") == root and back.root("amd64") is None
    assert back.updated([_kernel()]).root("arm64") == root  # re-locking kernels keeps it
    assert guestroot.lock_differences({"libbpf1": "1:1.1.2-0+deb12u1", "python3": "3.11.2-1+b1"},
                                      root.packages) == []
    assert guestroot.lock_differences({"libbpf1": "1:1.1.2-0+deb12u2", "python3": "3.11.2-1+b1",
                                       "strace": "6.1-0.1"}, root.packages) == [
        "libbpf1: 1:1.1.2-0+deb12u1 -> 1:1.1.2-0+deb12u2", "strace: absent -> 6.1-0.1"]
    assert guestroot.lock_differences({"x": "1"}, ()) == []  # nothing locked
    path = tmp_path / "kernels.lock"
    write_lock(path, lock)
    cfg = Config(cache_dir=tmp_path, lock=path, mirror=MIRROR)
    spec = guestroot.spec_for(cfg, "arm64")
    assert spec.locked == root.packages and spec.suite == "bookworm"
    # a root that matches the lock is the same cached root, locked or not
    assert spec.key() == RootSpec("arm64", MIRROR).key()


def test_a_malformed_guest_root_in_the_lock_is_one_line():
    from harness.errors import ConfigError
    from harness.kernels.lock import dumps, loads, new_lock
    from tests.test_lock import _kernel

    text = dumps(new_lock([_kernel()])) + '\n[guest_roots.arm64]\nsuite = "bookworm"\npackages = 3\n'
    with pytest.raises(ConfigError, match=r"guest_roots\.arm64\.packages: expected a table"):
        loads(text, "k.lock")


def test_roots_no_run_would_boot_on_are_stale(tmp_path):
    roots = tmp_path / "guest-roots"
    for name in ("arm64-old", "arm64-new", ".arm64-x.part"):
        (roots / name).mkdir(parents=True)
    for name in ("arm64-old", "arm64-new"):
        (roots / f"{name}.json").write_text("{}")
    assert guestroot.stale_roots(tmp_path, {"arm64-new"}) == [roots / "arm64-old"]
    assert guestroot.stale_roots(tmp_path / "none", set()) == []
