"""CO-RE relocations resolved against a kernel's BTF, the way libbpf decides them at load
time, so that a relocation a kernel cannot satisfy is known before that kernel boots.

The rules (libbpf's documented CO-RE semantics, written here from the description, not
from its code):
- candidates: the kernel's types of the same BTF kind as the local root type whose
  *essential* name matches (a local ``task_struct___old`` matches ``task_struct``: the
  part after the last ``x___y`` separator is a flavour and is dropped);
- a field access ``0:3:1`` is array index 0 of the root, then member 3, then member 1 of
  that; anonymous local members are skipped, and each named member is found by name in
  the candidate, looking through its anonymous structs and unions; the member types must
  be compatible (both composite, or the same kind: int, pointer, enum or enum64, float,
  array of compatible elements); an array index beyond a fixed-size target array fails;
- type relocations match on kind and essential name; enum value relocations on the enum's
  essential name and the enumerator's;
- every matching candidate must agree on the result, else the relocation is ambiguous;
- an existence relocation that finds nothing resolves to 0 (not an error); any other
  relocation that finds nothing makes libbpf poison its instruction, and the verifier
  then refuses the program if that instruction is reachable.

Only the kernel's vmlinux BTF is searched: a type that lives in a module's BTF reads as
missing here (said in the resolution). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import btf as B
from .btfext import (
    ENUM_KINDS,
    ENUMVAL_VALUE,
    EXISTENCE,
    FIELD_BYTE_OFFSET,
    FIELD_BYTE_SIZE,
    FIELD_KINDS,
    TYPE_ID_LOCAL,
    TYPE_MATCHES,
    TYPE_SIZE,
    CoreRelo,
)

_STRIP = (B.TYPEDEF, B.VOLATILE, B.CONST, B.RESTRICT, B.TYPE_TAG)
_COMPOSITE = (B.STRUCT, B.UNION)
_ENUMS = (B.ENUM, B.ENUM64)


@dataclass(frozen=True)
class Resolution:
    ok: bool  # libbpf resolves it (an existence check that finds nothing is ok, value 0)
    value: int | None  # the constant the instruction gets, when it is one
    what: str  # "field inet_sock.freebind", "type struct bpf_ringbuf", ...
    why: str = ""  # why it fails: "not in this kernel", "ambiguous: ..."


def essential_name(name: str) -> str:
    """The name without its flavour: 'task_struct___old' -> 'task_struct'. The
    separator is the last '___' with something other than '_' on both sides."""
    for i in range(len(name) - 5, -1, -1):
        if name[i] != "_" and name[i + 1 : i + 4] == "___" and name[i + 4] != "_":
            return name[: i + 1]
    return name


def _strip(btf: B.BTF, tid: int) -> tuple[int, B.BtfType | None]:
    seen = 0
    while tid:
        t = btf[tid]
        if t.kind not in _STRIP:
            return tid, t
        tid = t.size_or_type
        seen += 1
        if seen > 64:
            raise B.BTFError("a loop of typedefs or qualifiers")
    return 0, None


def _compatible(local: B.BTF, lid: int, target: B.BTF, tid: int) -> bool:
    lid, lt = _strip(local, lid)
    tid, tt = _strip(target, tid)
    if lt is None or tt is None:
        return lt is None and tt is None
    if lt.kind in _COMPOSITE and tt.kind in _COMPOSITE:
        return True
    if lt.kind in _ENUMS and tt.kind in _ENUMS:
        return True
    if lt.kind != tt.kind:
        return False
    if lt.kind == B.ARRAY:
        return _compatible(local, lt.extra[0], target, tt.extra[0])
    return lt.kind in (B.INT, B.PTR, B.FWD, B.FLOAT)


def _find_member(target: B.BTF, tid: int, name: str, depth: int = 0
                 ) -> tuple[B.Member, int] | None:
    """A named member of a struct or union, looking into anonymous members: the member
    and its bit offset from the start of tid."""
    _, t = _strip(target, tid)
    if t is None or t.kind not in _COMPOSITE or depth > 32:
        return None
    for m in t.members:
        if m.name == name:
            return m, m.offset
        if not m.name:
            inner = _find_member(target, m.type, name, depth + 1)
            if inner is not None:
                return inner[0], m.offset + inner[1]
    return None


def _local_steps(local: B.BTF, root: int, access: list[int]
                 ) -> tuple[list[tuple[str, int, int]], str] | None:
    """The named steps of a field access: ('field', index, member type) with the name in
    the second list, or ('array', index, element type). None when the access does not fit
    the local types (a damaged object)."""
    steps: list[tuple[str, int, int]] = []
    names: list[str] = []
    tid = root
    for idx in access[1:]:
        tid, t = _strip(local, tid)
        if t is None:
            return None
        if t.kind in _COMPOSITE:
            if idx >= len(t.members):
                return None
            m = t.members[idx]
            tid = m.type
            if m.name:  # an anonymous member is not a step: the target is searched through
                steps.append(("field", len(names), m.type))
                names.append(m.name)
        elif t.kind == B.ARRAY:
            steps.append(("array", idx, t.extra[0]))
            tid = t.extra[0]
        else:
            return None
    return steps, "\0".join(names)


def _match_field(local: B.BTF, root: int, access: list[int], target: B.BTF, cand: int
                 ) -> tuple[int, int] | None:
    """(bit offset, byte size) of the accessed field in one candidate, None when it does
    not match."""
    parsed = _local_steps(local, root, access)
    if parsed is None:
        return None
    steps, joined = parsed
    names = joined.split("\0") if joined else []
    tid, t = _strip(target, cand)
    if t is None:
        return None
    bits = access[0] * target.size_of(tid) * 8
    for kind, idx, ltype in steps:
        if kind == "field":
            found = _find_member(target, tid, names[idx])
            if found is None or not _compatible(local, ltype, target, found[0].type):
                return None
            bits += found[1]
            tid = found[0].type
        else:
            tid, t = _strip(target, tid)
            if t is None or t.kind != B.ARRAY:
                return None
            if t.extra[1] and idx >= t.extra[1]:
                return None
            bits += idx * target.size_of(t.extra[0]) * 8
            tid = t.extra[0]
    return bits, target.size_of(tid)


def _candidates(local: B.BTF, lt: B.BtfType, target: B.BTF) -> list[int]:
    want = essential_name(lt.name)
    kinds = _ENUMS if lt.kind in _ENUMS else (lt.kind,)
    return [i for i in target.ids_named(want) if target.types[i].kind in kinds]


def _spell(local: B.BTF, lt: B.BtfType) -> str:
    kind = {B.STRUCT: "struct ", B.UNION: "union ", B.ENUM: "enum ", B.ENUM64: "enum ",
            B.TYPEDEF: "", B.INT: ""}.get(lt.kind, "")
    return f"{kind}{essential_name(lt.name) or '(anonymous)'}"


def _field_path(local: B.BTF, root: int, access: list[int]) -> str:
    parsed = _local_steps(local, root, access)
    if parsed is None:
        return "?"
    steps, joined = parsed
    names = joined.split("\0") if joined else []
    parts = [names[i] if k == "field" else f"[{i}]" for k, i, _ in steps]
    return ".".join(parts).replace(".[", "[")


def resolve(relo: CoreRelo, local: B.BTF, target: B.BTF) -> Resolution:
    """One relocation against a kernel's BTF."""
    try:
        lt = local[relo.type_id]
        access = [int(x) for x in relo.access.split(":")] if relo.access else [0]
    except (B.BTFError, ValueError):
        return Resolution(False, None, f"type #{relo.type_id}", "the object's BTF is damaged")
    if relo.kind == TYPE_ID_LOCAL:
        return Resolution(True, relo.type_id, _spell(local, lt))
    cands = _candidates(local, lt, target) if lt.name else []
    if relo.kind in FIELD_KINDS:
        root_name = essential_name(lt.name) or "(anonymous)"
        what = f"field {root_name}.{_field_path(local, relo.type_id, access)}"
        found = {m for c in cands if (m := _match_field(local, relo.type_id, access, target, c))}
        return _answer(relo.kind, what, found)
    if relo.kind in ENUM_KINDS:
        _, et = _strip(local, relo.type_id)
        if et is None or et.kind not in _ENUMS or access[0] >= len(et.members):
            return Resolution(False, None, _spell(local, lt), "the object's BTF is damaged")
        ename = essential_name(et.members[access[0]].name)
        what = f"enum value {essential_name(et.name)}::{ename}"
        values = {m.offset for c in cands for m in target[c].members
                  if essential_name(m.name) == ename}
        return _answer(relo.kind, what, {(v, 0) for v in values})
    what = f"type {_spell(local, lt)}"
    if relo.kind == TYPE_MATCHES:
        cands = [c for c in cands if _members_match(local, relo.type_id, target, c)]
    sizes = {(target.size_of(c), 0) for c in cands}
    return _answer(relo.kind, what, sizes if relo.kind == TYPE_SIZE else {(1, 0)} if cands
                   else set())


def _answer(kind: int, what: str, found: set[tuple[int, int]]) -> Resolution:
    if not found:
        if kind in EXISTENCE:
            return Resolution(True, 0, what)
        return Resolution(False, None, what, "not in this kernel")
    if len(found) > 1 and kind not in EXISTENCE:
        return Resolution(False, None, what, "ambiguous: the kernel has more than one "
                          "matching definition that disagree")
    if kind in EXISTENCE:
        return Resolution(True, 1, what)
    first = next(iter(found))
    if kind == FIELD_BYTE_OFFSET:
        return Resolution(True, first[0] // 8, what)
    if kind == FIELD_BYTE_SIZE:
        return Resolution(True, first[1], what)
    if kind in (TYPE_SIZE, ENUMVAL_VALUE):
        return Resolution(True, first[0], what)
    return Resolution(True, None, what)


def _members_match(local: B.BTF, lid: int, target: B.BTF, tid: int) -> bool:
    """TYPE_MATCHES, approximated: every named member of a local struct or union is found
    by name in the target with a compatible type; enums: every enumerator name exists."""
    _, lt = _strip(local, lid)
    _, tt = _strip(target, tid)
    if lt is None or tt is None:
        return False
    if lt.kind in _COMPOSITE:
        for m in lt.members:
            if not m.name:
                continue
            found = _find_member(target, tid, m.name)
            if found is None or not _compatible(local, m.type, target, found[0].type):
                return False
        return True
    if lt.kind in _ENUMS:
        names = {essential_name(m.name) for m in tt.members}
        return all(essential_name(m.name) in names for m in lt.members)
    return True


