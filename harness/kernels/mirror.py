"""Which Debian mirror to use: configuration first, else the host's apt sources.

No mirror host name is written in this project; it always comes from configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Deb822

from ..config import Config
from ..errors import MirrorError

DEBIAN_KEYRING_MARK = "debian-archive"


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    signed_by: str = ""


def parse_one_line_sources(text: str) -> list[AptSource]:
    """The 'deb' lines of a one-line sources.list (python-debian reads only the deb822
    form; python-apt's reader needs apt_pkg, which a venv does not have)."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        parts = line.split()[1:]
        signed_by = ""
        if parts and parts[0].startswith("["):
            opts = []
            while parts:
                p = parts.pop(0)
                opts.append(p)
                if p.endswith("]"):
                    break
            for o in " ".join(opts).strip("[]").split():
                if o.startswith("signed-by="):
                    signed_by = o.split("=", 1)[1]
        if len(parts) >= 2:
            out.append(AptSource(parts[0].rstrip("/"), (parts[1],), signed_by))
    return out


def parse_deb822_sources(text: str) -> list[AptSource]:
    """The 'deb' entries of an apt .sources file (deb822, read by python-debian)."""
    out = []
    for para in Deb822.iter_paragraphs(text, use_apt_pkg=False):
        if "deb" not in para.get("Types", "").split():
            continue
        if para.get("Enabled", "yes").strip().lower() == "no":
            continue
        suites = tuple(para.get("Suites", "").split())
        for uri in para.get("URIs", "").split():
            out.append(AptSource(uri.rstrip("/"), suites, para.get("Signed-By", "").strip()))
    return out


def read_apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    sources: list[AptSource] = []
    main = etc_apt / "sources.list"
    if main.is_file():
        sources += parse_one_line_sources(main.read_text(errors="replace"))
    d = etc_apt / "sources.list.d"
    if d.is_dir():
        for f in sorted(d.iterdir()):
            if f.suffix == ".list":
                sources += parse_one_line_sources(f.read_text(errors="replace"))
            elif f.suffix == ".sources":
                sources += parse_deb822_sources(f.read_text(errors="replace"))
    return sources


_DEBIAN_CODENAMES = (
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid", "stable", "testing",
    "unstable", "oldstable",
)


def _is_debian(src: AptSource) -> bool:
    base = {s.split("-")[0].split("/")[0] for s in src.suites}
    return bool(base & set(_DEBIAN_CODENAMES)) and (
        DEBIAN_KEYRING_MARK in src.signed_by or not src.signed_by
    )


def pick_mirrors(sources: list[AptSource]) -> tuple[str | None, str | None]:
    """(archive mirror, security mirror) among the apt sources, either may be None."""
    archive = security = None
    for s in sources:
        if not _is_debian(s):
            continue
        if any(x.endswith("-security") or "/updates" in x for x in s.suites):
            security = security or s.uri
        else:
            archive = archive or s.uri
    return archive, security


HOW_TO_SET = (
    "set one with --mirror URL, the environment variable EBPF_HARNESS_MIRROR, or "
    "'mirror = \"URL\"' under [tool.ebpf-harness] in pyproject.toml"
)


def resolve_mirrors(config: Config, etc_apt: Path = Path("/etc/apt")) -> tuple[str, str | None]:
    archive, security = pick_mirrors(read_apt_sources(etc_apt))
    mirror = config.mirror or archive
    if not mirror:
        raise MirrorError(f"no Debian mirror found in {etc_apt}/sources.list*; {HOW_TO_SET}")
    sec = config.security_mirror or security
    if sec is None and mirror.endswith("/debian"):
        sec = mirror + "-security"
    return mirror.rstrip("/"), (sec.rstrip("/") if sec else None)
