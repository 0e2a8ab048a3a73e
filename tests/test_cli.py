"""The CLI's error paths: clear messages, exit status 2, never a traceback."""

import json
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from harness.results import KernelInfo, Report, Result


def test_unknown_kernel(tmp_path):
    # a good input: a bad one would be refused first (test_bad_input.py)
    p = run_cli("check", str(REPO / "tests" / "data" / "features.bpf.c"), "--kernels", "4.19",
                env={"XDG_CACHE_HOME": str(tmp_path)})
    assert p.returncode == 2
    assert "unknown kernel '4.19'" in p.stderr and "5.10, 6.1, 6.12, 7.2, 7.3" in p.stderr
    assert "Traceback" not in p.stderr


def test_unreachable_mirror_names_url(tmp_path):
    p = run_cli("kernels", "fetch", "6.1", "--mirror", "http://127.0.0.1:9/debian",
                env={"XDG_CACHE_HOME": str(tmp_path)})
    assert p.returncode == 2
    assert "http://127.0.0.1:9/debian/dists/bookworm/InRelease" in p.stderr
    assert "--mirror" in p.stderr and "Traceback" not in p.stderr


def test_bad_config_value(tmp_path):
    p = run_cli("kernels", "list", env={"EBPF_HARNESS_JOBS": "many"})
    assert p.returncode == 2 and "EBPF_HARNESS_JOBS" in p.stderr


def test_run_without_command(tmp_path):
    p = run_cli("run", "--kernels", "5.10", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert p.returncode == 2 and "needs a command" in p.stderr


def test_report_renders_saved_results_and_exit_status(tmp_path):
    r = Report(kernels=[KernelInfo("5.10", "5.10.0-32-amd64", "5.10.223")],
               results=[Result("a.bpf.o:p", "5.10", "pass", "attach")])
    f = tmp_path / "r.json"
    r.write(f)
    p = run_cli("report", str(f))
    assert p.returncode == 0 and "a.bpf.o:p" in p.stdout and "OK: 1 of 1" in p.stdout
    d = json.loads(f.read_text())
    d["results"][0]["status"] = "reject"
    f.write_text(json.dumps(d))
    assert run_cli("report", str(f)).returncode == 1
    f.write_text("{broken")
    p = run_cli("report", str(f))
    assert p.returncode == 2 and "not JSON" in p.stderr and "Traceback" not in p.stderr


def test_kernels_list(tmp_path):
    p = run_cli("kernels", "list", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert p.returncode == 0
    assert "bullseye" in p.stdout and "default" in p.stdout


# -- polish: --version, each subcommand's own flags, badge exit status, prune -------------


def test_version():
    from harness import __version__

    p = run_cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"ebpf-harness {__version__}"


@pytest.mark.parametrize(("argv", "unknown"), [
    (["kernels", "list", "--json", "x.json"], "--json"),
    (["kernels", "list", "--accel", "kvm"], "--accel"),
    (["kernels", "fetch", "--accel", "kvm"], "--accel"),
    (["kernels", "fetch", "--json", "x.json"], "--json"),
    (["kernels", "lock", "--memory", "4G"], "--memory"),
    (["kernels", "prune", "--jobs", "2"], "--jobs"),
    (["kernels", "prune", "--mirror", "http://x"], "--mirror"),
])
def test_subcommands_offer_only_the_flags_they_use(argv, unknown, capsys):
    from harness.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2 and f"unrecognized arguments: {unknown}" in capsys.readouterr().err


def test_the_flags_each_subcommand_reads_are_there():
    from harness.cli import build_parser

    ap = build_parser()
    a = ap.parse_args(["kernels", "fetch", "6.12", "--lock", "k.lock", "--mirror", "http://m",
                       "--security-mirror", "http://s", "-q"])
    assert (a.ids, a.lock, a.mirror, a.quiet) == (["6.12"], Path("k.lock"), "http://m", True)
    a = ap.parse_args(["kernels", "lock", "5.10", "-o", "x.lock", "--mirror", "http://m"])
    assert a.output == Path("x.lock")
    a = ap.parse_args(["kernels", "prune", "--keep", "ci", "--dry-run", "--no-lock"])
    assert (a.keep, a.dry_run, a.no_lock) == ("ci", True, True)
    a = ap.parse_args(["check", "x.bpf.o", "-k", "5.10", "--accel", "tcg", "-j", "2", "--json",
                       "r.json", "--baseline", "b.json", "--max-insns-growth", "5", "-q"])
    assert (a.accel, a.jobs, a.max_insns_growth) == ("tcg", 2, 5.0)


def _report(path: Path, status: str) -> Path:
    Report(kernels=[KernelInfo("5.10", "5.10.0-32-amd64", "5.10.223")],
           results=[Result("a.bpf.o:p", "5.10", status, "attach")]).write(path)
    return path


def test_badge_exit_status_and_file(tmp_path):
    good = _report(tmp_path / "good.json", "pass")
    bad = _report(tmp_path / "bad.json", "reject")
    p = run_cli("report", "badge", str(good), "-o", str(tmp_path / "g.svg"))
    assert p.returncode == 0 and "1/1 as expected" in (tmp_path / "g.svg").read_text()
    p = run_cli("report", "badge", str(bad), "-o", str(tmp_path / "b.svg"))
    # written either way; exit 1 like report render and check, as the README says
    assert p.returncode == 1 and "0/1 as expected" in (tmp_path / "b.svg").read_text()


def _tree(cache: Path, release: str, version: str, suite: str) -> None:
    d = cache / "ebpf-harness" / "kernels" / release
    d.mkdir(parents=True)
    (d / ".harness-tree.json").write_text(json.dumps({
        "format": 2, "release": release, "version": version, "suite": suite,
        "packages": [f"linux-image-{release}={version}"], "vmlinuz": "boot/vmlinuz"}))


def _lock(path: Path, kid: str, release: str, version: str) -> Path:
    from harness.kernels.lock import LockedKernel, LockedPackage, new_lock, write_lock

    pkg = LockedPackage(f"linux-image-{release}", version,
                        f"pool/main/l/linux/linux-image-{release}_{version}_amd64.deb", 1,
                        "0" * 64)
    write_lock(path, new_lock([LockedKernel(kid, release, "bookworm", version,
                                            f"debian:bookworm {version}", (pkg,))]))
    return path


def test_prune_keeps_the_default_set_and_the_locked_kernels(tmp_path):
    cache = tmp_path / "cache"
    _tree(cache, "5.10.0-30-amd64", "5.10.218-1", "bullseye")  # an older 5.10 build
    _tree(cache, "5.10.0-32-amd64", "5.10.223-1", "bullseye")
    _tree(cache, "6.1.0-40-amd64", "6.1.150-1", "bookworm")  # pinned by the lock
    _tree(cache, "6.1.0-50-amd64", "6.1.176-1", "bookworm")
    lock = _lock(tmp_path / "kernels.lock", "6.1", "6.1.0-40-amd64", "6.1.150-1")
    env = {"XDG_CACHE_HOME": str(cache)}
    kernels = cache / "ebpf-harness" / "kernels"

    p = run_cli("kernels", "prune", "--lock", str(lock), "--dry-run", env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "keeping 5.10.0-32-amd64 (default set: 5.10), 6.1.0-40-amd64 (lock file "
        f"{lock}: 6.1), 6.1.0-50-amd64 (default set: 6.1)",
        "would remove 1 kernel(s): 5.10.0-30-amd64",
    ]
    assert len(list(kernels.iterdir())) == 4  # nothing removed

    p = run_cli("kernels", "prune", "--lock", str(lock), env=env)
    assert p.returncode == 0 and "removed 1 kernel(s): 5.10.0-30-amd64" in p.stdout
    assert sorted(t.name for t in kernels.iterdir()) == [
        "5.10.0-32-amd64", "6.1.0-40-amd64", "6.1.0-50-amd64"]

    # --keep instead: a line keeps its newest cached build, and nothing is downloaded
    p = run_cli("kernels", "prune", "--keep", "6.1", "--no-lock", env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "keeping 6.1.0-50-amd64 (--keep: 6.1)"
    assert [t.name for t in kernels.iterdir()] == ["6.1.0-50-amd64"]


def test_keep_releases_without_a_download():
    from conftest import REPO

    from harness.cli import keep_releases
    from harness.kernels.catalog import load_catalog, parse_kernel_ids
    from harness.kernels.trees import TreeMeta

    catalog = load_catalog(REPO / "kernels")
    trees = [TreeMeta(rel, version, "trixie") for rel, version in [
        ("6.12.94+deb13-amd64", "6.12.94-1"), ("6.12.107+deb13-amd64", "6.12.107-1"),
        ("5.10.0-9-amd64", "5.10.70-1"), ("5.10.0-32-amd64", "5.10.223-1")]]
    reqs = parse_kernel_ids("6.12,5.10,6.1,6.12.94+deb13-amd64", catalog)
    assert keep_releases(reqs, trees, "--keep") == {
        "6.12.107+deb13-amd64": "--keep: 6.12",  # newest by Debian version, not by name
        "5.10.0-32-amd64": "--keep: 5.10",
        "6.12.94+deb13-amd64": "--keep: 6.12.94+deb13-amd64",  # an exact release as such
    }
