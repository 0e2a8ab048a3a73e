"""Which build a kernel request stands for: a catalog line or an exact release, and the
suites' package lists (already verified, index.py) -> the build and all its packages.
Pure: no network, no disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import UnknownKernelError
from ..versions import KernelVersion
from .catalog import Catalog, KernelRequest
from .debian import Package, abi_of, closure, image_release, package_version
from .lock import LockedKernel, LockedPackage

IMAGE_FAMILIES = ("linux-image-", "linux-binary-", "linux-modules-", "linux-base-")
HEADER_FAMILIES = ("linux-headers-",)

PackageLists = Mapping[str, Mapping[str, Package]]  # suite -> {package name: Package}


@dataclass(frozen=True)
class Build:
    """One build of a kernel found in the signed index: its release and every package."""

    release: str
    image: Package
    packages: tuple[Package, ...]  # the image's closure, then the headers' (if any)

    @property
    def names(self) -> list[str]:
        return sorted(p.name + "=" + p.version for p in self.packages)

    def record(self) -> dict[str, str]:
        """{package name: SHA256}, as a prepared tree records it."""
        return {p.name: p.sha256 for p in self.packages}

    @property
    def origin(self) -> str:
        return f"debian:{self.image.suite} {self.image.version}"

    def locked(self, kid: str) -> LockedKernel:
        """This build as a lock file pins it for kernel id kid."""
        return LockedKernel(
            id=kid,
            release=self.release,
            suite=self.image.suite,
            version=self.image.version,
            origin=self.origin,
            packages=tuple(LockedPackage(p.name, p.version, p.filename, p.size, p.sha256)
                           for p in self.packages),
        )


def candidates(req: KernelRequest, lists: PackageLists, flavour: str) -> list[tuple[str, Package]]:
    """(release, image package) for every build of the requested line in its suites, of
    one flavour ('amd64', 'rt-amd64', 'arm64', 'rt-arm64')."""
    assert req.entry is not None
    out = []
    for suite in req.entry.suites:
        for name, pkg in lists[suite].items():
            rel = image_release(name, flavour)
            if rel and KernelVersion.parse(rel).line == req.entry.line:
                out.append((rel, pkg))
    return out


def choose(cands: list[tuple[str, Package]], req: KernelRequest) -> tuple[str, Package]:
    """The exact release asked for, else the line's newest build by Debian version."""
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
            f"no {req.flavour} build of kernel line {req.entry.line if req.entry else req.id} "
            f"found in suites {suites}; "
            "check the catalog (kernels/*.toml) or the mirror"
        )
    # max keeps the first of equals: the earlier suite in the catalog's order
    return max(cands, key=lambda c: package_version(c[1].version, c[1].name))


def resolve(req: KernelRequest, catalog: Catalog, lists: PackageLists,
            with_headers: bool = True) -> Build:
    """The build a catalog line or exact release stands for in these package lists (the
    suites of req.entry, each {name: Package})."""
    rel, image = choose(candidates(req, lists, req.flavour), req)
    pkgs = lists[image.suite]  # the image's dependencies may sit in the same suite only
    abi = abi_of(rel, req.flavour)
    wanted = closure(image.name, pkgs, abi, IMAGE_FAMILIES)
    if with_headers and f"linux-headers-{rel}" in pkgs:
        wanted += closure(f"linux-headers-{rel}", pkgs, abi, HEADER_FAMILIES)
    return Build(rel, image, tuple(wanted))
