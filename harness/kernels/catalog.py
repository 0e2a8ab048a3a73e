"""The kernel catalog (kernels/*.toml) and the parsing of kernel ids. Pure logic."""

from __future__ import annotations

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


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, CatalogEntry]
    sets: dict[str, tuple[str, ...]]
    flavour: str = "amd64"

    def lines(self) -> list[CatalogEntry]:
        return sorted(self.entries.values(), key=lambda e: e.version)

    def available(self) -> str:
        return ", ".join(e.line for e in self.lines())


@dataclass(frozen=True)
class KernelRequest:
    """One kernel the user asked for, before any download."""

    id: str
    kind: str  # "line" | "release" | "local"
    entry: CatalogEntry | None = None
    release: str | None = None
    path: Path | None = None


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
        for m in members:
            if m not in entries:
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


def parse_kernel_id(kid: str, catalog: Catalog) -> KernelRequest:
    if "/" in kid or kid.startswith("."):
        p = Path(kid).expanduser()
        if not p.exists():
            raise UnknownKernelError(
                f"kernel '{kid}': no such file or directory; give a bzImage/vmlinuz file, "
                "a kernel build tree, or one of the catalog lines: " + catalog.available()
            )
        return KernelRequest(kid, "local", path=p.resolve())
    if kid in catalog.entries:
        return KernelRequest(kid, "line", entry=catalog.entries[kid])
    try:
        v = KernelVersion.parse(kid)
    except ConfigError:
        v = None
    if v is not None and kid.endswith("-" + catalog.flavour):
        entry = catalog.entries.get(v.line)
        if entry is not None:
            return KernelRequest(kid, "release", entry=entry, release=kid)
    sets = ", ".join(sorted(catalog.sets))
    raise UnknownKernelError(
        f"unknown kernel '{kid}'. Available lines: {catalog.available()}; sets: {sets}; "
        f"or an exact Debian release such as 6.12.94+deb13-{catalog.flavour}, "
        "or a path to a bzImage or kernel build tree. 'ebpf-harness kernels list' shows them."
    )
