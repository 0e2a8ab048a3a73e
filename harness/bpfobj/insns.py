"""The instructions of each program of an object, and what they use: helper calls, kfunc
calls, subprogram calls, map and global-data references, and instruction-set features.
Read from the ELF (pyelftools: sections, symbols, relocations). Pure, apart from reading
the file.

Encoding facts (the kernel's Documentation/bpf/standardization/instruction-set.rst): an
instruction is 8 bytes, opcode | dst:4 src:4 | off:16 | imm:32; a 64-bit immediate load
takes two. Class = opcode & 7.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .flow import analyse

LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
CALL, EXIT, JA, JCOND, END = 0x80, 0x90, 0x00, 0xE0, 0xD0
MOV, DIV, MOD = 0xB0, 0x30, 0x90
MODE_ATOMIC, MODE_MEMSX, MODE_IMM = 0xC0, 0x80, 0x00
PSEUDO_CALL, PSEUDO_KFUNC_CALL = 1, 2
# ld_imm64 source registers
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_BTF_ID, PSEUDO_FUNC = 1, 2, 3, 4
ATOMIC_FETCH = 0x01
# BPF_ATOMIC imm -> the feature name in kernel_features.toml
_ATOMIC = {0x00: "atomic_add", 0x01: "atomic_fetch_add", 0x40: "atomic_bitwise",
           0x50: "atomic_bitwise", 0xA0: "atomic_bitwise", 0xE1: "atomic_xchg_cmpxchg",
           0xF1: "atomic_xchg_cmpxchg", 0x100: "load_acquire_store_release",
           0x110: "load_acquire_store_release"}


@dataclass
class Usage:
    """What one program (with every subprogram it calls) uses."""

    helpers: set[int] = field(default_factory=set)
    kfuncs: set[str] = field(default_factory=set)
    maps: set[str] = field(default_factory=set)
    insn: set[str] = field(default_factory=set)  # feature names of kernel_features.toml [insn]
    subprograms: set[str] = field(default_factory=set)
    count: int = 0
    # the CO-RE relocated instructions it can reach: (section name, byte offset)
    core: set[tuple[str, int]] = field(default_factory=set)
    # (offset, size) of the loads from its context, by its entry function (with a flow)
    ctx_reads: set[tuple[int, int]] = field(default_factory=set)
    ctx_moved: bool = False  # it loads through its context pointer moved by a constant


@dataclass(frozen=True)
class _Func:
    name: str
    section: int
    start: int  # byte offset in its section
    size: int


@dataclass(frozen=True)
class _Reloc:
    name: str  # the symbol's name, or its section's for a section symbol
    value: int
    section: str  # '' for an undefined (extern) symbol
    shndx: int  # -1 for an undefined symbol
    is_section: bool
    weak: bool = False  # a weak symbol: an extern the kernel may lack (its address is then 0)


def _features(raw: bytes, relocs: dict[int, _Reloc], executable: set[str], kconfig: set[str],
              u: Usage, live: set[int] | None = None) -> list[tuple[str, int, int]]:
    """Scan one function's bytes (only the instructions in live, when given). Returns the
    functions it refers to: ('call', insn index, imm) for a bpf-to-bpf call, ('func', insn
    index, imm) for a function's address."""
    refs = []
    i, n = 0, len(raw) // 8
    while i < n:
        if live is not None and i not in live:
            i += 1
            continue
        op, regs, off, imm = struct.unpack_from("<BBhi", raw, i * 8)
        src = regs >> 4
        cls = op & 7
        r = relocs.get(i * 8)
        u.count += 1
        if cls == JMP and op & 0xF0 == CALL:
            if src == PSEUDO_KFUNC_CALL or (src == PSEUDO_CALL and r is not None and r.shndx < 0):
                # clang marks every call of a function as a pseudo call; one relocated
                # against an undefined (extern) symbol is a kfunc, as libbpf decides
                if r is not None:  # libbpf drops a last '___suffix' (a local flavour)
                    u.kfuncs.add(r.name.rsplit("___", 1)[0] if "___" in r.name else r.name)
                u.insn.add("kfunc_calls")
            elif src == PSEUDO_CALL:
                refs.append(("call", i, imm))
                u.insn.add("bpf_to_bpf_calls")
            else:
                u.helpers.add(imm)
        elif cls == JMP32:
            u.insn.add("cpu_v4_gotol" if op & 0xF0 == JA else "jmp32")
        elif cls == JMP and op & 0xF0 == JCOND:
            u.insn.add("may_goto")
        elif cls == JMP and op & 0xF0 in (0xA0, 0xB0, 0xC0, 0xD0):
            u.insn.add("cpu_v2_jumps")
        elif cls == LD and op == 0x18:
            where = r.section if r is not None else ""
            if where in (".maps", "maps"):
                u.maps.add(r.name if r is not None else "")
            elif src == PSEUDO_MAP_VALUE or where.startswith((".rodata", ".data", ".bss")) \
                    or (r is not None and r.shndx < 0 and r.name in kconfig):
                u.insn.add("global_data")  # a __kconfig extern lives in libbpf's .kconfig map
            elif src == PSEUDO_BTF_ID or (r is not None and r.shndx < 0):
                u.insn.add("typed_ksyms")
            elif src == PSEUDO_FUNC or where in executable:
                u.insn.add("callbacks")  # a function's address: a callback (bpf_loop, timers)
                refs.append(("func", i, imm))
            i += 1  # the second half of a 64-bit immediate load
            u.count += 1
        elif cls == LDX and op & 0xE0 == MODE_MEMSX:
            u.insn.add("cpu_v4_ldsx")
        elif cls == STX and op & 0xE0 == MODE_ATOMIC:
            u.insn.add(_ATOMIC.get(imm, _ATOMIC.get(imm & ~ATOMIC_FETCH, "atomic_add")))
        elif cls in (ALU, ALU64) and op & 0xF0 == MOV and op & 0x08 and off in (8, 16, 32):
            u.insn.add("cpu_v4_movsx")
        elif cls == ALU64 and op & 0xF0 == MOV and op & 0x08 and off == 1:
            u.insn.add("addr_space_cast")
        elif cls in (ALU, ALU64) and op & 0xF0 in (DIV, MOD) and off == 1:
            u.insn.add("cpu_v4_sdiv_smod")
        elif cls == ALU64 and op & 0xF0 == END:
            u.insn.add("cpu_v4_bswap")
        elif cls == ALU:
            u.insn.add("alu32")
        i += 1
    return refs


@dataclass
class Code:
    """An object's functions, their bytes and relocations, read once (load_code)."""

    funcs: list[_Func]
    data: dict[int, bytes]  # section index -> its bytes
    relocs: dict[int, dict[int, _Reloc]]  # section index -> byte offset -> relocation
    executable: set[str]
    section_names: dict[int, str]
    text: int | None  # the .text section: subprograms, not programs


def load_code(path: Path) -> Code:
    """Raises ConfigError naming the file when its instructions cannot be read."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            sections = list(elf.iter_sections())
            symtab = elf.get_section_by_name(".symtab")
            syms = list(symtab.iter_symbols()) if symtab is not None else []
            executable = {s.name for s in sections if s["sh_flags"] & 0x4}
            funcs: list[_Func] = []
            for s in syms:
                shndx = s["st_shndx"]
                if s["st_info"]["type"] == "STT_FUNC" and isinstance(shndx, int) and \
                        sections[shndx]["sh_flags"] & 0x4:
                    funcs.append(_Func(s.name, shndx, s["st_value"], s["st_size"]))
            data = {f.section: sections[f.section].data() for f in funcs}
            relocs: dict[int, dict[int, _Reloc]] = {}
            for sec in sections:
                if isinstance(sec, RelocationSection) and sec["sh_info"] in data:
                    table = relocs.setdefault(sec["sh_info"], {})
                    for rel in sec.iter_relocations():
                        sym = syms[rel["r_info_sym"]]
                        shndx = sym["st_shndx"]
                        defined = isinstance(shndx, int) and shndx != 0
                        sec_name = sections[shndx].name if defined else ""
                        table[rel["r_offset"]] = _Reloc(
                            sym.name or sec_name, sym["st_value"] if defined else 0, sec_name,
                            shndx if defined else -1, sym["st_info"]["type"] == "STT_SECTION",
                            sym["st_info"]["bind"] == "STB_WEAK")
            names = {i: s.name for i, s in enumerate(sections)}
    except (ELFError, OSError, KeyError, ValueError, IndexError) as e:
        raise ConfigError(f"{path}: cannot read its instructions: {e}") from e
    text = next((i for i, n in names.items() if n == ".text"), None)
    return Code(funcs, data, relocs, executable, names, text)


def program_usage(path: Path, kconfig: set[str] | None = None) -> dict[str, Usage]:
    """name -> what the program uses, following its bpf-to-bpf calls and callbacks into
    subprograms. kconfig: the object's __kconfig externs (from its BTF .kconfig section)."""
    return usages(load_code(path), kconfig)


def usages(code: Code, kconfig: set[str] | None = None,
           constants: Mapping[tuple[str, int], int | None] | None = None,
           absent: frozenset[str] = frozenset(),
           kconfig_values: Mapping[str, int | None] | None = None) -> dict[str, Usage]:
    """name -> what the program uses on the code that can run. constants: the CO-RE
    relocated instructions, (section name, byte offset) -> the constant libbpf writes
    there (None: not a constant); absent: weak externs this kernel lacks (their address
    is 0); kconfig_values: what libbpf gives each __kconfig extern on this kernel. Without
    any of them every instruction counts."""
    funcs, data, relocs, executable = code.funcs, code.data, code.relocs, code.executable
    by_section: dict[int, list[_Func]] = {}
    for f in funcs:
        by_section.setdefault(f.section, []).append(f)

    def func_at(section: int, byte: int) -> _Func | None:
        return next((f for f in by_section.get(section, [])
                     if f.start <= byte < f.start + max(f.size, 8)), None)

    def target(f: _Func, kind: str, idx: int, imm: int) -> _Func | None:
        r = relocs.get(f.section, {}).get(f.start + idx * 8)
        if r is None:  # a call inside the same section, not relocated
            return func_at(f.section, f.start + (idx + imm + 1) * 8) if kind == "call" else None
        if not r.is_section:
            return func_at(r.shndx, r.value)
        byte = r.value + ((imm + 1) * 8 if kind == "call" else imm)
        return func_at(r.shndx, byte)

    scanned: dict[_Func, tuple[Usage, list[_Func]]] = {}
    flows: dict[_Func, tuple[bytes, dict[int, int], dict[int, int | None]]] = {}
    reads_of: dict[tuple[_Func, frozenset[int]], tuple[set[tuple[int, int]], bool]] = {}

    def ctx_reads(f: _Func, regs: frozenset[int], depth: int = 0
                  ) -> tuple[set[tuple[int, int]], bool]:
        """Loads from the context by f entered with it in regs, and by the subprograms
        it hands the context to; and whether any of them loads through it moved."""
        key = (f, regs)
        if key in reads_of or f not in flows or depth > 8:
            return reads_of.get(key, (set(), False))
        reads_of[key] = (set(), False)  # a recursion ends here
        raw, known, pointers = flows[f]
        flow = analyse(raw, known, pointers, regs)
        out, moved = set(flow.ctx_reads), bool(flow.ctx_moved)
        for slot, passed in flow.ctx_calls.items():
            g = target(f, "call", slot, struct.unpack_from("<i", raw, slot * 8 + 4)[0])
            if g is not None and g != f:
                scan(g)
                more, more_moved = ctx_reads(g, passed, depth + 1)
                out |= more
                moved = moved or more_moved
        reads_of[key] = (out, moved)
        return out, moved

    def scan(f: _Func) -> tuple[Usage, list[_Func]]:
        if f not in scanned:
            u = Usage()
            rel = {off - f.start: r for off, r in relocs.get(f.section, {}).items()
                   if f.start <= off < f.start + f.size}
            raw = data[f.section][f.start : f.start + f.size]
            live = None
            if constants is not None or absent or kconfig_values is not None:
                sec = code.section_names.get(f.section, "")
                here = {(off - f.start) // 8: v for (s, off), v in (constants or {}).items()
                        if s == sec and f.start <= off < f.start + f.size}
                u.core = {(sec, f.start + slot * 8) for slot in here}
                known = {slot: v for slot, v in here.items() if v is not None}
                known.update({off // 8: 0 for off, r in rel.items()
                              if r.shndx < 0 and r.name in absent})
                kvals = kconfig_values or {}
                pointers = {off // 8: kvals.get(r.name) for off, r in rel.items()
                            if r.shndx < 0 and r.name in (kconfig or set())}
                flow = analyse(raw, known, pointers)
                live = flow.live
                u.core = {(s, o) for s, o in u.core if (o - f.start) // 8 in live}
                flows[f] = (raw, known, pointers)
            refs = _features(raw, rel, executable, kconfig or set(), u, live)
            if live is not None:
                # the verifier's first passes read every instruction, dead or not (a
                # callback's address in a dead branch still needs 5.13): instruction-set
                # features count on all the code, helpers and relocations on live code
                whole = Usage()
                _features(raw, rel, executable, kconfig or set(), whole)
                u.insn = whole.insn
            callees = []
            for kind, idx, imm in refs:
                g = target(f, kind, idx, imm)
                if g is not None and g != f:
                    callees.append(g)
                    u.subprograms.add(g.name)
            scanned[f] = (u, callees)
        return scanned[f]

    out: dict[str, Usage] = {}
    for f in funcs:
        if f.section == code.text:
            continue  # a subprogram, counted in the programs that call it
        total, todo, seen = Usage(), [f], {f}
        scan(f)
        # a program gets its context in r1
        total.ctx_reads, total.ctx_moved = ctx_reads(f, frozenset({1}))
        while todo:
            g = todo.pop()
            u, callees = scan(g)
            for attr in ("helpers", "kfuncs", "maps", "insn", "subprograms", "core"):
                getattr(total, attr).update(getattr(u, attr))
            total.count += u.count
            for c in callees:
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        out[f.name] = total
    return out
