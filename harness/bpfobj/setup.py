"""The loader set-up of an object: what a tool's own loader does between opening the
object and loading it, declared in a small TOML file so that `check` gets the verdict the
tool would get.

    # biolatency.setup.toml: what `biolatency` does with no options
    [maps.start]
    max_entries = 10240            # also value_size, key_size
    [variables]                    # .rodata / .data / .bss, as a skeleton sets them
    targ_ms = false
    targ_dev = 0
    [programs.block_rq_insert]
    autoload = false               # switched off before load
    [programs.file_read_entry]
    target = "ext4_file_read_iter" # the attach target the loader puts in place
    optional = true                # the object works without it
    [[alternatives]]               # the loader uses the first of these the kernel has
    programs = ["block_rq_issue_btf", "block_rq_issue"]

A kprobe or kretprobe program may also be given "/path/to/binary:symbol": loaders attach
kprobe-type programs to uprobes that way (gethostlatency does).
A target's form follows the program's section: a function (kprobe, kretprobe, fentry,
fexit, fmod_ret, lsm), an event (raw_tp, tp_btf), "category/name" (tracepoint),
"/path/to/binary:symbol" (uprobe), "/path/to/binary:provider:name" (usdt), or a software
perf event name such as "cpu-clock" (perf_event, opened on every CPU).

The file is found with --setup FILE (every object), --setup DIR (DIR/NAME.setup.toml) or
beside the object as NAME.setup.toml, NAME being the object's file name without .bpf.o,
.bpf.c, .o or .c. Pure, apart from reading the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..tomlkeys import check_keys
from . import btf as btfmod
from .elf import ObjectInfo

MAP_KEYS = ("max_entries", "value_size", "key_size")
PROGRAM_KEYS = ("autoload", "target", "optional")
TOP_KEYS = ("maps", "variables", "programs", "alternatives")
PERF_EVENTS = {"cpu-clock": 0, "task-clock": 1, "page-faults": 2, "context-switches": 3,
               "cpu-migrations": 4}  # PERF_TYPE_SOFTWARE configs


@dataclass
class ProgramSetup:
    autoload: bool = True
    target: str | None = None
    optional: bool = False


@dataclass
class Setup:
    source: str = ""  # the file it came from, for messages
    maps: dict[str, dict[str, int]] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    programs: dict[str, ProgramSetup] = field(default_factory=dict)
    alternatives: list[list[str]] = field(default_factory=list)

    def program(self, name: str) -> ProgramSetup:
        return self.programs.get(name, ProgramSetup())


def setup_name(path: Path) -> str:
    """biolatency.bpf.o, biolatency.bpf.c, /usr/sbin/biolatency -> biolatency."""
    name = path.name
    for suffix in (".bpf.o", ".bpf.c", ".o", ".c"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def find_setup(obj: Path, given: Path | None) -> Path | None:
    """The set-up file of an object: given (a file, or a directory of NAME.setup.toml),
    else NAME.setup.toml beside it; None when there is none."""
    if given is not None:
        if given.is_dir():
            cand = given / f"{setup_name(obj)}.setup.toml"
            return cand if cand.is_file() else None
        if not given.is_file():
            raise ConfigError(f"--setup {given}: no such file or directory")
        return given
    cand = obj.parent / f"{setup_name(obj)}.setup.toml"
    return cand if cand.is_file() else None


def parse_setup(data: dict[str, Any], source: str) -> Setup:
    """A parsed TOML document (or the pytest fixture's keyword arguments) -> Setup."""
    check_keys(data, TOP_KEYS, source)
    s = Setup(source=source)
    for name, attrs in _table(data, "maps", source).items():
        if not isinstance(attrs, dict):
            raise ConfigError(f"{source}: [maps.{name}] must be a table, e.g. max_entries = 1024")
        check_keys(attrs, MAP_KEYS, source, f"maps.{name}")
        for k, v in attrs.items():
            if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 1 << 32:
                raise ConfigError(f"{source}: [maps.{name}] {k} must be a positive integer")
        s.maps[name] = dict(attrs)
    s.variables = dict(_table(data, "variables", source))
    for name, attrs in _table(data, "programs", source).items():
        if not isinstance(attrs, dict):
            raise ConfigError(f"{source}: [programs.{name}] must be a table, e.g. autoload = false")
        check_keys(attrs, PROGRAM_KEYS, source, f"programs.{name}")
        p = ProgramSetup()
        if "autoload" in attrs:
            p.autoload = _bool(attrs["autoload"], f"[programs.{name}] autoload", source)
        if "optional" in attrs:
            p.optional = _bool(attrs["optional"], f"[programs.{name}] optional", source)
        if "target" in attrs:
            if not isinstance(attrs["target"], str) or not attrs["target"]:
                raise ConfigError(f"{source}: [programs.{name}] target must be a non-empty string")
            p.target = attrs["target"]
        s.programs[name] = p
    alts = data.get("alternatives", [])
    if not isinstance(alts, list):
        raise ConfigError(f"{source}: alternatives must be an array of tables: "
                          '[[alternatives]] programs = ["a", "b"]')
    for i, group in enumerate(alts):
        progs = group.get("programs") if isinstance(group, dict) else None
        if isinstance(group, dict):
            check_keys(group, ("programs",), source, f"alternatives[{i}]")
        if not isinstance(progs, list) or len(progs) < 2 or \
                not all(isinstance(p, str) for p in progs):
            raise ConfigError(f"{source}: alternatives #{i + 1} needs programs = [...] with two "
                              "or more program names, in order of preference")
        s.alternatives.append(list(progs))
    return s


def _table(data: dict, key: str, source: str) -> dict:
    t = data.get(key, {})
    if not isinstance(t, dict):
        raise ConfigError(f"{source}: [{key}] must be a table")
    return t


def _bool(v: Any, where: str, source: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{source}: {where} must be true or false")
    return v


def load_setup(path: Path) -> Setup:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read set-up file {path}: {e.strerror or e}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"set-up file {path} is not valid TOML: {e}") from e
    return parse_setup(data, str(path))


def _names(kind: str, have: list[str] | dict) -> str:
    names = sorted(have)
    return f"the object's {kind}: {', '.join(names)}" if names else f"the object has no {kind}"


def resolve(setup: Setup, obj: ObjectInfo) -> dict[str, Any]:
    """The set-up as the guest applies it: names checked against the object, variables
    encoded to bytes at their offsets. Raises ConfigError naming the file and the name."""
    src = setup.source
    for name in setup.maps:
        if obj.maps and name not in obj.maps:
            raise ConfigError(f"{src}: no map '{name}' in {obj.path}; {_names('maps', obj.maps)}")
    for name in [*setup.programs, *(p for g in setup.alternatives for p in g)]:
        if name not in obj.programs:
            raise ConfigError(f"{src}: no program '{name}' in {obj.path}; "
                              f"{_names('programs', obj.programs)}")
    for name, p in setup.programs.items():
        if p.target is not None:
            check_target(obj.programs[name], p.target, f"{src}: [programs.{name}] target")
    data = []
    for name, value in setup.variables.items():
        var = obj.variables.get(name)
        if var is None:
            raise ConfigError(f"{src}: no global variable '{name}' in {obj.path}; "
                              f"{_names('variables', obj.variables)}")
        raw = encode(value, var.size, obj.btf, var.type_id, f"{src}: variable '{name}'")
        data.append({"section": var.section, "offset": var.offset, "hex": raw.hex(),
                     "name": name})
    return {
        "source": src,
        "maps": setup.maps,
        "data": data,
        "programs": {n: {"autoload": p.autoload, "target": p.target, "optional": p.optional}
                     for n, p in setup.programs.items()},
        "alternatives": setup.alternatives,
    }


def check_target(section: str, target: str, where: str) -> None:
    """The target's form must fit the section (see the module's docstring)."""
    base = section.lstrip("?").partition("/")[0]
    if base in ("tp", "tracepoint") and "/" not in target:
        raise ConfigError(f'{where}: a tracepoint target is "category/name", e.g. '
                          '"sched/sched_switch"')
    if base.startswith(("uprobe", "uretprobe")) and ":" not in target:
        raise ConfigError(f'{where}: a uprobe target is "/path/to/binary:symbol"')
    if base == "usdt" and target.count(":") != 2:
        raise ConfigError(f'{where}: a usdt target is "/path/to/binary:provider:name"')
    if base == "perf_event" and target not in PERF_EVENTS:
        raise ConfigError(f"{where}: a perf_event target is one of {', '.join(PERF_EVENTS)}")


def encode(value: Any, size: int, btf: btfmod.BTF | None, type_id: int, where: str) -> bytes:
    """A TOML value as the variable's bytes: bool and integers by the variable's size and
    signedness, a string into a char array (NUL-padded), an array element by element."""
    t = btf.resolve(type_id) if btf is not None and type_id else None
    if t is not None and t.kind == btfmod.ARRAY:
        elem, n = t.extra
        esize = btf.size_of(elem) if btf is not None else 1
        if isinstance(value, str):
            raw = value.encode()
            if len(raw) >= n * esize:
                raise ConfigError(f"{where}: {value!r} does not fit in {n * esize} bytes "
                                  "with its terminating NUL")
            return raw.ljust(size, b"\0")
        if not isinstance(value, list) or len(value) > n:
            raise ConfigError(f"{where}: give an array of at most {n} values")
        out = b"".join(encode(v, esize, btf, elem, f"{where}[{i}]") for i, v in enumerate(value))
        return out.ljust(size, b"\0")
    signed = t is not None and t.kind == btfmod.INT and bool((t.extra[0] >> 24) & btfmod.INT_SIGNED)
    if t is not None and t.kind in (btfmod.ENUM, btfmod.ENUM64) and isinstance(value, str):
        found = next((m.offset for m in t.members if m.name == value), None)
        if found is None:
            raise ConfigError(f"{where}: {value!r} is not one of "
                              f"{', '.join(m.name for m in t.members)}")
        value = found
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise ConfigError(f"{where}: give an integer or true/false (a {size}-byte variable)")
    if size not in (1, 2, 4, 8):
        raise ConfigError(f"{where}: a {size}-byte variable takes an array or a string")
    lo, hi = (-(1 << (size * 8 - 1)), 1 << (size * 8 - 1)) if signed or value < 0 else \
        (0, 1 << (size * 8))
    if not lo <= value < hi:
        raise ConfigError(f"{where}: {value} does not fit in {size} bytes")
    return (value % (1 << (size * 8))).to_bytes(size, "little")  # two's complement
