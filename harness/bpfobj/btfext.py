"""The CO-RE relocations of a BPF object, read from its .BTF.ext section.

Layout (the kernel's Documentation/bpf/btf.rst, ".BTF.ext section"): a header (magic,
version, flags, header length, then offset and length pairs of the func_info, line_info
and, when the header is long enough, core_relo subsections), each subsection a record
size followed by groups of (section name, count, records). A core_relo record is four
u32: the instruction's byte offset in its ELF section, the local BTF type id, the access
string's offset in the .BTF string section, and the relocation kind. Pure.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .btf import BTF, MAGIC, BTFError

# enum bpf_core_relo_kind
FIELD_BYTE_OFFSET, FIELD_BYTE_SIZE, FIELD_EXISTS, FIELD_SIGNED = 0, 1, 2, 3
FIELD_LSHIFT_U64, FIELD_RSHIFT_U64 = 4, 5
TYPE_ID_LOCAL, TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE = 6, 7, 8, 9
ENUMVAL_EXISTS, ENUMVAL_VALUE, TYPE_MATCHES = 10, 11, 12
KIND_NAMES = {FIELD_BYTE_OFFSET: "field offset", FIELD_BYTE_SIZE: "field size",
              FIELD_EXISTS: "field exists", FIELD_SIGNED: "field signedness",
              FIELD_LSHIFT_U64: "bitfield shift", FIELD_RSHIFT_U64: "bitfield shift",
              TYPE_ID_LOCAL: "local type id", TYPE_ID_TARGET: "target type id",
              TYPE_EXISTS: "type exists", TYPE_SIZE: "type size",
              ENUMVAL_EXISTS: "enum value exists", ENUMVAL_VALUE: "enum value",
              TYPE_MATCHES: "type matches"}
FIELD_KINDS = (FIELD_BYTE_OFFSET, FIELD_BYTE_SIZE, FIELD_EXISTS, FIELD_SIGNED,
               FIELD_LSHIFT_U64, FIELD_RSHIFT_U64)
TYPE_KINDS = (TYPE_ID_LOCAL, TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE, TYPE_MATCHES)
ENUM_KINDS = (ENUMVAL_EXISTS, ENUMVAL_VALUE)
# relocations whose failure is an answer (0), not an error: the program asks
EXISTENCE = (FIELD_EXISTS, TYPE_EXISTS, ENUMVAL_EXISTS, TYPE_MATCHES)


@dataclass(frozen=True)
class CoreRelo:
    section: str  # the ELF section of the instruction ("kprobe/do_sys_open", ".text")
    insn_off: int  # byte offset of the instruction in that section
    type_id: int  # in the object's own BTF
    access: str  # "0:1:2": array index, then member or element indexes
    kind: int

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, f"kind {self.kind}")


def core_relocations(ext: bytes, btf: BTF) -> list[CoreRelo]:
    """Every CO-RE relocation of a .BTF.ext section (names looked up in btf, the
    object's .BTF). Raises BTFError on a malformed section."""
    if len(ext) < 8:
        raise BTFError(".BTF.ext too short for its header")
    magic = struct.unpack_from("<H", ext, 0)[0]
    if magic != MAGIC:
        raise BTFError(f".BTF.ext: bad magic {magic:#x}")
    hdr_len = struct.unpack_from("<I", ext, 4)[0]
    if hdr_len < 32 or len(ext) < hdr_len:
        return []  # an old header without a core_relo subsection
    off, length = struct.unpack_from("<II", ext, 24)
    start, end = hdr_len + off, hdr_len + off + length
    if length == 0:
        return []
    if end > len(ext):
        raise BTFError(".BTF.ext: the CO-RE subsection runs past the section's end")
    rec_size = struct.unpack_from("<I", ext, start)[0]
    if rec_size < 16:
        raise BTFError(f".BTF.ext: CO-RE record size {rec_size} too small")
    out: list[CoreRelo] = []
    pos = start + 4
    while pos < end:
        sec_off, count = struct.unpack_from("<II", ext, pos)
        pos += 8
        section = btf.string(sec_off)
        for _ in range(count):
            if pos + rec_size > end:
                raise BTFError(".BTF.ext: a CO-RE record runs past its subsection")
            insn_off, type_id, access_off, kind = struct.unpack_from("<IIII", ext, pos)
            out.append(CoreRelo(section, insn_off, type_id, btf.string(access_off), kind))
            pos += rec_size
    return out
