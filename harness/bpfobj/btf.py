"""BTF, the BPF Type Format, as a C compiler writes it into a .bpf.o (the .BTF section).

Only reading, and only what the harness needs: the types (to encode a variable a set-up
file gives a value to, to read map definitions and extern functions). The format is the
kernel's Documentation/bpf/btf.rst: a header, a type section of variable-length records,
a string section. Pure.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = 0xEB9F

# enum btf_kind
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
KIND_NAMES = {INT: "int", PTR: "ptr", ARRAY: "array", STRUCT: "struct", UNION: "union",
              ENUM: "enum", FWD: "fwd", TYPEDEF: "typedef", VOLATILE: "volatile",
              CONST: "const", RESTRICT: "restrict", FUNC: "func", FUNC_PROTO: "func_proto",
              VAR: "var", DATASEC: "datasec", FLOAT: "float", DECL_TAG: "decl_tag",
              TYPE_TAG: "type_tag", ENUM64: "enum64"}
_MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4


class BTFError(ValueError):
    pass


@dataclass
class Member:
    name: str
    type: int
    offset: int = 0  # bits, for struct members; the value, for enum entries


@dataclass
class BtfType:
    id: int
    kind: int
    name: str
    size_or_type: int
    vlen: int = 0
    kind_flag: bool = False
    # per kind: INT encoding/bits; ARRAY (elem type, nelems); VAR linkage; DECL_TAG index
    extra: tuple[int, ...] = ()
    members: list[Member] = field(default_factory=list)  # struct/union/enum/params/datasec

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


class BTF:
    """The types of one .BTF section, by id (0 is void)."""

    def __init__(self, types: list[BtfType], strings: bytes = b"") -> None:
        self.types = types
        self.strings = strings
        self._by_name: dict[str, list[int]] | None = None

    def string(self, off: int) -> str:
        """A string of the string section (.BTF.ext names its sections and CO-RE access
        strings by offsets into it)."""
        if not 0 <= off < len(self.strings):
            raise BTFError(f"BTF string offset {off} outside the string section")
        end = self.strings.find(b"\0", off)
        return self.strings[off : end if end >= 0 else len(self.strings)].decode(errors="replace")

    def ids_named(self, name: str) -> list[int]:
        """The ids of every type of this name (an index built on first use)."""
        if self._by_name is None:
            index: dict[str, list[int]] = {}
            for t in self.types[1:]:
                if t.name:
                    index.setdefault(t.name, []).append(t.id)
            self._by_name = index
        return self._by_name.get(name, [])

    def __getitem__(self, tid: int) -> BtfType:
        if not 0 < tid < len(self.types):
            raise BTFError(f"no BTF type {tid}")
        return self.types[tid]

    def named(self, name: str, kind: int | None = None) -> list[BtfType]:
        found = [self.types[i] for i in self.ids_named(name)]
        return [t for t in found if kind is None or t.kind == kind]

    def of_kind(self, kind: int) -> list[BtfType]:
        return [t for t in self.types[1:] if t.kind == kind]

    def resolve(self, tid: int) -> BtfType | None:
        """Through typedefs and qualifiers to the type underneath; None for void."""
        seen = 0
        while tid:
            t = self[tid]
            if t.kind not in _MODIFIERS:
                return t
            tid = t.size_or_type
            seen += 1
            if seen > 64:
                raise BTFError(f"BTF type {tid}: a loop of typedefs or qualifiers")
        return None

    def size_of(self, tid: int) -> int:
        t = self.resolve(tid)
        if t is None:
            return 0
        if t.kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return t.size_or_type
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY:
            return self.size_of(t.extra[0]) * t.extra[1]
        if t.kind == VAR:
            return self.size_of(t.size_or_type)
        return 0

    def describe(self, tid: int) -> str:
        """A C-like spelling of a type, for messages."""
        if tid == 0:
            return "void"
        t = self[tid]
        if t.kind == PTR:
            return self.describe(t.size_or_type) + " *"
        if t.kind == ARRAY:
            return f"{self.describe(t.extra[0])}[{t.extra[1]}]"
        if t.kind in (CONST, VOLATILE, RESTRICT):
            return f"{t.kind_name} {self.describe(t.size_or_type)}"
        if t.kind in (STRUCT, UNION, ENUM, ENUM64):
            return f"{'enum' if t.kind == ENUM64 else t.kind_name} {t.name or '(anon)'}"
        return t.name or t.kind_name


def parse(data: bytes) -> BTF:
    """A .BTF section's bytes -> BTF. Raises BTFError on anything malformed."""
    if len(data) < 24:
        raise BTFError("BTF section too short for its header")
    magic = struct.unpack_from("<H", data, 0)[0]
    if magic == MAGIC:
        e = "<"
    elif magic == 0x9FEB:
        e = ">"
    else:
        raise BTFError(f"not BTF (magic {magic:#x})")
    _, _, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(e + "HBBIIIII",
                                                                                data, 0)
    base = hdr_len
    if base + max(type_off + type_len, str_off + str_len) > len(data):
        raise BTFError("BTF section shorter than its header says")
    strings = data[base + str_off : base + str_off + str_len]

    def name(off: int) -> str:
        if off >= len(strings):
            raise BTFError(f"BTF string offset {off} outside the string section")
        end = strings.find(b"\0", off)
        return strings[off : end if end >= 0 else len(strings)].decode(errors="replace")

    types: list[BtfType] = [BtfType(0, 0, "void", 0)]
    pos, end = base + type_off, base + type_off + type_len
    u32, i32 = struct.Struct(e + "I"), struct.Struct(e + "i")
    while pos < end:
        name_off, info, st = struct.unpack_from(e + "III", data, pos)
        pos += 12
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
        t = BtfType(len(types), kind, name(name_off), st, vlen, kflag)
        if kind in (INT, VAR, DECL_TAG):
            t.extra = (u32.unpack_from(data, pos)[0],) if kind != DECL_TAG else (
                i32.unpack_from(data, pos)[0],)
            pos += 4
        elif kind == ARRAY:
            elem, _index, nelems = struct.unpack_from(e + "III", data, pos)
            t.extra = (elem, nelems)
            pos += 12
        elif kind in (STRUCT, UNION):
            for _ in range(vlen):
                mn, mt, moff = struct.unpack_from(e + "III", data, pos)
                t.members.append(Member(name(mn), mt, moff & 0xFFFFFF if kflag else moff))
                pos += 12
        elif kind == ENUM:
            for _ in range(vlen):
                mn, val = struct.unpack_from(e + "Ii", data, pos)
                t.members.append(Member(name(mn), 0, val))
                pos += 8
        elif kind == ENUM64:
            for _ in range(vlen):
                mn, lo, hi = struct.unpack_from(e + "III", data, pos)
                t.members.append(Member(name(mn), 0, lo | (hi << 32)))
                pos += 12
        elif kind == FUNC_PROTO:
            for _ in range(vlen):
                mn, mt = struct.unpack_from(e + "II", data, pos)
                t.members.append(Member(name(mn), mt))
                pos += 8
        elif kind == DATASEC:
            for _ in range(vlen):
                vt, voff, vsize = struct.unpack_from(e + "III", data, pos)
                t.members.append(Member("", vt, voff))
                t.extra += (vsize,)
                pos += 12
        elif kind not in (PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG):
            raise BTFError(f"BTF type {t.id}: unknown kind {kind}")
        types.append(t)
    if pos != end:
        raise BTFError("BTF type section ends inside a type")
    return BTF(types, bytes(strings))
