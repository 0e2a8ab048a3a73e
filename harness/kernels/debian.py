"""Pure parsing of Debian archive metadata: Release files, Packages indices, relations.

Nothing here touches the network or the disk; fetch.py does that and verifies first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from ..errors import VerificationError
from ..versions import compare_debian_versions


@dataclass(frozen=True)
class IndexFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Release:
    suite: str
    codename: str
    date: str
    valid_until: str | None
    files: dict[str, IndexFile]


def parse_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Deb822 paragraphs; continuation lines are joined with newlines."""
    cur: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                yield cur
            cur, last = {}, None
            continue
        if line[0] in " \t" and last is not None:
            cur[last] += "\n" + line.strip()
            continue
        if ":" not in line:
            continue
        k, _, v = line.partition(":")
        last = k.strip()
        cur[last] = v.strip()
    if cur:
        yield cur


def parse_release(text: str) -> Release:
    """Parse the (already signature-checked) content of an InRelease file."""
    stanzas = list(parse_stanzas(text))
    if not stanzas:
        raise VerificationError("empty Release file")
    st = stanzas[0]
    files: dict[str, IndexFile] = {}
    for line in st.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3 and len(parts[0]) == 64:
            files[parts[2]] = IndexFile(parts[2], int(parts[1]), parts[0])
    if not files:
        raise VerificationError("Release file lists no SHA256 checksums")
    return Release(
        suite=st.get("Suite", ""),
        codename=st.get("Codename", ""),
        date=st.get("Date", ""),
        valid_until=st.get("Valid-Until"),
        files=files,
    )


def check_release(rel: Release, suite: str, now: float, allow_expired: bool) -> str | None:
    """Refuse an index that is not the suite asked for (a mirror answering 'sid' with
    another suite's file), or whose Valid-Until has passed (a replayed, stale index).
    An expired index allowed by configuration gives a warning to print instead."""
    if suite not in (rel.suite, rel.codename):
        raise VerificationError(
            f"{suite}: the signed index is for suite {rel.suite!r} (codename {rel.codename!r}), "
            "not the one asked for; the mirror is misconfigured or serving the wrong file")
    if not rel.valid_until:
        return None
    try:
        until = parsedate_to_datetime(rel.valid_until).timestamp()
    except (TypeError, ValueError) as e:
        raise VerificationError(f"{suite}: unreadable Valid-Until {rel.valid_until!r}") from e
    if now <= until:
        return None
    days = (now - until) / 86400
    what = (f"{suite}: the signed index expired {days:.0f} day(s) ago (Valid-Until "
            f"{rel.valid_until}): the mirror is stale or replays an old index")
    if not allow_expired:
        raise VerificationError(
            f"{what}. Use a current mirror (--mirror); or, for a mirror known to lag, allow "
            f"it explicitly with allow_expired_index = [\"{suite}\"] under [tool.ebpf-harness]")
    return f"{what}; used anyway, as allow_expired_index says"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    filename: str
    size: int
    sha256: str
    depends: tuple[str, ...] = ()
    suite: str = ""
    fields: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


_REL_NAME = re.compile(r"\s*([a-z0-9][a-z0-9+.-]*)")


def relation_names(depends: str) -> list[list[str]]:
    """'a (>= 1), b | c' -> [['a'], ['b', 'c']] (alternatives kept together)."""
    out: list[list[str]] = []
    for clause in depends.split(","):
        alts = []
        for alt in clause.split("|"):
            m = _REL_NAME.match(alt)
            if m:
                alts.append(m.group(1).split(":")[0])
        if alts:
            out.append(alts)
    return out


def parse_packages(text: str, suite: str, keep: Iterable[str] = ("linux-",)) -> dict[str, Package]:
    """Packages index -> {name: newest Package}; only names with one of the prefixes in keep."""
    prefixes = tuple(keep)
    out: dict[str, Package] = {}
    for st in parse_stanzas(text):
        name = st.get("Package", "")
        if not name.startswith(prefixes):
            continue
        try:
            pkg = Package(
                name=name,
                version=st["Version"],
                filename=st["Filename"],
                size=int(st["Size"]),
                sha256=st["SHA256"],
                depends=tuple(
                    "|".join(a) for a in relation_names(st.get("Depends", ""))
                ),
                suite=suite,
                fields=st,
            )
        except KeyError as e:
            raise VerificationError(f"{suite}: Packages entry {name} has no {e.args[0]} field") from e
        prev = out.get(name)
        if prev is None or compare_debian_versions(pkg.version, prev.version) > 0:
            out[name] = pkg
    return out


FLAVOUR_EXCLUDES = ("cloud", "rt")


def image_release(package_name: str, flavour: str = "amd64") -> str | None:
    """'linux-image-6.12.107+deb13-amd64' -> '6.12.107+deb13-amd64' for the generic flavour.

    The cloud flavour has no 9p module and the rt flavour is a different kernel, so they
    do not count; neither do -dbg/-unsigned packages or the versionless meta package.
    """
    m = re.fullmatch(rf"linux-image-(\d+\.\d+[^ ]*-{re.escape(flavour)})", package_name)
    if not m:
        return None
    rel = m.group(1)
    if any(rel.endswith(f"-{x}-{flavour}") for x in FLAVOUR_EXCLUDES):
        return None
    return rel


def abi_of(release: str, flavour: str = "amd64") -> str:
    """'6.12.107+deb13-amd64' -> '6.12.107+deb13'; '5.10.0-32-amd64' -> '5.10.0-32'."""
    suffix = f"-{flavour}"
    return release[: -len(suffix)] if release.endswith(suffix) else release


def closure(
    root: str,
    packages: dict[str, Package],
    abi: str,
    families: tuple[str, ...],
) -> list[Package]:
    """The root package plus, recursively, its dependencies that belong to this kernel build.

    A dependency belongs when its name starts with one of ``families`` and carries the ABI
    (for example ``linux-binary-7.2.13+deb14-amd64`` or ``linux-headers-5.10.0-32-common``);
    tools like kmod or linux-kbuild are not part of what the VM boots from. The first
    alternative of an or-group that exists in the index is taken.
    """
    out: list[Package] = []
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        pkg = packages.get(name)
        if pkg is None:
            raise VerificationError(f"package {name} is not in the index")
        out.append(pkg)
        for group in pkg.depends:
            for alt in group.split("|"):
                if alt.startswith(families) and abi in alt and alt in packages:
                    todo.append(alt)
                    break
    return out
