"""The kernel catalog (kernels/*.toml) and the parsing of kernel ids. Pure logic."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, UnknownKernelError
from ..tomlkeys import check_keys
from ..versions import KernelVersion


@dataclass(frozen=True)
class CatalogEntry:
    line: str  # "6.12"
    suites: tuple[str, ...]
    note: str = ""

    @property
    def version(self) -> KernelVersion:
        return KernelVersion.parse(self.line)


ARCHES = ("amd64", "arm64")  # Debian architectures a column can be built for
# a column: a line, then optionally its architecture and flavour: 6.12, 6.12/arm64,
# 6.12/rt, 6.12/arm64-rt (the host's architecture is the default and is left out)
_COLUMN = re.compile(r"(\d+\.\d+)/(?:(amd64|arm64)(-rt)?|(rt))")
_RELEASE_TAIL = re.compile(r"-(rt-)?(amd64|arm64)$")
_RELEASE = re.compile(r"\d+\.\d+\.\d+[-+.~\w]*-(?:rt-)?(?:amd64|arm64)")  # 5.10.0-32-amd64


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, CatalogEntry]
    sets: dict[str, tuple[str, ...]]
    flavour: str = "amd64"  # the default architecture: the host's (the file's 'flavour')

    def lines(self) -> list[CatalogEntry]:
        return sorted(self.entries.values(), key=lambda e: e.version)

    def available(self) -> str:
        return ", ".join(e.line for e in self.lines())


@dataclass(frozen=True)
class KernelRequest:
    """One kernel the user asked for, before any download: a column of the matrix."""

    id: str
    kind: str  # "line" | "release" | "local"
    entry: CatalogEntry | None = None
    release: str | None = None
    path: Path | None = None
    arch: str = "amd64"  # Debian architecture
    rt: bool = False  # the PREEMPT_RT build

    @property
    def flavour(self) -> str:
        """The tail of its Debian release: 'amd64', 'rt-amd64', 'arm64', 'rt-arm64'."""
        return f"{'rt-' if self.rt else ''}{self.arch}"


def release_flavour(release: str) -> tuple[str, bool]:
    """(architecture, PREEMPT_RT) of a Debian kernel release: '6.12.94+deb13-rt-arm64' ->
    ('arm64', True); a release of no known architecture is amd64's."""
    tail = _RELEASE_TAIL.search(release)
    return (tail.group(2), bool(tail.group(1))) if tail else ("amd64", False)


def column_id(line: str, arch: str, rt: bool, default_arch: str) -> str:
    """The one spelling of a column: '6.12', '6.12/rt', '6.12/arm64', '6.12/arm64-rt'."""
    if arch == default_arch:
        return f"{line}/rt" if rt else line
    return f"{line}/{arch}{'-rt' if rt else ''}"


def load_catalog(directory: Path) -> Catalog:
    files = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    if not files:
        raise ConfigError(
            f"no kernel catalog found in {directory}; point 'catalog' at a directory of "
            "*.toml files (see kernels/default.toml in the ebpf-harness repository)"
        )
    entries: dict[str, CatalogEntry] = {}
    sets: dict[str, tuple[str, ...]] = {}
    flavour = "amd64"
    for f in files:
        try:
            data = tomllib.loads(f.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{f}: not valid TOML: {e}") from e
        check_keys(data, ("flavour", "lines", "sets"), str(f))
        flavour = data.get("flavour", flavour)
        for line, spec in data.get("lines", {}).items():
            KernelVersion.parse(line)
            check_keys(spec, ("suites", "note"), str(f), f'lines."{line}"')
            suites = spec.get("suites")
            if not suites or not isinstance(suites, list):
                raise ConfigError(f"{f}: line {line} needs a non-empty 'suites' list")
            entries[line] = CatalogEntry(line, tuple(suites), spec.get("note", ""))
        for name, members in data.get("sets", {}).items():
            sets[name] = tuple(members)
    for name, members in sets.items():
        for m in members:  # a line, or a column of one (6.12/arm64)
            col = _COLUMN.fullmatch(m)
            if m not in entries and not (col and col.group(1) in entries):
                raise ConfigError(f"kernel set '{name}' names {m}, which no [lines] entry defines")
    return Catalog(entries, sets, flavour)


def expand_ids(text: str | list[str], catalog: Catalog) -> list[str]:
    """'5.10,6.12' or ['5.10', 'ci'] -> kernel ids, sets expanded, duplicates dropped."""
    raw = [text] if isinstance(text, str) else text
    out: list[str] = []
    for item in (t.strip() for chunk in raw for t in chunk.split(",")):
        if not item:
            continue
        for kid in list(catalog.sets[item]) if item in catalog.sets else [item]:
            if kid not in out:
                out.append(kid)
    return out


def parse_kernel_ids(text: str | list[str], catalog: Catalog) -> list[KernelRequest]:
    """'5.10,6.12' / 'default' / 'all' / '6.12.94+deb13-amd64' / '/path/bzImage' -> requests."""
    out = [parse_kernel_id(kid, catalog) for kid in expand_ids(text, catalog)]
    if not out:
        raise ConfigError(f"no kernels given; available lines: {catalog.available()}")
    return out


def with_arches(ids: list[str], arches: list[str], catalog: Catalog) -> list[str]:
    """--arch: each line id (sets already expanded) for each architecture; ids that name
    an architecture, releases and paths stay as they are."""
    out: list[str] = []
    for kid in ids:
        m = _COLUMN.fullmatch(kid)
        line, rt = (m.group(1), bool(m.group(4))) if m and m.group(4) else (kid, False)
        if line not in catalog.entries:
            new = [kid]
        else:
            new = [column_id(line, a, rt, catalog.flavour) for a in arches]
        out += [n for n in new if n not in out]
    return out


def parse_arches(text: str) -> list[str]:
    """'arm64' or 'amd64,arm64' -> Debian architectures (x86_64 and aarch64 accepted)."""
    alias = {"x86_64": "amd64", "aarch64": "arm64"}
    out = []
    for a in (x.strip().lower() for x in text.split(",")):
        a = alias.get(a, a)
        if a not in ARCHES:
            raise ConfigError(f"--arch {text}: unknown architecture '{a}'; give "
                              f"{' or '.join(ARCHES)} (or several, comma-separated)")
        if a not in out:
            out.append(a)
    return out


def parse_kernel_id(kid: str, catalog: Catalog) -> KernelRequest:
    m = _COLUMN.fullmatch(kid)
    if m and m.group(1) in catalog.entries:
        line = m.group(1)
        arch, rt = (catalog.flavour, True) if m.group(4) else (m.group(2), bool(m.group(3)))
        return KernelRequest(column_id(line, arch, rt, catalog.flavour), "line",
                             entry=catalog.entries[line], arch=arch, rt=rt)
    if m:
        raise UnknownKernelError(f"unknown kernel '{kid}': no line {m.group(1)} in the "
                                 f"catalog; available lines: {catalog.available()}")
    if "/" in kid or kid.startswith("."):
        p = Path(kid).expanduser()
        if not p.exists():
            raise UnknownKernelError(
                f"kernel '{kid}': no such file or directory; give a bzImage/vmlinuz file, "
                "a kernel build tree, or one of the catalog lines: " + catalog.available()
            )
        return KernelRequest(kid, "local", path=p.resolve())
    if kid in catalog.entries:
        return KernelRequest(kid, "line", entry=catalog.entries[kid], arch=catalog.flavour)
    try:
        v = KernelVersion.parse(kid)
    except ConfigError:
        v = None
    tail = _RELEASE_TAIL.search(kid)
    if v is not None and tail is not None and _RELEASE.fullmatch(kid):
        entry = catalog.entries.get(v.line)
        if entry is not None:
            return KernelRequest(kid, "release", entry=entry, release=kid, arch=tail.group(2),
                                 rt=bool(tail.group(1)))
    sets = ", ".join(sorted(catalog.sets))
    raise UnknownKernelError(
        f"unknown kernel '{kid}'. Available lines: {catalog.available()} (each also as "
        f"LINE/arm64, LINE/rt, LINE/arm64-rt); sets: {sets}; "
        f"or an exact Debian release such as 6.12.94+deb13-{catalog.flavour}, "
        "or a path to a bzImage or kernel build tree. 'ebpf-harness kernels list' shows them."
    )
