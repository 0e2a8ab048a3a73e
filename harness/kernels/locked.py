"""Lock files at work: pinning kernels to builds of the signed index, and preparing exactly
the build a lock names. I/O (lock.py is the pure model and the file format).

A lock carries the SHA256 and size of every package, taken from a signed index at lock
time; a locked build is verified against those, since it may have left the current index,
and against the current signed index too while that still lists it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..errors import ConfigError, KernelError, MirrorError, VerificationError
from ..events import FetchListener
from .catalog import Catalog, parse_kernel_ids, release_flavour
from .debian import Package
from .download import Absent
from .index import Archive
from .lock import (
    DEFAULT_LOCK_NAME,
    LockedKernel,
    LockedPackage,
    LockFile,
    read_lock_for_update,
    relock_command,
    write_lock,
)
from .model import KernelSpec
from .resolve import resolve
from .trees import TreeMeta, checked_image, extract, kernel_spec, read_meta, write_meta


def lock_kernels(
    ids: str | list[str] | None,
    catalog: Catalog,
    config: Config,
    listener: FetchListener | None = None,
) -> list[LockedKernel]:
    """Pin each id (sets expanded; default: config.kernels) to its build in the signed index.

    Only the indices are downloaded, no kernel. Write the result with lock.write_lock
    (merged into an existing lock with LockFile.updated).
    """
    archive = Archive(config, listener)
    out = []
    for req in parse_kernel_ids(ids or config.kernels, catalog):
        if req.kind == "local":
            raise ConfigError(f"kernel '{req.id}' is a local build; only Debian kernels from the "
                              "archive can be locked (give catalog lines or exact releases)")
        assert req.entry is not None
        out.append(resolve(req, catalog, archive.lists(req.entry.suites, req.arch))
                   .locked(req.id))
    return out


def relock(
    path: Path,
    ids: str | list[str] | None,
    catalog: Catalog,
    config: Config,
    listener: FetchListener | None = None,
) -> tuple[LockFile, list[LockedKernel], LockFile]:
    """Pin ids in the lock file at path (created, or updated keeping its other kernels).

    Returns (before, the kernels pinned now, after); before is empty when there was no
    file. A file there that is not a valid lock is an error, never overwritten.
    """
    before = read_lock_for_update(path)
    pinned = lock_kernels(ids, catalog, config, listener)
    after = before.updated(pinned)
    write_lock(path, after)
    return before, pinned, after


def prepare_locked(
    locked: LockedKernel,
    config: Config,
    listener: FetchListener | None = None,
    lock_path: Path | str = DEFAULT_LOCK_NAME,
) -> KernelSpec:
    """Exactly the build a lock file names, as a bootable tree (KernelSpec.pinned is True).

    A cached tree is used when its record of package SHA256s equals the lock's; otherwise
    every package is fetched by the lock's archive path and verified against the lock's
    SHA256 and size. A build the archive no longer has is a KernelError naming the kernel,
    the build and the command that re-locks it.
    """
    archive = Archive(config, listener, locked.id)
    cache = archive.cache
    rel = locked.release
    tree = cache.path("kernels", rel)
    arch, rt = release_flavour(locked.release)
    listing = _Listing(archive, locked.suite, arch)
    with cache.lock(f"kernel-{rel}"):
        cached = read_meta(tree)
        meta = _vouched(cached, locked, listing)
        if meta is not None:
            if meta != cached:
                write_meta(cache, tree, meta)  # its hash record, added
            meta = checked_image(cache, tree, meta)
        if meta is None:
            debs = [_locked_deb(archive, locked, p, listing, lock_path) for p in locked.packages]
            meta = extract(cache, tree, debs, TreeMeta(
                rel, locked.version, locked.suite, _names(locked), locked.record()))
    return kernel_spec(locked.id, tree, meta, locked.headers_common, pinned=True, arch=arch,
                       rt=rt)


def _names(locked: LockedKernel) -> tuple[str, ...]:
    return tuple(sorted(p.name + "=" + p.version for p in locked.packages))


class _Listing:
    """What the current signed index of a suite says about packages, if it can be read.

    A suite can leave the archive, or the mirror be out of reach while the cache still
    serves; then the lock's own hashes are all there is (they came from a signed index).
    A bad signature is never tolerated.
    """

    def __init__(self, archive: Archive, suite: str, arch: str = "amd64") -> None:
        self.archive, self.suite, self.arch = archive, suite, arch
        self._pkgs: dict[str, Package] | None = None

    def get(self, p: LockedPackage) -> Package | None:
        """The index's entry for exactly this package version, if it still lists it."""
        if self._pkgs is None:
            try:
                self._pkgs = self.archive.packages(self.suite, self.arch)
            except MirrorError:
                self._pkgs = {}
        listed = self._pkgs.get(p.name)
        return listed if listed is not None and listed.version == p.version else None


def _vouched(meta: TreeMeta | None, locked: LockedKernel, listing: _Listing) -> TreeMeta | None:
    """The cached tree's record if it was built from exactly the locked packages, with the
    lock's hashes recorded; else None."""
    if meta is None or not meta.built_from(_names(locked)):
        return None
    if meta.sha256 is not None:
        return meta if dict(meta.sha256) == locked.record() else None
    # a tree prepared before trees recorded hashes: the current signed index can vouch
    # for it while it still lists these exact versions (Debian never reuses a version)
    if not all((q := listing.get(p)) is not None and q.sha256 == p.sha256 for p in locked.packages):
        return None
    return replace(meta, sha256=locked.record())


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
            return archive.verified(url, archive.cache.path("debs", name), p.sha256, p.size,
                                    p.name, against=f"the lock file {lock_path}")
        except Absent as e:
            raise KernelError(
                f"kernel {locked.id}: the locked build {locked.release} ({locked.origin}) is no "
                f"longer in the archive ({p.filename}: {e.why}); re-lock it to the current build "
                f"with '{relock_command([locked.id], lock_path)}', or point --mirror at an "
                "archive snapshot that still has it"
            ) from None
