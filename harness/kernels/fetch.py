"""Downloads, verification and preparation of Debian kernels (the side-effect half).

Trust chain: InRelease (gpgv against the Debian archive keyring) -> SHA256 of
Packages.xz listed in it -> SHA256 of every .deb listed in Packages. Nothing unverified is
used or kept: a cached file that no longer matches its checksum is removed and fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import lzma
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .. import tools
from ..config import Config
from ..errors import KernelError, MirrorError, UnknownKernelError, VerificationError
from ..versions import KernelVersion, compare_debian_versions
from .cache import Cache
from .catalog import Catalog, KernelRequest
from .debian import Package, Release, abi_of, closure, image_release, parse_packages, parse_release
from .layout import bzimage_release, normalize_tree
from .mirror import HOW_TO_SET, resolve_mirrors
from .model import KernelSpec

Progress = Callable[[str, int, int], None]  # (label, done bytes, total bytes)

IMAGE_FAMILIES = ("linux-image-", "linux-binary-", "linux-modules-", "linux-base-")
HEADER_FAMILIES = ("linux-headers-",)
TREE_FORMAT = 2  # bump when the layout of prepared trees changes


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Archive:
    """A Debian archive reached through the configured mirror, cached and verified."""

    def __init__(self, config: Config, progress: Progress | None = None) -> None:
        self.config = config
        self.cache = Cache(config.cache_dir)
        self.progress = progress
        self._mirrors: tuple[str, str | None] | None = None
        self._packages: dict[str, dict[str, Package]] = {}

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

    # -- raw downloads ---------------------------------------------------------------
    def _get(self, url: str, dest: Path, label: str, expected: int | None = None) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    resp = urllib.request.urlopen(url, timeout=60)
                except urllib.error.HTTPError as e:
                    raise MirrorError(
                        f"{url}: HTTP {e.code}. The mirror may not carry this suite; {HOW_TO_SET}"
                    ) from e
                except (urllib.error.URLError, OSError) as e:
                    raise MirrorError(f"cannot reach {url} ({e}); {HOW_TO_SET}") from e
                total = expected or int(resp.headers.get("Content-Length") or 0)
                done = 0
                with resp:
                    while chunk := resp.read(1 << 20):
                        out.write(chunk)
                        done += len(chunk)
                        if self.progress:
                            self.progress(label, done, total)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _verified(self, url: str, dest: Path, sha256: str, size: int, label: str) -> Path:
        """dest holding exactly the bytes with this checksum; re-fetched once if corrupt."""
        if dest.exists():
            if _sha256_file(dest) == sha256:
                return dest
            dest.unlink()  # corrupt cache entry: drop it and fetch again
        for attempt in (1, 2):
            self._get(url, dest, label, size)
            got = _sha256_file(dest)
            if got == sha256:
                return dest
            dest.unlink()
            if attempt == 2:
                raise VerificationError(
                    f"{url}: SHA256 {got} does not match the signed index ({sha256}) twice; "
                    "the mirror is serving corrupt data, try another mirror (--mirror)"
                )
        raise AssertionError("unreachable")

    # -- signed index ----------------------------------------------------------------
    def release(self, suite: str) -> Release:
        mirror = self.mirror_for(suite)
        key = hashlib.sha256(mirror.encode()).hexdigest()[:12]
        d = self.cache.path("index", key, suite)
        inrelease = d / "InRelease"
        content = d / "Release.verified"
        with self.cache.lock(f"index-{key}-{suite}"):
            fresh = (
                content.exists()
                and time.time() - content.stat().st_mtime < self.config.index_max_age
            )
            if not fresh:
                try:
                    self._get(f"{mirror}/dists/{suite}/InRelease", inrelease, f"{suite} InRelease")
                except MirrorError:
                    if not content.exists():
                        raise
                    # offline: keep using the index verified earlier
                    return parse_release(content.read_text())
                verified = self._gpgv(inrelease, suite)
                if not content.exists() or content.read_bytes() != verified:
                    self.cache.write_atomic(content, verified)
                    # the Packages filtered from an older Release are stale now
                    (d / "linux-packages").unlink(missing_ok=True)
                else:
                    content.touch()
            return parse_release(content.read_text())

    def _gpgv(self, inrelease: Path, suite: str) -> bytes:
        keyring = self.config.keyring
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

    def packages(self, suite: str) -> dict[str, Package]:
        if suite in self._packages:
            return self._packages[suite]
        rel = self.release(suite)
        mirror = self.mirror_for(suite)
        key = hashlib.sha256(mirror.encode()).hexdigest()[:12]
        d = self.cache.path("index", key, suite)
        filtered = d / "linux-packages"
        with self.cache.lock(f"index-{key}-{suite}"):
            if not filtered.exists():
                entry = rel.files.get("main/binary-amd64/Packages.xz")
                if entry is None:
                    raise VerificationError(f"{suite}: Release lists no main/binary-amd64/Packages.xz")
                xz = d / "Packages.xz"
                self._verified(
                    f"{mirror}/dists/{suite}/main/binary-amd64/Packages.xz", xz, entry.sha256,
                    entry.size, f"{suite} Packages",
                )
                text = lzma.decompress(xz.read_bytes()).decode("utf-8", errors="replace")
                keep = [p for p in text.split("\n\n") if p.startswith("Package: linux-")]
                self.cache.write_atomic(filtered, "\n\n".join(keep).encode())
                xz.unlink()
        pk = parse_packages(filtered.read_text(), suite)
        self._packages[suite] = pk
        return pk

    def deb(self, pkg: Package) -> Path:
        dest = self.cache.path("debs", Path(pkg.filename).name)
        mirror = self.mirror_for(pkg.suite)
        with self.cache.lock(f"deb-{Path(pkg.filename).name}"):
            return self._verified(f"{mirror}/{pkg.filename}", dest, pkg.sha256, pkg.size, pkg.name)


def signature_ok(gpgv_status: str) -> bool:
    """At least one VALIDSIG and no BAD/EXPIRED/REVOKED signature in gpgv's status output.

    Signatures by keys absent from the keyring (NO_PUBKEY) are tolerated, as apt does,
    provided another signature is good.
    """
    lines = [ln.split()[1] for ln in gpgv_status.splitlines() if ln.startswith("[GNUPG:] ")
             and len(ln.split()) > 1]
    bad = {"BADSIG", "EXPKEYSIG", "REVKEYSIG", "ERRSIG_BAD"}
    return "VALIDSIG" in lines and not (set(lines) & bad)


# -- choosing a build ---------------------------------------------------------------------


def candidates(archive: Archive, req: KernelRequest, flavour: str) -> list[tuple[str, Package]]:
    """(release, image package) for every build of the requested line in its suites."""
    assert req.entry is not None
    out = []
    for suite in req.entry.suites:
        for name, pkg in archive.packages(suite).items():
            rel = image_release(name, flavour)
            if rel and KernelVersion.parse(rel).line == req.entry.line:
                out.append((rel, pkg))
    return out


def choose(cands: list[tuple[str, Package]], req: KernelRequest) -> tuple[str, Package]:
    if req.kind == "release":
        for rel, pkg in cands:
            if rel == req.release:
                return rel, pkg
        known = ", ".join(sorted({r for r, _ in cands})) or "none"
        raise UnknownKernelError(
            f"kernel release {req.release} is not in the archive index; builds of line "
            f"{req.entry.line if req.entry else '?'} available now: {known}"
        )
    if not cands:
        suites = ", ".join(req.entry.suites) if req.entry else "?"
        raise UnknownKernelError(
            f"no generic-flavour build of kernel line {req.id} found in suites {suites}; "
            "check the catalog (kernels/*.toml) or the mirror"
        )
    best = cands[0]
    for c in cands[1:]:
        if compare_debian_versions(c[1].version, best[1].version) > 0:
            best = c
    return best


def upstream_version(pkg_version: str) -> KernelVersion:
    return KernelVersion.parse(pkg_version.split(":")[-1])


def prepare(
    req: KernelRequest,
    catalog: Catalog,
    config: Config,
    progress: Progress | None = None,
    with_headers: bool = True,
) -> KernelSpec:
    """Resolve a request to a verified, extracted, bootable kernel tree in the cache."""
    if req.kind == "local":
        return prepare_local(req)
    archive = Archive(config, progress)
    rel, image = choose(candidates(archive, req, catalog.flavour), req)
    pkgs = archive.packages(image.suite)
    # the image's dependencies may sit in the same suite only
    abi = abi_of(rel, catalog.flavour)
    wanted = closure(image.name, pkgs, abi, IMAGE_FAMILIES)
    header_pkgs: list[Package] = []
    if with_headers and f"linux-headers-{rel}" in pkgs:
        header_pkgs = closure(f"linux-headers-{rel}", pkgs, abi, HEADER_FAMILIES)
    cache = archive.cache
    tree = cache.path("kernels", rel)
    meta_file = tree / ".harness-tree.json"
    with cache.lock(f"kernel-{rel}"):
        meta = _read_meta(meta_file)
        names = sorted(p.name + "=" + p.version for p in wanted + header_pkgs)
        if meta.get("packages") != names or meta.get("format") != TREE_FORMAT:
            debs = [archive.deb(p) for p in wanted + header_pkgs]
            with cache.staging_dir(tree) as stage:
                for deb in debs:
                    tools.run(["dpkg-deb", "-x", str(deb), str(stage)], timeout=600)
                vmlinuz_rel = normalize_tree(stage, rel)
                tools.run(["depmod", "-b", str(stage), rel], timeout=600)
                meta = {
                    "format": TREE_FORMAT,
                    "release": rel,
                    "version": image.version,
                    "suite": image.suite,
                    "packages": names,
                    "vmlinuz": vmlinuz_rel,
                }
                (stage / ".harness-tree.json").write_text(json.dumps(meta, indent=1))
            for deb in debs:  # the extracted tree is the cache entry; keep disk use low
                deb.unlink(missing_ok=True)
    headers = tree / "usr" / "src" / f"linux-headers-{rel}"
    common = tree / "usr" / "src" / f"linux-headers-{abi}-common"
    return KernelSpec(
        id=req.id,
        release=rel,
        version=upstream_version(meta["version"]),
        vmlinuz=tree / meta["vmlinuz"],
        root=tree,
        headers=headers if headers.is_dir() else None,
        headers_common=common if common.is_dir() else None,
        origin=f"debian:{meta['suite']} {meta['version']}",
    )


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def prepare_local(req: KernelRequest) -> KernelSpec:
    assert req.path is not None
    p = req.path
    if p.is_dir():
        image = p / "arch" / "x86" / "boot" / "bzImage"
        if not image.is_file():
            raise KernelError(
                f"kernel '{req.id}': {p} is a directory without arch/x86/boot/bzImage; "
                "build the kernel first (make bzImage) or give the image file"
            )
        rel = bzimage_release(image.read_bytes())
        # a local kernel is named by its release: a path makes a poor column or test id
        return KernelSpec(rel, rel, KernelVersion.parse(rel), image, None, p, None, f"local:{p}")
    rel = bzimage_release(p.read_bytes())
    root = p.parent.parent if p.parent.name == "boot" else None
    if root is not None and not (root / "lib" / "modules" / rel).is_dir():
        root = None
    return KernelSpec(rel, rel, KernelVersion.parse(rel), p, root, None, None, f"local:{p}")


def installed_trees(config: Config) -> list[dict]:
    d = config.cache_dir / "kernels"
    out = []
    if d.is_dir():
        for t in sorted(d.iterdir()):
            meta = _read_meta(t / ".harness-tree.json")
            if meta:
                meta["path"] = str(t)
                out.append(meta)
    return out


def prune(config: Config, keep: set[str]) -> list[str]:
    """Remove cached kernel trees whose release is not in keep, and partial downloads."""
    removed = []
    cache = Cache(config.cache_dir)
    cache.remove_partials()
    for meta in installed_trees(config):
        if meta["release"] not in keep:
            with cache.lock(f"kernel-{meta['release']}"):
                shutil.rmtree(meta["path"], ignore_errors=True)
            removed.append(meta["release"])
    debs = cache.path("debs")
    if debs.is_dir():
        shutil.rmtree(debs, ignore_errors=True)
    return removed
