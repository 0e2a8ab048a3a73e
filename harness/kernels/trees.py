"""Prepared kernel trees in the cache: extracting verified .debs into one, the record of
what it was built from (TreeMeta, kept beside it as JSON), and checking that its image is
still the one extracted. I/O (dpkg-deb, depmod, the cache); TreeMeta itself is pure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from debian.debian_support import Version

from .. import tools
from ..versions import KernelVersion
from .cache import Cache
from .download import sha256_file
from .layout import normalize_tree
from .model import KernelSpec

TREE_FORMAT = 2  # bump when the layout of prepared trees changes
TREE_META = ".harness-tree.json"


@dataclass(frozen=True)
class TreeMeta:
    """What a prepared tree was built from, so that a later run (or a lock file) can tell
    whether it is still the build it wants."""

    release: str  # uname -r
    version: str  # Debian version of the image package
    suite: str
    packages: tuple[str, ...] = ()  # "name=version", sorted
    sha256: Mapping[str, str] | None = None  # {package: SHA256}; None: written before hashes
    vmlinuz: str = ""  # the bootable image, relative to the tree
    vmlinuz_sha256: str | None = None  # None: written before images were hashed
    format: int = 0  # TREE_FORMAT of the harness that built it; 0: unknown (older)

    @property
    def origin(self) -> str:
        return f"debian:{self.suite} {self.version}"

    @property
    def upstream(self) -> KernelVersion:
        """The kernel version of the build: 6.12.107 for package version 6.12.107-1."""
        return KernelVersion.parse(Version(self.version).upstream_version or self.version)

    def built_from(self, names: Sequence[str]) -> bool:
        """Built by this harness's layout from exactly these packages ("name=version")?"""
        return self.format == TREE_FORMAT and list(self.packages) == list(names)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "release": self.release,
                               "version": self.version, "suite": self.suite,
                               "packages": list(self.packages)}
        if self.sha256 is not None:
            out["sha256"] = dict(self.sha256)
        out["vmlinuz"] = self.vmlinuz
        if self.vmlinuz_sha256 is not None:
            out["vmlinuz_sha256"] = self.vmlinuz_sha256
        return out

    @classmethod
    def from_json(cls, data: object) -> TreeMeta | None:
        """The record, or None for anything that is not one (the tree is then rebuilt)."""
        if not isinstance(data, dict):
            return None
        release, version, suite = (data.get(k) for k in ("release", "version", "suite"))
        if not (isinstance(release, str) and isinstance(version, str) and isinstance(suite, str)
                and release and version and suite):
            return None
        try:
            Version(version)  # sorted as a Debian version later (kernels prune)
        except ValueError:
            return None
        packages, sha, image = data.get("packages", []), data.get("sha256"), data.get("vmlinuz", "")
        image_sha, fmt = data.get("vmlinuz_sha256"), data.get("format", 0)
        if (not isinstance(packages, list) or not all(isinstance(p, str) for p in packages)
                or not (sha is None or isinstance(sha, dict)) or not isinstance(image, str)
                or not (image_sha is None or isinstance(image_sha, str))
                or isinstance(fmt, bool) or not isinstance(fmt, int)):
            return None
        return cls(release, version, suite, tuple(packages),
                   {str(k): str(v) for k, v in sha.items()} if sha is not None else None,
                   image, image_sha, fmt)


def read_meta(tree: Path) -> TreeMeta | None:
    try:
        return TreeMeta.from_json(json.loads((tree / TREE_META).read_text()))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def write_meta(cache: Cache, tree: Path, meta: TreeMeta) -> None:
    cache.write_atomic(tree / TREE_META, json.dumps(meta.to_json(), indent=1).encode())


def extract(cache: Cache, tree: Path, debs: list[Path], meta: TreeMeta) -> TreeMeta:
    """Extract verified .debs into the cache entry tree (all or nothing); returns its record,
    meta with the layout's image and its hash.

    The caller holds the kernel's cache lock. meta records the packages (name=version) and
    their SHA256s, so a lock file can vouch for the tree later.
    """
    rel = meta.release
    with cache.staging_dir(tree) as stage:
        for deb in debs:
            tools.run(["dpkg-deb", "-x", str(deb), str(stage)], timeout=600)
        vmlinuz = normalize_tree(stage, rel)
        tools.run(["depmod", "-b", str(stage), rel], timeout=600)
        meta = replace(meta, format=TREE_FORMAT, vmlinuz=vmlinuz,
                       vmlinuz_sha256=sha256_file(stage / vmlinuz))
        (stage / TREE_META).write_text(json.dumps(meta.to_json(), indent=1))
    for deb in debs:  # the extracted tree is the cache entry; keep disk use low
        if not shared_deb(deb):
            deb.unlink(missing_ok=True)
    return meta


def shared_deb(deb: Path) -> bool:
    """An Architecture: all package (linux-headers-*-common) is the same file for a line's
    amd64 and arm64 builds, which are prepared side by side: the one that finishes first
    must not remove it under the other. Kept (10 MB a line); `kernels prune` sweeps debs."""
    return deb.name.endswith("_all.deb")


def checked_image(cache: Cache, tree: Path, meta: TreeMeta) -> TreeMeta | None:
    """meta when the extracted kernel image is still the one extracted, else None.

    A damaged image would boot into garbage and be blamed on the programs; the caller
    rebuilds a damaged tree from verified packages. A tree from before images were
    hashed gets its hash recorded now (the caller holds the kernel's cache lock).
    """
    image = tree / meta.vmlinuz
    if not meta.vmlinuz or not image.is_file():
        return None
    digest = sha256_file(image)
    if meta.vmlinuz_sha256 is None:
        meta = replace(meta, vmlinuz_sha256=digest)
        write_meta(cache, tree, meta)
        return meta
    if meta.vmlinuz_sha256 == digest:
        return meta
    print(f"ebpf-harness: warning: the cached kernel image {image} is damaged (its SHA256 "
          "changed since extraction); fetching and extracting it again", file=sys.stderr)
    return None


def kernel_spec(kid: str, tree: Path, meta: TreeMeta, common_name: str | None,
                pinned: bool = False, arch: str = "amd64", rt: bool = False) -> KernelSpec:
    """The bootable kernel a prepared tree holds."""
    headers = tree / "usr" / "src" / f"linux-headers-{meta.release}"
    common = tree / "usr" / "src" / common_name if common_name else None
    return KernelSpec(
        id=kid,
        release=meta.release,
        version=meta.upstream,
        vmlinuz=tree / meta.vmlinuz,
        root=tree,
        headers=headers if headers.is_dir() else None,
        headers_common=common if common is not None and common.is_dir() else None,
        origin=meta.origin,
        pinned=pinned,
        arch=arch,
        rt=rt,
    )


def installed_trees(cache_dir: Path) -> list[tuple[Path, TreeMeta]]:
    """Every prepared tree in the cache with its record, by release name."""
    d = cache_dir / "kernels"
    out = []
    if d.is_dir():
        for t in sorted(d.iterdir()):
            meta = read_meta(t)
            if meta is not None:
                out.append((t, meta))
    return out
