"""The signed archive index, cached: InRelease checked by gpgv against the Debian archive
keyring, then the SHA256 of Packages.xz listed in it, then the SHA256 of every .deb listed
in Packages. I/O (downloads, gpgv, the cache); the parsing is debian.py's.

Nothing unverified is used or kept: a cached file that no longer matches its checksum is
removed and fetched again. A verified index is reused for config.index_max_age seconds,
and while the mirror is out of reach as long as its Valid-Until allows (or
allow_expired_index names the suite).
"""

from __future__ import annotations

import hashlib
import lzma
import sys
import tempfile
import time
from pathlib import Path

from .. import tools
from ..config import Config
from ..errors import MirrorError, VerificationError
from ..events import DownloadProgress, FetchListener
from . import download
from .cache import Cache
from .debian import (
    Package,
    Release,
    check_release,
    parse_packages,
    parse_release,
    select_paragraphs,
    signature_ok,
)
from .mirror import resolve_mirrors

PACKAGES_XZ = "main/binary-amd64/Packages.xz"


def packages_xz(arch: str) -> str:
    """The Release's path of an architecture's Packages index."""
    return f"main/binary-{arch}/Packages.xz"


def _filtered_name(arch: str) -> str:
    # amd64 keeps the name caches made before other architectures existed
    return "linux-packages" if arch == "amd64" else f"linux-packages-{arch}"
KEPT = ("linux-",)  # the packages of a suite's index kept in the cache

_WARNED: set[str] = set()  # suites whose expired index was reported in this process


def verify_inrelease(inrelease: Path, keyring: Path, suite: str) -> bytes:
    """The signed content of an InRelease file, checked by gpgv; a file that does not
    verify is removed and refused."""
    if not keyring.exists():
        raise VerificationError(
            f"keyring {keyring} not found; install debian-archive-keyring or set 'keyring'"
        )
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "Release"
        proc = tools.run(
            ["gpgv", "--status-fd", "1", "--keyring", str(keyring), "--output", str(out),
             str(inrelease)],
            check=False,
            timeout=60,
        )
        status = proc.stdout.decode(errors="replace")
        if not signature_ok(status) or not out.exists():
            inrelease.unlink(missing_ok=True)
            raise VerificationError(
                f"{suite}: the InRelease signature does not verify against {keyring}:\n"
                + status.strip()
                + "\nRefusing to use it. Check the mirror, or update debian-archive-keyring."
            )
        return out.read_bytes()


class Archive:
    """A Debian archive reached through the configured mirror, cached and verified.

    listener receives DownloadProgress for every download (tagged with kernel, when the
    archive works for one kernel).
    """

    def __init__(self, config: Config, listener: FetchListener | None = None,
                 kernel: str = "") -> None:
        self.config = config
        self.cache = Cache(config.cache_dir)
        self.listener = listener
        self.kernel = kernel
        self._mirrors: tuple[str, str | None] | None = None
        self._packages: dict[tuple[str, str], dict[str, Package]] = {}

    # -- mirrors -------------------------------------------------------------------
    def mirror_for(self, suite: str) -> str:
        if self._mirrors is None:
            self._mirrors = resolve_mirrors(self.config)
        archive, security = self._mirrors
        if suite.endswith("-security"):
            if not security:
                raise MirrorError(
                    f"suite {suite} needs the security archive, and none is configured; set "
                    "security_mirror (--security-mirror, EBPF_HARNESS_SECURITY_MIRROR)"
                )
            return security
        return archive

    def _index_dir(self, suite: str) -> tuple[str, Path]:
        """(lock name, cache directory) of a suite's index from this mirror."""
        key = hashlib.sha256(self.mirror_for(suite).encode()).hexdigest()[:12]
        return f"index-{key}-{suite}", self.cache.path("index", key, suite)

    # -- downloads -------------------------------------------------------------------
    def _on_chunk(self, label: str) -> download.OnChunk | None:
        listener, kernel = self.listener, self.kernel
        if listener is None:
            return None
        return lambda done, total: listener(DownloadProgress(label, done, total, kernel))

    def verified(self, url: str, dest: Path, sha256: str, size: int, label: str,
                 against: str = "the signed index") -> Path:
        return download.get_verified(url, dest, sha256, size, against, self._on_chunk(label))

    # -- signed index ----------------------------------------------------------------
    def release(self, suite: str) -> Release:
        mirror = self.mirror_for(suite)
        lock, d = self._index_dir(suite)
        inrelease = d / "InRelease"
        content = d / "Release.verified"
        with self.cache.lock(lock):
            fresh = (
                content.exists()
                and time.time() - content.stat().st_mtime < self.config.index_max_age
            )
            if not fresh:
                try:
                    download.get(f"{mirror}/dists/{suite}/InRelease", inrelease,
                                 on_chunk=self._on_chunk(f"{suite} InRelease"))
                except MirrorError:
                    if not content.exists():
                        raise
                    # offline: keep using the index verified earlier, while it is valid
                    return self._checked(parse_release(content.read_text()), suite)
                verified = verify_inrelease(inrelease, self.config.keyring, suite)
                if not content.exists() or content.read_bytes() != verified:
                    self.cache.write_atomic(content, verified)
                    # the Packages filtered from an older Release are stale now
                    for old in d.glob("linux-packages*"):
                        old.unlink(missing_ok=True)
                else:
                    content.touch()
            return self._checked(parse_release(content.read_text()), suite)

    def _checked(self, rel: Release, suite: str) -> Release:
        warning = check_release(rel, suite, time.time(), suite in self.config.allow_expired_index)
        if warning and suite not in _WARNED:
            _WARNED.add(suite)
            print(f"ebpf-harness: warning: {warning}", file=sys.stderr)
        return rel

    def packages(self, suite: str, arch: str = "amd64") -> dict[str, Package]:
        """The suite's linux-* packages for one architecture, from its Packages index
        verified against the signed Release (kept in the cache, filtered, until the
        Release changes)."""
        if (suite, arch) in self._packages:
            return self._packages[suite, arch]
        rel = self.release(suite)
        mirror = self.mirror_for(suite)
        lock, d = self._index_dir(suite)
        filtered = d / _filtered_name(arch)
        index = packages_xz(arch)
        with self.cache.lock(lock):
            if not filtered.exists():
                entry = rel.files.get(index)
                if entry is None:
                    raise VerificationError(f"{suite}: Release lists no {index}")
                xz = d / f"Packages-{arch}.xz"
                label = f"{suite} Packages" + ("" if arch == "amd64" else f" ({arch})")
                self.verified(f"{mirror}/dists/{suite}/{index}", xz, entry.sha256,
                              entry.size, label)
                text = lzma.decompress(xz.read_bytes()).decode("utf-8", errors="replace")
                self.cache.write_atomic(filtered, select_paragraphs(text, KEPT).encode())
                xz.unlink()
        pk = parse_packages(filtered.read_text(), suite, KEPT)
        self._packages[suite, arch] = pk
        return pk

    def lists(self, suites: tuple[str, ...], arch: str = "amd64") -> dict[str, dict[str, Package]]:
        """{suite: its packages for arch} for resolve.resolve."""
        return {s: self.packages(s, arch) for s in suites}

    def deb(self, pkg: Package) -> Path:
        name = Path(pkg.filename).name
        with self.cache.lock(f"deb-{name}"):
            return self.verified(f"{self.mirror_for(pkg.suite)}/{pkg.filename}",
                                 self.cache.path("debs", name), pkg.sha256, pkg.size, pkg.name)
