"""Downloads are verified and atomic; corrupt cache entries are replaced. file:// URLs, no network."""

import hashlib
from pathlib import Path

import pytest

from harness.config import Config
from harness.errors import MirrorError, VerificationError
from harness.kernels.cache import Cache
from harness.kernels.download import get, get_verified
from harness.kernels.index import verify_inrelease


def test_verified_download_and_corrupt_cache_entry_refetched(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    payload = b"kernel bits" * 1000
    (mirror / "k.deb").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "debs" / "k.deb"
    get_verified((mirror / "k.deb").as_uri(), dest, sha, len(payload))
    assert dest.read_bytes() == payload
    dest.write_bytes(b"corrupted")  # e.g. a disk error or a tampered cache
    get_verified((mirror / "k.deb").as_uri(), dest, sha, len(payload))
    assert dest.read_bytes() == payload
    assert not list(dest.parent.glob("*.part"))


def test_checksum_mismatch_is_refused_and_nothing_kept(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "k.deb").write_bytes(b"evil")
    dest = tmp_path / "cache" / "debs" / "k.deb"
    with pytest.raises(VerificationError, match="does not match the signed index"):
        get_verified((mirror / "k.deb").as_uri(), dest, "0" * 64, 4)
    assert not dest.exists()
    assert not list(dest.parent.glob("*"))


def test_unreachable_mirror_names_url_and_how_to_configure(tmp_path):
    with pytest.raises(MirrorError) as e:
        get((tmp_path / "nowhere" / "x").as_uri(), tmp_path / "x")
    assert "nowhere" in str(e.value) and "--mirror" in str(e.value)


def test_unsigned_inrelease_is_refused_by_gpgv(tmp_path):
    f = tmp_path / "InRelease"
    f.write_text("Origin: Debian\nSHA256:\n " + "a" * 64 + " 1 main/binary-amd64/Packages.xz\n")
    with pytest.raises(VerificationError, match="does not verify"):
        verify_inrelease(f, Config().keyring, "sid")
    assert not f.exists()  # an unverified index is not kept


def test_staging_dir_is_all_or_nothing(tmp_path):
    c = Cache(tmp_path)
    dest = tmp_path / "kernels" / "rel"
    with pytest.raises(RuntimeError), c.staging_dir(dest) as stage:
        (stage / "half").write_text("x")
        raise RuntimeError("interrupted download")
    assert not dest.exists()
    assert not list((tmp_path / "kernels").iterdir())
    with c.staging_dir(dest) as stage:
        (stage / "whole").write_text("x")
    assert (dest / "whole").exists()


def test_lock_is_exclusive_across_processes(tmp_path):
    import subprocess
    import sys
    import time

    c = Cache(tmp_path)
    code = (
        "import sys; from pathlib import Path; from harness.kernels.cache import Cache\n"
        "with Cache(Path(sys.argv[1])).lock('k'):\n    print('got', flush=True)\n"
    )
    with c.lock("k"):
        p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True)
        time.sleep(0.5)
        assert p.poll() is None  # blocked while we hold the lock
    out, _ = p.communicate(timeout=10)
    assert out.strip() == "got"


def _tree(cfg, rel: str) -> Path:
    import json

    from harness.kernels.trees import TREE_META

    t = cfg.cache_dir / "kernels" / rel
    t.mkdir(parents=True)
    (t / TREE_META).write_text(json.dumps({"release": rel, "version": "1", "suite": "x"}))
    return t


def test_prune_keeps_what_a_running_harness_uses(cfg):
    import subprocess
    import sys

    from harness.kernels.cache import Cache
    from harness.kernels.prune import in_use_name, prune

    a, b = _tree(cfg, "6.1.0-a"), _tree(cfg, "6.12.0-b")
    part = cfg.cache_dir / "debs" / ".x.deb.abc.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half")
    # another harness process is active (downloading): its partial files stay
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from harness.kernels.cache import Cache; "
        f"Cache(Path({str(cfg.cache_dir)!r})).hold_active(); print('ready', flush=True); "
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        # and a VM is booted from tree b
        with Cache(cfg.cache_dir).shared(in_use_name("6.12.0-b")):
            removed, busy = prune(cfg, keep=set())
        assert removed == ["6.1.0-a"] and busy == ["6.12.0-b"]
        assert not a.exists() and b.exists() and part.exists()
    finally:
        holder.kill()
        holder.wait()
    removed, busy = prune(cfg, keep=set())
    assert removed == ["6.12.0-b"] and not busy and not part.exists()


def test_prune_dry_run_names_what_it_would_remove_and_removes_nothing(cfg):
    from harness.kernels.prune import prune

    a, b = _tree(cfg, "6.1.0-a"), _tree(cfg, "6.12.0-b")
    part = cfg.cache_dir / "debs" / ".x.deb.abc.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half")
    removed, busy = prune(cfg, keep={"6.12.0-b"}, dry_run=True)
    assert removed == ["6.1.0-a"] and not busy
    assert a.exists() and b.exists() and part.exists()
