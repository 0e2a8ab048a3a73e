"""The kernel lock file: each kernel id pinned to one exact Debian build. Pure logic.

A lock records, per id, the release (uname -r), the suite and package version the build
came from, and every package of it with its archive path (relative to the archive root,
never a mirror's host name), size and SHA256, taken from a signed index at lock time.
``ebpf-harness kernels lock`` writes it (fetch.lock_kernels resolves, this module
renders); ``--lock FILE`` makes every command prepare exactly those builds
(fetch.prepare_locked). The format, TOML written by tomli_w with a fixed key order so
that re-locking unchanged builds gives a byte-identical file::

    lock_version = 1

    [kernels."6.12"]
    release = "6.12.107+deb13-amd64"
    suite = "trixie"
    version = "6.12.107-1"
    origin = "debian:trixie 6.12.107-1"

    [[kernels."6.12".packages]]
    name = "linux-image-6.12.107+deb13-amd64"
    version = "6.12.107-1"
    filename = "pool/main/l/linux-signed-amd64/linux-image-6.12.107+deb13-amd64_6.12.107-1_amd64.deb"
    size = 104857600
    sha256 = "..."

Only read_lock and write_lock touch the disk.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tomli_w

from ..config import LOCK_NAME
from ..errors import ConfigError
from ..fsio import write_atomic
from ..tomlkeys import unknown_keys
from ..versions import KernelVersion
from .catalog import Catalog, expand_ids

LOCK_VERSION = 1
DEFAULT_LOCK_NAME = LOCK_NAME

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_RELEASE = re.compile(r"[0-9][A-Za-z0-9+.~_-]*")
_SUITE = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*(?:/[a-z0-9]+(?:[.-][a-z0-9]+)*)?")


def relock_command(ids: Iterable[str], path: Path | str) -> str:
    """The command that (re)pins these ids in this lock file."""
    return " ".join(["ebpf-harness", "kernels", "lock", *ids, "-o", str(path)])


@dataclass(frozen=True)
class LockedPackage:
    name: str  # linux-image-6.12.107+deb13-amd64
    version: str  # Debian package version, 6.12.107-1
    filename: str  # archive path as in the Packages index: pool/main/l/...deb
    size: int
    sha256: str


@dataclass(frozen=True)
class LockedKernel:
    id: str  # what was asked for: "6.12" or an exact release
    release: str  # uname -r
    suite: str  # the suite the build was found in
    version: str  # Debian version of the image package
    origin: str  # "debian:trixie 6.12.107-1", as KernelSpec.origin
    packages: tuple[LockedPackage, ...]  # sorted by name (whatever order they are given in)

    def __post_init__(self) -> None:
        object.__setattr__(self, "packages", tuple(sorted(self.packages, key=lambda p: p.name)))

    @property
    def image(self) -> LockedPackage:
        return next(p for p in self.packages if p.name == f"linux-image-{self.release}")

    @property
    def headers_common(self) -> str | None:
        """The linux-headers-*-common package name (its directory under usr/src), if any."""
        return next((p.name for p in self.packages if p.name.startswith("linux-headers-")
                     and p.name.endswith(("-common", "-common-rt"))), None)

    def record(self) -> dict[str, str]:
        """{package name: SHA256}: what a prepared tree must have been built from."""
        return {p.name: p.sha256 for p in self.packages}


@dataclass(frozen=True)
class LockedRoot:
    """The guest root a foreign architecture's columns boot on (vm.guestroot), as locked:
    its Debian suite and every installed package's version."""

    arch: str
    suite: str
    packages: tuple[tuple[str, str], ...]  # (name, version), sorted


@dataclass(frozen=True)
class LockFile:
    kernels: tuple[LockedKernel, ...]  # in version order
    path: Path | None = None  # where it was read from, for messages
    guest_roots: tuple[LockedRoot, ...] = ()  # by architecture

    def root(self, arch: str) -> LockedRoot | None:
        return next((r for r in self.guest_roots if r.arch == arch), None)

    def with_root(self, root: LockedRoot) -> LockFile:
        """This lock with the guest root of root.arch pinned (replacing an older one)."""
        kept = tuple(r for r in self.guest_roots if r.arch != root.arch)
        return replace(self, guest_roots=tuple(sorted((*kept, root), key=lambda r: r.arch)))

    @property
    def ids(self) -> list[str]:
        return [k.id for k in self.kernels]

    def get(self, kid: str) -> LockedKernel | None:
        return next((k for k in self.kernels if k.id == kid), None)

    def where(self) -> str:
        return str(self.path) if self.path else DEFAULT_LOCK_NAME

    def select(self, ids: str | list[str] | None, catalog: Catalog) -> list[LockedKernel]:
        """The locked builds for these ids (sets expanded); all of them when ids is None."""
        if not ids:
            return list(self.kernels)
        out: list[LockedKernel] = []
        for kid in expand_ids(ids, catalog):
            k = self.get(kid)
            if k is None and ("/" in kid or kid.startswith(".")):
                raise ConfigError(
                    f"kernel '{kid}' is a local build, and the lock file {self.where()} allows "
                    f"only the builds it pins ({', '.join(self.ids)}); run with --no-lock to "
                    "use local kernels"
                )
            if k is None:
                raise ConfigError(
                    f"kernel '{kid}' is not in the lock file {self.where()} (it pins "
                    f"{', '.join(self.ids)}); re-lock including it: "
                    f"{relock_command([kid], self.where())}"
                )
            out.append(k)
        if not out:
            raise ConfigError(f"no kernels given; the lock file {self.where()} pins "
                              f"{', '.join(self.ids)}")
        return out

    def updated(self, kernels: Iterable[LockedKernel]) -> LockFile:
        """This lock with these kernels added or replaced (same id), the others kept."""
        new = {k.id: k for k in kernels}
        kept = [k for k in self.kernels if k.id not in new]
        return replace(self, kernels=_ordered([*kept, *new.values()]))


def _ordered(kernels: Iterable[LockedKernel]) -> tuple[LockedKernel, ...]:
    """A stable order that does not depend on the order ids were given in."""
    return tuple(sorted(kernels, key=lambda k: (KernelVersion.parse(k.release), k.release, k.id)))


def new_lock(kernels: Iterable[LockedKernel], path: Path | None = None) -> LockFile:
    return LockFile(_ordered(kernels), path)


# -- TOML <-> model ----------------------------------------------------------------------


def to_dict(lock: LockFile) -> dict[str, Any]:
    return {
        "lock_version": LOCK_VERSION,
        "kernels": {
            k.id: {
                "release": k.release,
                "suite": k.suite,
                "version": k.version,
                "origin": k.origin,
                "packages": [
                    {"name": p.name, "version": p.version, "filename": p.filename,
                     "size": p.size, "sha256": p.sha256}
                    for p in k.packages
                ],
            }
            for k in _ordered(lock.kernels)
        },
        **({"guest_roots": {r.arch: {"suite": r.suite, "packages": dict(r.packages)}
                            for r in lock.guest_roots}} if lock.guest_roots else {}),
    }


def dumps(lock: LockFile) -> str:
    return tomli_w.dumps(to_dict(lock))


class _Where:
    """Builds 'FILE: KEY: problem' messages, one line each."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.ids: list[str] = []  # the kernels the file pins, once known: for the advice

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(
            f"{self.path}: {key}: {problem}; fix the file, or delete it and re-create it "
            f"with '{relock_command(self.ids, self.path)}'"
        )

    def table(self, data: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error(key, "expected a table")
        unknown = unknown_keys(data, allowed)
        if unknown:
            raise self.error(f"{key}.{unknown[0]}" if key else unknown[0],
                             f"unknown key (known: {', '.join(allowed)})")
        missing = [a for a in allowed if a not in data]
        if missing:
            raise self.error(f"{key}.{missing[0]}" if key else missing[0], "missing")
        return data

    def string(self, data: dict[str, Any], key: str, name: str,
               pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        v = data[name]
        if not isinstance(v, str) or not v:
            raise self.error(f"{key}.{name}", f"expected a non-empty string, got {v!r}")
        if pattern is not None and not pattern.fullmatch(v):
            raise self.error(f"{key}.{name}", f"{v!r} is not {what}")
        return v


def _quote(kid: str) -> str:
    return kid if re.fullmatch(r"[A-Za-z0-9_-]+", kid) else f'"{kid}"'


def from_dict(data: dict[str, Any], path: Path | str = DEFAULT_LOCK_NAME) -> LockFile:
    """Validate a parsed lock file; every error names the file and the key."""
    w = _Where(path)
    if isinstance(data.get("kernels"), dict):
        w.ids = [str(k) for k in data["kernels"]]
    version = data.get("lock_version")
    if version is None:
        raise w.error("lock_version", "missing; this does not look like an ebpf-harness lock file")
    if isinstance(version, bool) or not isinstance(version, int):
        raise w.error("lock_version", f"expected an integer, got {version!r}")
    if version != LOCK_VERSION:
        raise w.error("lock_version", f"version {version} is not supported (this ebpf-harness "
                      f"reads version {LOCK_VERSION}); upgrade ebpf-harness or re-lock")
    w.table({k: v for k, v in data.items() if k != "guest_roots"}, "", ("lock_version", "kernels"))
    roots = _roots(w, data.get("guest_roots", {}))
    kernels_t = data["kernels"]
    if not isinstance(kernels_t, dict) or not kernels_t:
        raise w.error("kernels", "expected a table with at least one kernel")
    kernels = []
    for kid, kt in kernels_t.items():
        key = f"kernels.{_quote(kid)}"
        kt = w.table(kt, key, ("release", "suite", "version", "origin", "packages"))
        release = w.string(kt, key, "release", _RELEASE, "a kernel release such as 6.12.107+deb13-amd64")
        try:
            KernelVersion.parse(release)
        except ConfigError:
            raise w.error(f"{key}.release", f"{release!r} is not a kernel release") from None
        suite = w.string(kt, key, "suite", _SUITE, "a Debian suite such as trixie")
        version = w.string(kt, key, "version")
        origin = w.string(kt, key, "origin")
        pkgs_t = kt["packages"]
        if not isinstance(pkgs_t, list) or not pkgs_t:
            raise w.error(f"{key}.packages", "expected a non-empty array of package tables")
        pkgs = []
        for i, pt in enumerate(pkgs_t):
            pkey = f"{key}.packages[{i}]"
            pt = w.table(pt, pkey, ("name", "version", "filename", "size", "sha256"))
            name = w.string(pt, pkey, "name", _PACKAGE, "a Debian package name")
            pversion = w.string(pt, pkey, "version")
            filename = w.string(pt, pkey, "filename")
            parts = filename.split("/")
            if ("://" in filename or filename.startswith("/") or ".." in parts
                    or not filename.endswith(".deb")):
                raise w.error(f"{pkey}.filename", f"{filename!r} is not a .deb path relative to the "
                              "archive root (such as pool/main/l/linux/NAME.deb)")
            size = pt["size"]
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                raise w.error(f"{pkey}.size", f"expected a positive integer, got {size!r}")
            sha = w.string(pt, pkey, "sha256", _SHA256, "a SHA256 (64 lower-case hex digits)")
            pkgs.append(LockedPackage(name, pversion, filename, size, sha))
        names = [p.name for p in pkgs]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise w.error(f"{key}.packages", f"package {dup} is listed twice")
        if f"linux-image-{release}" not in names:
            raise w.error(f"{key}.packages", f"no linux-image-{release} package")
        kernels.append(LockedKernel(kid, release, suite, version, origin, tuple(pkgs)))
    return LockFile(_ordered(kernels), Path(path), roots)


def _roots(w: _Where, data: Any) -> tuple[LockedRoot, ...]:
    if not isinstance(data, dict):
        raise w.error("guest_roots", "expected a table of architectures")
    out = []
    for arch, rt in sorted(data.items()):
        key = f"guest_roots.{_quote(arch)}"
        rt = w.table(rt, key, ("suite", "packages"))
        suite = w.string(rt, key, "suite", _SUITE, "a Debian suite such as bookworm")
        pkgs = rt["packages"]
        if not isinstance(pkgs, dict) or not pkgs or not all(
                isinstance(n, str) and _PACKAGE.fullmatch(n) and isinstance(v, str) and v
                for n, v in pkgs.items()):
            raise w.error(f"{key}.packages", "expected a table of package = \"version\"")
        out.append(LockedRoot(str(arch), suite, tuple(sorted(pkgs.items()))))
    return tuple(out)


def loads(text: str, path: Path | str = DEFAULT_LOCK_NAME) -> LockFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix the file, or delete it and "
                          f"re-create it with '{relock_command([], path)}'") from None
    return from_dict(data, path)


# -- the only I/O ------------------------------------------------------------------------


def read_lock(path: Path) -> LockFile:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"lock file {path} not found; create it with "
                          f"'{relock_command([], path)}'") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"lock file {path} cannot be read ({e})") from None
    return loads(text, path)


def read_lock_for_update(path: Path) -> LockFile:
    """The lock file about to be rewritten: empty when absent; anything else is not clobbered."""
    if not path.exists():
        return new_lock([], path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        data = {}
    if "lock_version" not in data:
        raise ConfigError(f"{path} exists and is not an ebpf-harness lock file; refusing to "
                          "overwrite it: give another file with -o")
    return from_dict(data, path)


def write_lock(path: Path, lock: LockFile) -> None:
    """Write atomically: a reader never sees half a lock file."""
    write_atomic(path.expanduser(), dumps(lock).encode())
