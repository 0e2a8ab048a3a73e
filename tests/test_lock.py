"""Kernel lock files: the model (pure), resolution against a fake signed archive, the CLI.

The fake archive is a directory served through file:// URLs: real .deb files built with
dpkg-deb, a Packages.xz, and an InRelease clear-signed by a throw-away key that gpgv
checks exactly as it checks Debian's. No network, no VM.
"""

from __future__ import annotations

import functools
import hashlib
import json
import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import Config, load_config
from harness.errors import ConfigError, KernelError, VerificationError
from harness.kernels.catalog import load_catalog, parse_kernel_ids
from harness.kernels.lock import (
    LockedKernel,
    LockedPackage,
    dumps,
    from_dict,
    loads,
    new_lock,
    read_lock,
    to_dict,
    write_lock,
)
from harness.kernels.locked import lock_kernels, prepare_locked, relock
from harness.kernels.prepare import prepare
from harness.kernels.trees import TREE_META
from harness.report.progress import Progress
from harness.session import prepare_kernels

pytest_plugins = ["pytester"]

def needs_tools(fn):
    """These tests build and sign a real archive: without the tools that is a failure to
    fix (./quickstart installs them), never a skip."""

    def wrapper(*args, **kwargs):
        missing = [t for t in ("gpg", "gpgv", "dpkg-deb", "depmod") if shutil.which(t) is None]
        if missing:
            pytest.fail(f"{', '.join(missing)} not installed: run ./quickstart setup")
        return fn(*args, **kwargs)

    return functools.wraps(fn)(wrapper)

REL = "6.12.5+deb13-amd64"
ABI = "6.12.5+deb13"
CATALOG = """flavour = "amd64"
[lines."6.12"]
suites = ["trixie"]
[lines."6.1"]
suites = ["bookworm"]
[sets]
default = ["6.12"]
two = ["6.12", "6.1"]
"""


def _pkg(name: str, fill: str = "a", version: str = "6.12.5-1") -> LockedPackage:
    return LockedPackage(name, version, f"pool/main/l/linux/{name}_{version}_amd64.deb", 1234,
                         fill * 64)


def _kernel(kid: str = "6.12", rel: str = REL) -> LockedKernel:
    abi = rel.removesuffix("-amd64")
    return LockedKernel(kid, rel, "trixie", "6.12.5-1", "debian:trixie 6.12.5-1", (
        _pkg(f"linux-headers-{abi}-common", "c"), _pkg(f"linux-headers-{rel}", "b"),
        _pkg(f"linux-image-{rel}", "a"),
    ))


@pytest.fixture
def catalog(tmp_path):
    d = tmp_path / "catalog"
    d.mkdir()
    (d / "lines.toml").write_text(CATALOG)
    return load_catalog(d)


# -- the model -----------------------------------------------------------------------------


def test_round_trip_is_byte_identical_and_order_independent(tmp_path):
    a = new_lock([_kernel("6.12"), _kernel("5.10", "5.10.0-32-amd64")])
    b = new_lock([_kernel("5.10", "5.10.0-32-amd64"), _kernel("6.12")])
    text = dumps(a)
    assert text == dumps(b)  # the order ids were given in does not matter
    assert text.startswith("lock_version = 1\n")
    assert text.index('[kernels."5.10"]') < text.index('[kernels."6.12"]')  # versions, in order
    assert "#" not in text and "://" not in text
    again = loads(text, "k.lock")
    assert again.kernels == a.kernels
    assert dumps(again) == text
    p = tmp_path / "k.lock"
    write_lock(p, again)
    assert p.read_text() == text and read_lock(p).kernels == a.kernels
    assert oct(p.stat().st_mode & 0o777) == "0o644"
    assert again.get("6.12").image.name == f"linux-image-{REL}"
    assert again.get("6.12").headers_common == f"linux-headers-{ABI}-common"


def test_updated_replaces_same_id_and_keeps_others():
    old = new_lock([_kernel("6.12"), _kernel("5.10", "5.10.0-32-amd64")])
    newer = _kernel("6.12", "6.12.6+deb13-amd64")
    up = old.updated([newer])
    assert up.ids == ["5.10", "6.12"] and up.get("6.12") == newer


def _broken(mutate) -> str:
    d = to_dict(new_lock([_kernel()]))
    mutate(d)
    return d


@pytest.mark.parametrize("mutate,key,words", [
    (lambda d: d.pop("lock_version"), "lock_version", "missing"),
    (lambda d: d.update(lock_version=2), "lock_version", "not supported"),
    (lambda d: d.update(lock_version="1"), "lock_version", "integer"),
    (lambda d: d.update(kernels={}), "kernels", "at least one"),
    (lambda d: d.update(extra=1), "extra", "unknown key"),
    (lambda d: d["kernels"]["6.12"].pop("suite"), 'kernels."6.12".suite', "missing"),
    (lambda d: d["kernels"]["6.12"].update(release="x/y"), 'kernels."6.12".release', "release"),
    (lambda d: d["kernels"]["6.12"].update(suite="a/../../b"), 'kernels."6.12".suite', "suite"),
    (lambda d: d["kernels"]["6.12"]["packages"][1].update(sha256="abc"),
     'kernels."6.12".packages[1].sha256', "SHA256"),
    (lambda d: d["kernels"]["6.12"]["packages"][0].update(size=-1),
     'kernels."6.12".packages[0].size', "positive"),
    (lambda d: d["kernels"]["6.12"]["packages"][0].update(
        filename="http://mirror.example/debian/pool/x.deb"),
     'kernels."6.12".packages[0].filename', "relative to the archive root"),
    (lambda d: d["kernels"]["6.12"]["packages"][0].update(filename="../../etc/x.deb"),
     'kernels."6.12".packages[0].filename', "relative"),
    (lambda d: d["kernels"]["6.12"]["packages"].pop(2), 'kernels."6.12".packages',
     f"no linux-image-{REL}"),
    (lambda d: d["kernels"]["6.12"]["packages"][0].update(colour="red"),
     'kernels."6.12".packages[0].colour', "unknown key"),
])
def test_malformed_lock_is_one_line_naming_file_and_key(mutate, key, words):
    with pytest.raises(ConfigError) as e:
        from_dict(_broken(mutate), "ci/kernels.lock")
    msg = str(e.value)
    assert msg.startswith(f"ci/kernels.lock: {key}: ") and words in msg
    assert "\n" not in msg
    ids = "" if key == "kernels" else "6.12 "  # the ids it pins, when it still says
    assert f"re-create it with 'ebpf-harness kernels lock {ids}-o ci/kernels.lock'" in msg


def test_unreadable_lock_files(tmp_path):
    with pytest.raises(ConfigError, match=r"k\.lock: not valid TOML") as e:
        loads("lock_version = = 1", "k.lock")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"lock file .*nope\.lock not found; create it with"):
        read_lock(tmp_path / "nope.lock")


def test_select_ids_sets_and_ids_outside_the_lock(catalog):
    lock = new_lock([_kernel("6.12")], Path("kernels.lock"))
    assert [k.id for k in lock.select(None, catalog)] == ["6.12"]
    assert [k.id for k in lock.select("default", catalog)] == ["6.12"]
    assert [k.id for k in lock.select(["6.12,6.12"], catalog)] == ["6.12"]
    with pytest.raises(ConfigError) as e:
        lock.select("two", catalog)
    msg = str(e.value)
    assert "kernel '6.1' is not in the lock file kernels.lock" in msg and "\n" not in msg
    assert "ebpf-harness kernels lock 6.1 -o kernels.lock" in msg
    with pytest.raises(ConfigError, match=r"'\./bzImage' is a local build.*--no-lock"):
        lock.select("./bzImage", catalog)


# -- config -------------------------------------------------------------------------------


def test_config_lock_key_and_discovery(tmp_path):
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("[tool.ebpf-harness]\n")
    assert load_config(proj / "sub", env={}).lock is None
    (proj / "kernels.lock").write_text("")
    assert load_config(proj / "sub", env={}).lock == proj / "kernels.lock"
    (proj / "pyproject.toml").write_text('[tool.ebpf-harness]\nlock = "ci/k.lock"\n')
    assert load_config(proj / "sub", env={}).lock == proj / "ci" / "k.lock"
    env = {"EBPF_HARNESS_LOCK": str(tmp_path / "e.lock")}
    assert load_config(proj / "sub", env=env).lock == tmp_path / "e.lock"
    assert load_config(proj, env=env).without_lock().lock is None


# -- a fake signed archive ------------------------------------------------------------------


@pytest.fixture(scope="session")
def signer(tmp_path_factory):
    if not shutil.which("gpg"):
        pytest.skip("needs gpg")
    home = tmp_path_factory.mktemp("gnupg")
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                    "Test Archive <archive@example.invalid>", "ed25519", "sign", "never"],
                   env=env, check=True, capture_output=True)
    keyring = home / "archive.gpg"
    keyring.write_bytes(subprocess.run(["gpg", "--export"], env=env, check=True,
                                       capture_output=True).stdout)
    yield env, keyring
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)


class FakeArchive:
    """dists/SUITE/{InRelease,main/binary-amd64/Packages.xz} and pool/ of real .debs."""

    def __init__(self, root: Path, signer) -> None:
        self.root, (self.env, self.keyring) = root, signer
        self.stanzas: dict[str, dict[str, str]] = {}  # suite -> {name: stanza}

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def add(self, suite: str, name: str, version: str, files: dict[str, str],
            depends: str = "") -> Path:
        build = self.root.parent / "build" / name
        shutil.rmtree(build, ignore_errors=True)
        (build / "DEBIAN").mkdir(parents=True)
        (build / "DEBIAN" / "control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
            f"Maintainer: t <t@example.invalid>\nDescription: test\n")
        for rel, text in files.items():
            (build / rel).parent.mkdir(parents=True, exist_ok=True)
            (build / rel).write_text(text)
        filename = f"pool/main/l/linux/{name}_{version}_amd64.deb"
        deb = self.root / filename
        deb.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(build), str(deb)],
                       check=True, capture_output=True)
        data = deb.read_bytes()
        dep = f"Depends: {depends}\n" if depends else ""
        self.stanzas.setdefault(suite, {})[name] = (
            f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n{dep}"
            f"Filename: {filename}\nSize: {len(data)}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
        return deb

    def add_kernel(self, suite: str, rel: str, version: str, image_text: str = "bzImage") -> None:
        abi = rel.removesuffix("-amd64")
        self.add(suite, f"linux-image-{rel}", version,
                 {f"boot/vmlinuz-{rel}": image_text, f"boot/config-{rel}": "CONFIG_BPF=y\n",
                  f"lib/modules/{rel}/kernel/.keep": ""}, "kmod")
        self.add(suite, f"linux-headers-{rel}", version,
                 {f"usr/src/linux-headers-{rel}/Makefile": "arch"},
                 f"linux-headers-{abi}-common (= {version}), linux-kbuild-6.12")
        self.add(suite, f"linux-headers-{abi}-common", version,
                 {f"usr/src/linux-headers-{abi}-common/Makefile": "common"})

    def drop(self, suite: str, name: str) -> None:
        del self.stanzas[suite][name]

    def publish(self) -> None:
        for suite, stanzas in self.stanzas.items():
            d = self.root / "dists" / suite
            xz = lzma.compress("\n".join(stanzas.values()).encode())
            (d / "main" / "binary-amd64").mkdir(parents=True, exist_ok=True)
            (d / "main" / "binary-amd64" / "Packages.xz").write_bytes(xz)
            release = (f"Origin: Test\nSuite: {suite}\nCodename: {suite}\nSHA256:\n"
                       f" {hashlib.sha256(xz).hexdigest()} {len(xz)} main/binary-amd64/Packages.xz\n")
            (d / "Release").write_text(release)
            (d / "InRelease").unlink(missing_ok=True)
            subprocess.run(["gpg", "--batch", "--yes", "--clearsign", "-o", str(d / "InRelease"),
                            str(d / "Release")], env=self.env, check=True, capture_output=True)


@pytest.fixture
def archive(tmp_path, signer):
    a = FakeArchive(tmp_path / "archive", signer)
    a.add_kernel("trixie", REL, "6.12.5-1")
    a.publish()
    return a


@pytest.fixture
def acfg(tmp_path, archive, catalog):
    return Config(mirror=archive.url, cache_dir=tmp_path / "cache", catalog=tmp_path / "catalog",
                  keyring=archive.keyring, index_max_age=0)


def _lock(acfg, catalog, path) -> Path:
    relock(path, "6.12", catalog, acfg)
    return path


@needs_tools
def test_lock_pins_every_package_from_the_signed_index(tmp_path, acfg, catalog, archive):
    (k,) = lock_kernels("default", catalog, acfg)
    assert (k.id, k.release, k.suite, k.version, k.origin) == (
        "6.12", REL, "trixie", "6.12.5-1", "debian:trixie 6.12.5-1")
    assert [p.name for p in k.packages] == [
        f"linux-headers-{REL}", f"linux-headers-{ABI}-common", f"linux-image-{REL}"]
    deb = archive.root / k.image.filename
    assert k.image.filename.startswith("pool/main/l/linux/")
    assert (k.image.size, k.image.sha256) == (deb.stat().st_size,
                                                hashlib.sha256(deb.read_bytes()).hexdigest())
    path = _lock(acfg, catalog, tmp_path / "kernels.lock")
    first = path.read_bytes()
    assert archive.root.as_posix() not in first.decode()  # no mirror in the lock
    _lock(acfg, catalog, path)
    assert path.read_bytes() == first  # re-locking unchanged builds: byte-identical


@needs_tools
def test_preparing_reports_each_download_as_an_event(tmp_path, acfg, catalog):
    from harness.events import DownloadProgress

    heard = []
    spec = prepare(parse_kernel_ids("6.12", catalog)[0], catalog, acfg, heard.append)
    assert {type(e) for e in heard} == {DownloadProgress} and {e.kernel for e in heard} == {"6.12"}
    done = {e.label for e in heard if e.done == e.total}
    assert {"trixie InRelease", "trixie Packages", f"linux-image-{REL}"} <= done
    heard.clear()
    path = _lock(acfg, catalog, tmp_path / "kernels.lock")
    again = prepare_locked(read_lock(path).get("6.12"), acfg, heard.append, lock_path=path)
    assert again.root == spec.root and not any(e.label.startswith("linux-") for e in heard)


@needs_tools
def test_prepare_from_lock_fetches_verifies_and_pins(tmp_path, acfg, catalog):
    path = _lock(acfg, catalog, tmp_path / "kernels.lock")
    lk = read_lock(path).get("6.12")
    spec = prepare_locked(lk, acfg, lock_path=path)
    assert spec.pinned and spec.id == "6.12" and spec.release == REL
    assert spec.vmlinuz.read_text() == "bzImage"
    assert spec.headers is not None and spec.headers_common is not None
    meta = json.loads((spec.root / TREE_META).read_text())
    assert meta["sha256"] == lk.record()
    assert not list((acfg.cache_dir / "debs").iterdir())  # debs dropped after extraction
    # from the cache the second time: nothing downloaded, even with the archive gone
    shutil.rmtree(tmp_path / "archive")
    again = prepare_locked(lk, acfg, lock_path=path)
    assert again.vmlinuz == spec.vmlinuz and again.pinned


@needs_tools
def test_session_uses_the_lock_and_refuses_ids_outside_it(tmp_path, acfg, catalog):
    path = _lock(acfg, catalog, tmp_path / "kernels.lock")
    cfg = acfg.with_overrides(lock=path)
    quiet = Progress(quiet=True)
    (k,) = prepare_kernels(None, cfg, quiet)
    assert k.pinned and k.release == REL
    assert [k.id for k in prepare_kernels("6.12", acfg, quiet, lock=path)] == ["6.12"]
    with pytest.raises(ConfigError, match=r"kernel '6\.1' is not in the lock file .*"
                       r"re-lock including it: ebpf-harness kernels lock 6\.1 -o "):
        prepare_kernels("6.12,6.1", cfg, quiet)


@needs_tools
def test_build_that_left_the_index_still_comes_from_the_pool(tmp_path, acfg, catalog, archive):
    path = _lock(acfg, catalog, tmp_path / "kernels.lock")
    archive.add_kernel("trixie", "6.12.6+deb13-amd64", "6.12.6-1")
    for name in (f"linux-image-{REL}", f"linux-headers-{REL}", f"linux-headers-{ABI}-common"):
        archive.drop("trixie", name)
    archive.publish()
    assert prepare(parse_kernel_ids("6.12", catalog)[0], catalog, acfg).release == \
        "6.12.6+deb13-amd64"  # the line moved on
    spec = prepare_locked(read_lock(path).get("6.12"), acfg, lock_path=path)
    assert spec.release == REL and spec.pinned  # the lock still gets its build


@needs_tools
def test_build_gone_from_the_archive_says_how_to_relock(tmp_path, acfg, catalog, archive):
    path = _lock(acfg, catalog, tmp_path / "kernels.lock")
    lk = read_lock(path).get("6.12")
    (archive.root / lk.image.filename).unlink()
    archive.drop("trixie", f"linux-image-{REL}")
    archive.publish()
    with pytest.raises(KernelError) as e:
        prepare_locked(lk, acfg, lock_path=path)
    msg = str(e.value)
    assert msg.startswith(f"kernel 6.12: the locked build {REL} (debian:trixie 6.12.5-1) is no "
                          "longer in the archive")
    assert f"ebpf-harness kernels lock 6.12 -o {path}" in msg and "\n" not in msg


@needs_tools
def test_lock_altered_while_index_lists_the_package_is_refused(tmp_path, acfg, catalog):
    path = _lock(acfg, catalog, tmp_path / "kernels.lock")
    d = to_dict(read_lock(path))
    d["kernels"]["6.12"]["packages"][2]["sha256"] = "f" * 64
    lk = from_dict(d, path).get("6.12")
    with pytest.raises(VerificationError, match=r"the signed trixie index lists .* the lock file "
                       r".* was altered"):
        prepare_locked(lk, acfg, lock_path=path)


@needs_tools
def test_cached_build_with_other_hashes_is_refetched(tmp_path, acfg, catalog, archive):
    # the cache holds a tree built from other bytes under the same names and versions
    old = prepare(parse_kernel_ids("6.12", catalog)[0], catalog, acfg)
    assert old.vmlinuz.read_text() == "bzImage" and not old.pinned
    archive.add_kernel("trixie", REL, "6.12.5-1", image_text="rebuilt")
    archive.publish()
    path = _lock(acfg, catalog, tmp_path / "kernels.lock")
    spec = prepare_locked(read_lock(path).get("6.12"), acfg, lock_path=path)
    assert spec.vmlinuz.read_text() == "rebuilt"
    assert json.loads((spec.root / TREE_META).read_text())["sha256"] == \
        read_lock(path).get("6.12").record()


@needs_tools
def test_tree_without_hash_record_is_vouched_for_by_the_index(tmp_path, acfg, catalog, archive):
    spec = prepare(parse_kernel_ids("6.12", catalog)[0], catalog, acfg)
    meta_file = spec.root / TREE_META
    meta = json.loads(meta_file.read_text())
    del meta["sha256"]  # as written before trees recorded hashes
    meta_file.write_text(json.dumps(meta))
    (spec.root / "marker").write_text("kept")
    path = _lock(acfg, catalog, tmp_path / "kernels.lock")
    again = prepare_locked(read_lock(path).get("6.12"), acfg, lock_path=path)
    assert (again.root / "marker").exists()  # not re-fetched
    assert "sha256" in json.loads(meta_file.read_text())


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path, monkeypatch, archive, catalog):
    monkeypatch.chdir(tmp_path)  # no pyproject.toml above: no discovered lock
    for k, v in {"MIRROR": archive.url, "KEYRING": str(archive.keyring),
                 "CATALOG": str(tmp_path / "catalog"), "CACHE_DIR": str(tmp_path / "cache"),
                 "INDEX_MAX_AGE": "0"}.items():
        monkeypatch.setenv(f"EBPF_HARNESS_{k}", v)
    monkeypatch.delenv("EBPF_HARNESS_LOCK", raising=False)
    return tmp_path


@needs_tools
def test_cli_lock_then_fetch_with_lock(cli_env, capsys):
    assert main(["kernels", "lock", "-q"]) == 0
    out = capsys.readouterr().out
    assert f"6.12: {REL} from debian:trixie 6.12.5-1 (new)" in out
    lock_file = cli_env / "kernels.lock"
    first = lock_file.read_bytes()
    assert main(["kernels", "lock", "6.12", "-o", "kernels.lock", "-q"]) == 0
    assert "(unchanged)" in capsys.readouterr().out
    assert lock_file.read_bytes() == first
    assert main(["kernels", "fetch", "--lock", "kernels.lock", "-q"]) == 0
    assert f"6.12: {REL} from debian:trixie 6.12.5-1 (locked) -> " in capsys.readouterr().out


@needs_tools
def test_cli_id_outside_lock_and_bad_lock_are_one_line_errors(cli_env, capsys):
    assert main(["kernels", "lock", "6.12", "-q"]) == 0
    capsys.readouterr()
    assert main(["kernels", "fetch", "6.1", "--lock", "kernels.lock", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kernel '6.1' is not in the lock file kernels.lock" in err
    (cli_env / "bad.lock").write_text("lock_version = 1\n")
    assert main(["kernels", "fetch", "--lock", "bad.lock", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.lock: kernels: missing" in err
    (cli_env / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert main(["kernels", "lock", "6.12", "-o", "pyproject.toml", "-q"]) == 2  # not clobbered
    assert "pyproject.toml exists and is not an ebpf-harness lock file; refusing to overwrite" \
        in capsys.readouterr().err
    assert (cli_env / "pyproject.toml").read_text() == "[project]\nname = 'x'\n"


@needs_tools
def test_cli_discovers_lock_beside_pyproject(cli_env, capsys):
    (cli_env / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert main(["kernels", "lock", "6.12", "-q"]) == 0
    capsys.readouterr()
    assert main(["kernels", "fetch", "-q"]) == 0
    assert "(locked)" in capsys.readouterr().out
    assert main(["kernels", "fetch", "6.1", "-q"]) == 2  # the lock applies without --lock
    assert "not in the lock file" in capsys.readouterr().err
    assert main(["kernels", "fetch", "6.12", "--no-lock", "-q"]) == 0
    assert "(locked)" not in capsys.readouterr().out


# -- the pytest plugin ------------------------------------------------------------------------


def _cached_locked_tree(cache: Path, lk: LockedKernel) -> None:
    """A prepared tree whose record matches the lock, as prepare_locked leaves it."""
    from test_plugin import bzimage

    tree = cache / "kernels" / lk.release
    (tree / "boot").mkdir(parents=True)
    bzimage(tree / "boot" / f"vmlinuz-{lk.release}", lk.release)
    (tree / TREE_META).write_text(json.dumps({
        "format": 2, "release": lk.release, "version": lk.version, "suite": lk.suite,
        "packages": sorted(f"{p.name}={p.version}" for p in lk.packages),
        "sha256": lk.record(), "vmlinuz": f"boot/vmlinuz-{lk.release}"}))


def test_plugin_ebpf_lock_runs_the_locked_kernels(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "cache"))
    monkeypatch.delenv("EBPF_HARNESS_LOCK", raising=False)
    lk = _kernel("6.12")
    _cached_locked_tree(pytester.path / "cache" / "ebpf-harness", lk)
    write_lock(pytester.path / "k.lock", new_lock([lk]))
    pytester.makepyfile(test_k="def test_k(kernel):\n    assert kernel.release\n")
    common = ("--ebpf-backend", "local", "-p", "no:cacheprovider")
    r = pytester.runpytest_subprocess("--ebpf-lock", "k.lock", "--ebpf-json", "r.json", "-v",
                                      *common)
    r.stdout.fnmatch_lines(["*test_k[[]6.12[]] PASSED*", f"*ebpf-harness: kernels 6.12={REL}*"])
    (k,) = json.loads((pytester.path / "r.json").read_text())["kernels"]
    assert (k["id"], k["release"], k["pinned"]) == ("6.12", REL, True)
    r = pytester.runpytest_subprocess("--ebpf-lock", "k.lock", "--kernels", "5.10", *common)
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*kernel '5.10' is not in the lock file *k.lock*re-lock including it*"])


@needs_tools
def test_a_damaged_cached_image_is_extracted_again(tmp_path, acfg, catalog, capsys):
    """A cached vmlinuz cut short once booted into garbage and was blamed on the programs."""
    path = _lock(acfg, catalog, tmp_path / "kernels.lock")
    spec = prepare(parse_kernel_ids("6.12", catalog)[0], catalog, acfg)
    assert "vmlinuz_sha256" in json.loads((spec.root / TREE_META).read_text())
    spec.vmlinuz.write_text("bzIm")  # truncated
    again = prepare(parse_kernel_ids("6.12", catalog)[0], catalog, acfg)
    assert again.vmlinuz.read_text() == "bzImage"
    assert "is damaged" in capsys.readouterr().err
    again.vmlinuz.write_text("garbage")
    pinned = prepare_locked(read_lock(path).get("6.12"), acfg, lock_path=path)
    assert pinned.vmlinuz.read_text() == "bzImage"
