"""The parts of a BPF ELF object the host reads: its programs (name and section), maps,
global variables (section, offset, size) and BTF. pyelftools parses the ELF (a well-kept
library for a format with many corners); BTF is btf.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from . import btf as btfmod

DATA_SECTIONS = (".rodata", ".data", ".bss")
_SKIP_SECTIONS = (".text", ".BTF", ".BTF.ext", ".maps", "maps", "license", ".symtab", ".strtab")


@dataclass(frozen=True)
class Variable:
    name: str
    section: str  # .rodata, .data, .bss (or .rodata.NAME, .data.NAME)
    offset: int
    size: int
    type_id: int = 0  # its BTF type, 0 when the object has no BTF for it


@dataclass
class ObjectInfo:
    path: Path
    programs: dict[str, str] = field(default_factory=dict)  # name -> section
    maps: list[str] = field(default_factory=list)
    variables: dict[str, Variable] = field(default_factory=dict)
    btf: btfmod.BTF | None = None
    btf_error: str = ""


def _is_data(section: str) -> bool:
    return any(section == s or section.startswith(s + ".") for s in DATA_SECTIONS)


def read_object(path: Path) -> ObjectInfo:
    """Raises ConfigError naming the file when it is not a readable BPF ELF object."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    info = ObjectInfo(path)
    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            if elf["e_machine"] not in ("EM_BPF", 247):
                raise ConfigError(f"{path}: not a BPF object (ELF machine {elf['e_machine']})")
            names = {i: s.name for i, s in enumerate(elf.iter_sections())}
            flags = {i: s["sh_flags"] for i, s in enumerate(elf.iter_sections())}
            btf_sec = elf.get_section_by_name(".BTF")
            if btf_sec is not None:
                try:
                    info.btf = btfmod.parse(btf_sec.data())
                except btfmod.BTFError as e:
                    info.btf_error = str(e)
            symtab = elf.get_section_by_name(".symtab")
            for sym in symtab.iter_symbols() if symtab is not None else ():
                shndx = sym["st_shndx"]
                if not isinstance(shndx, int) or not sym.name:
                    continue
                sec = names.get(shndx, "")
                kind = sym["st_info"]["type"]
                if kind == "STT_FUNC" and flags.get(shndx, 0) & 0x4 and sec not in _SKIP_SECTIONS:
                    info.programs[sym.name] = sec  # SHF_EXECINSTR: a program's section
                elif kind == "STT_OBJECT" and sec in (".maps", "maps"):
                    info.maps.append(sym.name)
                elif kind == "STT_OBJECT" and _is_data(sec):
                    info.variables[sym.name] = Variable(sym.name, sec, sym["st_value"],
                                                        sym["st_size"])
    except (ELFError, OSError, KeyError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read it as a BPF ELF object: {e}") from e
    if info.btf is not None:
        _attach_var_types(info)
    return info


def _attach_var_types(info: ObjectInfo) -> None:
    assert info.btf is not None
    for sec in info.btf.of_kind(btfmod.DATASEC):
        for m in sec.members:
            var = info.btf[m.type]
            v = info.variables.get(var.name)
            if v is not None and v.section == sec.name and var.kind == btfmod.VAR:
                info.variables[var.name] = Variable(v.name, v.section, v.offset, v.size,
                                                    var.size_or_type)
