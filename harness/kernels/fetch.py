"""Downloads, verification and preparation of Debian kernels (the side-effect half).

Trust chain: InRelease (gpgv against the Debian archive keyring) -> SHA256 of
Packages.xz listed in it -> SHA256 of every .deb listed in Packages. Nothing unverified is
used or kept: a cached file that no longer matches its checksum is removed and fetched again.

A lock file (lock.py) carries the SHA256 and size of every package, taken from a signed
index at lock time; a locked build is verified against those, since it may have left the
current index, and against the current signed index too while that still lists it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import lzma
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import tools
from ..config import Config
from ..errors import ConfigError, KernelError, MirrorError, UnknownKernelError, VerificationError
from ..versions import KernelVersion, compare_debian_versions
from .cache import Cache
from .catalog import Catalog, KernelRequest, parse_kernel_ids
from .debian import (
    Package,
    Release,
    abi_of,
    check_release,
    closure,
    image_release,
    parse_packages,
    parse_release,
)
from .layout import bzimage_release, normalize_tree
from .lock import (
    DEFAULT_LOCK_NAME,
    LockedKernel,
    LockedPackage,
    LockFile,
    read_lock_for_update,
    relock_command,
    write_lock,
)
from .mirror import HOW_TO_SET, resolve_mirrors
from .model import KernelSpec

Progress = Callable[[str, int, int], None]  # (label, done bytes, total bytes)

IMAGE_FAMILIES = ("linux-image-", "linux-binary-", "linux-modules-", "linux-base-")
HEADER_FAMILIES = ("linux-headers-",)
TREE_FORMAT = 2  # bump when the layout of prepared trees changes
TREE_META = ".harness-tree.json"


CANCEL = threading.Event()  # set on Ctrl-C: downloads under way stop at their next chunk


class _Absent(MirrorError):
    """The mirror answered, and the file is not there (HTTP 404/410, or no such local file)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


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
        """Download url to dest whole or not at all: at most `expected` bytes (the size the
        signed index gives; an unsigned file gets UNSIGNED_CAP), within a deadline, retried
        once when the network fails (never when the mirror says the file is absent)."""
        for attempt in (1, 2):
            try:
                self._get_once(url, dest, label, expected)
                return
            except _Absent:
                raise
            except MirrorError:
                if attempt == 2:
                    raise
                time.sleep(RETRY_PAUSE)

    def _get_once(self, url: str, dest: Path, label: str, expected: int | None) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        cap = expected if expected is not None else UNSIGNED_CAP
        deadline = time.monotonic() + download_deadline(cap)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    resp = urllib.request.urlopen(url, timeout=60)
                except urllib.error.HTTPError as e:
                    msg = f"{url}: HTTP {e.code}. The mirror may not carry this suite; {HOW_TO_SET}"
                    if e.code in (404, 410):
                        raise _Absent(msg, f"HTTP {e.code}") from e
                    raise MirrorError(msg) from e
                except (urllib.error.URLError, OSError) as e:
                    msg = f"cannot reach {url} ({e}); {HOW_TO_SET}"
                    if isinstance(getattr(e, "reason", e), FileNotFoundError):
                        raise _Absent(msg, "not found") from e
                    raise MirrorError(msg) from e
                total = expected or int(resp.headers.get("Content-Length") or 0)
                done = 0
                with resp:
                    try:
                        while chunk := resp.read1(1 << 20):  # what has arrived, so the
                            # deadline is checked while a slow mirror trickles
                            out.write(chunk)
                            done += len(chunk)
                            if done > cap:
                                raise VerificationError(
                                    f"{url}: the mirror sent more than the {cap} bytes "
                                    f"{'the signed index gives' if expected else 'allowed'}; "
                                    "refusing it (a wrong or hostile mirror?)")
                            if CANCEL.is_set():
                                raise KeyboardInterrupt
                            if time.monotonic() > deadline:
                                raise MirrorError(f"{url}: not downloaded within "
                                                  f"{download_deadline(cap):.0f}s; {HOW_TO_SET}")
                            if self.progress:
                                self.progress(label, done, total)
                    except (OSError, http.client.HTTPException) as e:
                        raise MirrorError(f"{url}: download broke off ({e!r}); {HOW_TO_SET}") from e
                if total and done < total:
                    raise MirrorError(f"{url}: download broke off after {done} of {total} bytes; "
                                      f"{HOW_TO_SET}")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _verified(self, url: str, dest: Path, sha256: str, size: int, label: str,
                  against: str = "the signed index") -> Path:
        """dest holding exactly the bytes with this checksum and size; re-fetched once if corrupt."""
        if dest.exists():
            if dest.stat().st_size == size and _sha256_file(dest) == sha256:
                return dest
            dest.unlink()  # corrupt cache entry: drop it and fetch again
        for attempt in (1, 2):
            self._get(url, dest, label, size)
            got, got_size = _sha256_file(dest), dest.stat().st_size
            if got == sha256 and got_size == size:
                return dest
            dest.unlink()
            if attempt == 2:
                raise VerificationError(
                    f"{url}: SHA256 {got} ({got_size} bytes) does not match {against} "
                    f"({sha256}, {size} bytes) twice; the mirror is serving corrupt data, "
                    "try another mirror (--mirror)"
                    + ("" if against == "the signed index" else ", or the lock file was altered")
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
                    # offline: keep using the index verified earlier, while it is valid
                    return self._checked(parse_release(content.read_text()), suite)
                verified = self._gpgv(inrelease, suite)
                if not content.exists() or content.read_bytes() != verified:
                    self.cache.write_atomic(content, verified)
                    # the Packages filtered from an older Release are stale now
                    (d / "linux-packages").unlink(missing_ok=True)
                else:
                    content.touch()
            return self._checked(parse_release(content.read_text()), suite)

    def _checked(self, rel: Release, suite: str) -> Release:
        warning = check_release(rel, suite, time.time(), suite in self.config.allow_expired_index)
        if warning and suite not in _WARNED:
            _WARNED.add(suite)
            print(f"ebpf-harness: warning: {warning}", file=sys.stderr)
        return rel

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


UNSIGNED_CAP = 16 << 20  # an InRelease is well under a megabyte
RETRY_PAUSE = 2.0  # seconds before the one retry of a failed download


def download_deadline(size: int) -> float:
    """Seconds one download may take: two minutes, plus 1 MB/s for the bytes."""
    return 120.0 + size / 1e6


_WARNED: set[str] = set()  # suites whose expired index was reported in this process


def signature_ok(gpgv_status: str) -> bool:
    """At least one VALIDSIG and no bad, expired or revoked signature in gpgv's status.

    Signatures by keys absent from the keyring (NO_PUBKEY) are tolerated, as apt does,
    provided another signature is good. An expired signature (EXPSIG) or one by an expired
    or revoked key is refused, and so is a signature gpgv could not check for another
    reason than a missing key (ERRSIG without NO_PUBKEY: a weak or unknown digest).
    """
    lines = [ln.split()[1] for ln in gpgv_status.splitlines() if ln.startswith("[GNUPG:] ")
             and len(ln.split()) > 1]
    bad = {"BADSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "ERRSIG_BAD"}
    if "ERRSIG" in lines and lines.count("ERRSIG") > lines.count("NO_PUBKEY"):
        return False
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


@dataclass(frozen=True)
class Build:
    """One build of a kernel found in the signed index: its release and every package."""

    release: str
    image: Package
    packages: tuple[Package, ...]  # the image's closure, then the headers' (if any)

    @property
    def names(self) -> list[str]:
        return sorted(p.name + "=" + p.version for p in self.packages)


def resolve(req: KernelRequest, catalog: Catalog, archive: Archive, with_headers: bool = True) -> Build:
    """The build a catalog line or exact release stands for now, from the signed index."""
    rel, image = choose(candidates(archive, req, catalog.flavour), req)
    pkgs = archive.packages(image.suite)
    # the image's dependencies may sit in the same suite only
    abi = abi_of(rel, catalog.flavour)
    wanted = closure(image.name, pkgs, abi, IMAGE_FAMILIES)
    if with_headers and f"linux-headers-{rel}" in pkgs:
        wanted += closure(f"linux-headers-{rel}", pkgs, abi, HEADER_FAMILIES)
    return Build(rel, image, tuple(wanted))


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
    build = resolve(req, catalog, archive, with_headers)
    rel, image = build.release, build.image
    cache = archive.cache
    tree = cache.path("kernels", rel)
    with cache.lock(f"kernel-{rel}"):
        meta = _read_meta(tree / TREE_META)
        if meta.get("packages") != build.names or meta.get("format") != TREE_FORMAT \
                or not _intact(cache, tree, meta):
            debs = [archive.deb(p) for p in build.packages]
            meta = _build_tree(cache, tree, rel, debs, {
                "release": rel,
                "version": image.version,
                "suite": image.suite,
                "packages": build.names,
                "sha256": {p.name: p.sha256 for p in build.packages},
            })
    common = f"linux-headers-{abi_of(rel, catalog.flavour)}-common"
    return _spec(req.id, tree, meta, common)


def _build_tree(cache: Cache, tree: Path, rel: str, debs: list[Path], meta: dict) -> dict:
    """Extract verified .debs into the cache entry for rel (all or nothing); returns its meta.

    The caller holds the kernel's cache lock. meta records, besides the layout, the
    packages (name=version) and their SHA256s, so a lock file can vouch for the tree later.
    """
    with cache.staging_dir(tree) as stage:
        for deb in debs:
            tools.run(["dpkg-deb", "-x", str(deb), str(stage)], timeout=600)
        vmlinuz_rel = normalize_tree(stage, rel)
        tools.run(["depmod", "-b", str(stage), rel], timeout=600)
        meta = {"format": TREE_FORMAT, **meta, "vmlinuz": vmlinuz_rel,
                "vmlinuz_sha256": _sha256_file(stage / vmlinuz_rel)}
        (stage / TREE_META).write_text(json.dumps(meta, indent=1))
    for deb in debs:  # the extracted tree is the cache entry; keep disk use low
        deb.unlink(missing_ok=True)
    return meta


def _intact(cache: Cache, tree: Path, meta: dict) -> bool:
    """Is the extracted kernel image still the one extracted? A damaged image would boot
    into garbage and be blamed on the programs; a damaged tree is rebuilt from verified
    packages. Trees from before images were hashed get their hash recorded now."""
    image = tree / meta.get("vmlinuz", "")
    if not meta.get("vmlinuz") or not image.is_file():
        return False
    digest = _sha256_file(image)
    if "vmlinuz_sha256" not in meta:
        meta["vmlinuz_sha256"] = digest
        cache.write_atomic(tree / TREE_META, json.dumps(meta, indent=1).encode())
        return True
    if meta["vmlinuz_sha256"] == digest:
        return True
    print(f"ebpf-harness: warning: the cached kernel image {image} is damaged (its SHA256 "
          "changed since extraction); fetching and extracting it again", file=sys.stderr)
    return False


def _spec(kid: str, tree: Path, meta: dict, common_name: str | None, pinned: bool = False) -> KernelSpec:
    rel = meta["release"]
    headers = tree / "usr" / "src" / f"linux-headers-{rel}"
    common = tree / "usr" / "src" / common_name if common_name else None
    return KernelSpec(
        id=kid,
        release=rel,
        version=upstream_version(meta["version"]),
        vmlinuz=tree / meta["vmlinuz"],
        root=tree,
        headers=headers if headers.is_dir() else None,
        headers_common=common if common is not None and common.is_dir() else None,
        origin=f"debian:{meta['suite']} {meta['version']}",
        pinned=pinned,
    )


# -- lock files ---------------------------------------------------------------------------


def lock_kernels(
    ids: str | list[str] | None,
    catalog: Catalog,
    config: Config,
    progress: Progress | None = None,
) -> list[LockedKernel]:
    """Pin each id (sets expanded; default: the 'default' set) to its build in the signed index.

    Only the indices are downloaded, no kernel. Write the result with lock.write_lock
    (merged into an existing lock with LockFile.updated).
    """
    archive = Archive(config, progress)
    out = []
    for req in parse_kernel_ids(ids or "default", catalog):
        if req.kind == "local":
            raise ConfigError(f"kernel '{req.id}' is a local build; only Debian kernels from the "
                              "archive can be locked (give catalog lines or exact releases)")
        b = resolve(req, catalog, archive)
        out.append(LockedKernel(
            id=req.id,
            release=b.release,
            suite=b.image.suite,
            version=b.image.version,
            origin=f"debian:{b.image.suite} {b.image.version}",
            packages=tuple(LockedPackage(p.name, p.version, p.filename, p.size, p.sha256)
                           for p in b.packages),
        ))
    return out


def relock(
    path: Path,
    ids: str | list[str] | None,
    catalog: Catalog,
    config: Config,
    progress: Progress | None = None,
) -> tuple[LockFile, list[LockedKernel], LockFile]:
    """Pin ids in the lock file at path (created, or updated keeping its other kernels).

    Returns (before, the kernels pinned now, after); before is empty when there was no
    file. A file there that is not a valid lock is an error, never overwritten.
    """
    before = read_lock_for_update(path)
    pinned = lock_kernels(ids, catalog, config, progress)
    after = before.updated(pinned)
    write_lock(path, after)
    return before, pinned, after


def prepare_locked(
    locked: LockedKernel,
    config: Config,
    progress: Progress | None = None,
    lock_path: Path | str = DEFAULT_LOCK_NAME,
) -> KernelSpec:
    """Exactly the build a lock file names, as a bootable tree (KernelSpec.pinned is True).

    A cached tree is used when its record of package SHA256s equals the lock's; otherwise
    every package is fetched by the lock's archive path and verified against the lock's
    SHA256 and size. A build the archive no longer has is a KernelError naming the kernel,
    the build and the command that re-locks it.
    """
    archive = Archive(config, progress)
    cache = archive.cache
    rel = locked.release
    tree = cache.path("kernels", rel)
    names = sorted(p.name + "=" + p.version for p in locked.packages)
    listing = _Listing(archive, locked.suite)
    with cache.lock(f"kernel-{rel}"):
        meta = _read_meta(tree / TREE_META)
        if not _tree_has(meta, cache, tree, names, locked, listing) \
                or not _intact(cache, tree, meta):
            debs = [_locked_deb(archive, locked, p, listing, lock_path) for p in locked.packages]
            meta = _build_tree(cache, tree, rel, debs, {
                "release": rel,
                "version": locked.version,
                "suite": locked.suite,
                "packages": names,
                "sha256": locked.record(),
            })
    return _spec(locked.id, tree, meta, locked.headers_common, pinned=True)


class _Listing:
    """What the current signed index of a suite says about packages, if it can be read.

    A suite can leave the archive, or the mirror be out of reach while the cache still
    serves; then the lock's own hashes are all there is (they came from a signed index).
    A bad signature is never tolerated.
    """

    def __init__(self, archive: Archive, suite: str) -> None:
        self.archive, self.suite = archive, suite
        self._pkgs: dict[str, Package] | None = None

    def get(self, p: LockedPackage) -> Package | None:
        """The index's entry for exactly this package version, if it still lists it."""
        if self._pkgs is None:
            try:
                self._pkgs = self.archive.packages(self.suite)
            except MirrorError:
                self._pkgs = {}
        listed = self._pkgs.get(p.name)
        return listed if listed is not None and listed.version == p.version else None


def _tree_has(meta: dict, cache: Cache, tree: Path, names: list[str], locked: LockedKernel,
              listing: _Listing) -> bool:
    """Was the cached tree built from exactly the locked packages?"""
    if meta.get("format") != TREE_FORMAT or meta.get("packages") != names:
        return False
    if "sha256" in meta:
        return meta["sha256"] == locked.record()
    # a tree prepared before trees recorded hashes: the current signed index can vouch
    # for it while it still lists these exact versions (Debian never reuses a version)
    if not all((q := listing.get(p)) is not None and q.sha256 == p.sha256 for p in locked.packages):
        return False
    meta["sha256"] = locked.record()
    cache.write_atomic(tree / TREE_META, json.dumps(meta, indent=1).encode())
    return True


def _locked_deb(archive: Archive, locked: LockedKernel, p: LockedPackage, listing: _Listing,
                lock_path: Path | str) -> Path:
    listed = listing.get(p)
    if listed is not None and listed.sha256 != p.sha256:
        raise VerificationError(
            f"kernel {locked.id}: the signed {locked.suite} index lists {p.name} {p.version} with "
            f"SHA256 {listed.sha256}, the lock file {lock_path} has {p.sha256}; the lock file was "
            f"altered: re-lock with '{relock_command([locked.id], lock_path)}'"
        )
    name = Path(p.filename).name
    url = f"{archive.mirror_for(locked.suite)}/{p.filename}"
    with archive.cache.lock(f"deb-{name}"):
        try:
            return archive._verified(url, archive.cache.path("debs", name), p.sha256, p.size,
                                     p.name, against=f"the lock file {lock_path}")
        except _Absent as e:
            raise KernelError(
                f"kernel {locked.id}: the locked build {locked.release} ({locked.origin}) is no "
                f"longer in the archive ({p.filename}: {e.why}); re-lock it to the current build "
                f"with '{relock_command([locked.id], lock_path)}', or point --mirror at an "
                "archive snapshot that still has it"
            ) from None


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
            meta = _read_meta(t / TREE_META)
            if meta:
                meta["path"] = str(t)
                out.append(meta)
    return out


def in_use_name(release: str) -> str:
    """The shared lock a run holds on a kernel tree while a VM boots from it."""
    return f"inuse-kernel-{release}"


def prune(config: Config, keep: set[str], dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Remove cached kernel trees whose release is not in keep, and leftovers of
    interrupted downloads. Never what a running harness uses: a tree a VM booted from is
    kept, and leftovers are kept while any other harness process is active.
    Returns (removed releases, releases kept because in use); with dry_run, what would be
    removed, and nothing is."""
    removed, busy = [], []
    cache = Cache(config.cache_dir)
    with cache.unused("active") as idle:
        if idle and not dry_run:
            cache.remove_partials()
            shutil.rmtree(cache.path("debs"), ignore_errors=True)
        for meta in installed_trees(config):
            rel = meta["release"]
            if rel in keep:
                continue
            with cache.unused(in_use_name(rel)) as free:
                if not free:
                    busy.append(rel)
                    continue
                if not dry_run:
                    with cache.lock(f"kernel-{rel}"):
                        shutil.rmtree(meta["path"], ignore_errors=True)
                removed.append(rel)
    return removed, busy
