"""Pure reading of Debian archive metadata: Release files, Packages indices, relations,
gpgv's verdict. Fields are parsed by python-debian (deb822); nothing here touches the
network or the disk (index.py fetches and verifies first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from debian.deb822 import Packages
from debian.deb822 import Release as Deb822Release
from debian.debian_support import Version

from ..errors import VerificationError


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


def parse_release(text: str) -> Release:
    """Parse the (already signature-checked) content of an InRelease file."""
    st = Deb822Release(text)
    if not st:
        raise VerificationError("empty Release file")
    files: dict[str, IndexFile] = {}
    for entry in st.get("SHA256", []):
        sha, size, name = entry.get("sha256", ""), entry.get("size", ""), entry.get("name", "")
        if len(sha) == 64 and size.isdigit() and name:
            files[name] = IndexFile(name, int(size), sha)
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


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    filename: str
    size: int
    sha256: str
    depends: tuple[tuple[str, ...], ...] = ()  # each clause's alternatives, by name
    suite: str = ""


def package_version(version: str, what: str = "") -> Version:
    """A Debian package version that sorts in dpkg's order (python-debian's Version)."""
    try:
        return Version(version)
    except ValueError as e:
        raise VerificationError(f"{what or 'a package'}: {version!r} is not a Debian version; "
                                "the index is damaged, try another mirror (--mirror)") from e


def select_paragraphs(text: str, prefixes: tuple[str, ...]) -> str:
    """The paragraphs of a Packages index whose package name has one of the prefixes.

    A speed cut, not a parser: the archive writes Package first in every paragraph, so a
    look at that line spares python-debian the other ~99% of a suite (4 s for sid).
    """
    heads = tuple(f"Package: {p}" for p in prefixes)
    return "\n\n".join(p for p in text.split("\n\n") if p.lstrip("\n").startswith(heads))


def parse_packages(text: str, suite: str, keep: Iterable[str] = ("linux-",)) -> dict[str, Package]:
    """Packages index -> {name: newest Package}; only names with one of the prefixes in keep."""
    prefixes = tuple(keep)
    out: dict[str, Package] = {}
    for st in Packages.iter_paragraphs(text, use_apt_pkg=False):
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
                depends=tuple(tuple(alt["name"] for alt in clause)
                              for clause in st.relations["depends"] or ()),
                suite=suite,
            )
        except KeyError as e:
            raise VerificationError(f"{suite}: Packages entry {name} has no {e.args[0]} field") from e
        prev = out.get(name)
        if prev is None or package_version(pkg.version, name) > package_version(prev.version, name):
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
    packages: Mapping[str, Package],
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
            for alt in group:
                if alt.startswith(families) and abi in alt and alt in packages:
                    todo.append(alt)
                    break
    return out
