"""Which instructions of a BPF function can run, given constants known at load time.

libbpf writes a CO-RE existence check's answer (0 or 1), an enum's value or a type's
size into the instruction as a constant, and a missing weak kfunc's address as 0. The
verifier then never walks a branch that such a constant rules out, so what the code in
that branch needs (a helper, a kfunc, a field) does not matter on that kernel. This finds
the reachable instructions by propagating register constants along the control flow
(a register is a known constant or unknown; where paths meet, it stays known only if
every path agrees) and following only the branches a known comparison allows. Pure.

Instruction encoding: the kernel's Documentation/bpf/standardization/instruction-set.rst.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _compare(op: int, a: int, b: int, bits: int) -> bool | None:
    ua, ub = a & ((1 << bits) - 1), b & ((1 << bits) - 1)
    sa, sb = _signed(a, bits), _signed(b, bits)
    return {0x10: ua == ub, 0x20: ua > ub, 0x30: ua >= ub, 0x40: bool(ua & ub),
            0x50: ua != ub, 0x60: sa > sb, 0x70: sa >= sb, 0xA0: ua < ub, 0xB0: ua <= ub,
            0xC0: sa < sb, 0xD0: sa <= sb}.get(op)


def _alu(op: int, a: int, b: int, bits: int) -> int | None:
    mask = (1 << bits) - 1
    a, b = a & mask, b & mask
    shift = b & (bits - 1)
    out = {0x00: a + b, 0x10: a - b, 0x20: a * b, 0x40: a | b, 0x50: a & b,
           0x60: a << shift, 0x70: a >> shift, 0x80: -a, 0xA0: a ^ b,
           0xC0: _signed(a, bits) >> shift}.get(op)
    return None if out is None else out & mask


def _meet(a: tuple[object, ...], b: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(x if x == y else None for x, y in zip(a, b, strict=True))


@dataclass
class Flow:
    live: set[int]  # the instructions that can run (8-byte slots)
    ctx_reads: set[tuple[int, int]]  # (offset, size) of every load from the context
    # bpf-to-bpf calls made with the context in argument registers: slot -> those registers
    ctx_calls: dict[int, frozenset[int]]
    # loads through the context pointer moved by a constant (ctx + 8): the verifier refuses
    # every one ("dereference of modified ctx ptr"), whatever the program type
    ctx_moved: set[int] = field(default_factory=set)


# abstract values that are not numbers: the context pointer the program is entered with,
# and a pointer to one of libbpf's .kconfig values (a load through it is that value)
CTX = ("ctx",)


def live_instructions(code: bytes, constants: Mapping[int, int] | None = None) -> set[int]:
    """Indexes (in 8-byte slots) of the instructions that can run when the function is
    entered at slot 0. constants: slot -> the value libbpf puts there (into a MOV's or a
    64-bit load's immediate)."""
    return analyse(code, constants).live


def analyse(code: bytes, constants: Mapping[int, int] | None = None,
            kconfig: Mapping[int, int | None] | None = None,
            ctx_regs: frozenset[int] = frozenset({1})) -> Flow:
    """The live instructions and the context loads of a function entered at slot 0 with
    its context in ctx_regs (r1 for a program; a subprogram gets it where its caller put
    it). kconfig: slot of a 64-bit load of a .kconfig extern's address ->
    the value libbpf gives that extern on this kernel (None: not known), so that a branch
    on LINUX_KERNEL_VERSION or a CONFIG_ option is followed one way only, as the verifier
    does (libbpf's .kconfig map is read-only and frozen: its values are known to it)."""
    consts = constants or {}
    kcfg = kconfig or {}
    n = len(code) // 8
    start: list[object] = [None] * 11
    for r in ctx_regs:
        start[r] = CTX
    states: dict[int, tuple[object, ...]] = {0: tuple(start)}
    reads: set[tuple[int, int]] = set()
    calls: dict[int, frozenset[int]] = {}
    moved: set[int] = set()
    todo = [0]
    while todo:
        i = todo.pop()
        state = states[i]
        if i >= n:
            continue
        op, regs, off, imm = struct.unpack_from("<BBhi", code, i * 8)
        dst, src = regs & 0xF, regs >> 4
        cls = op & 7
        regs_now = list(state)
        nexts: list[int] = []
        if cls == LD and op == 0x18:  # a 64-bit immediate load: two slots
            value: object
            if i in consts:
                value = consts[i] & _M64
            elif i in kcfg:
                value = ("kconfig", kcfg[i])
            elif src == 0 and i + 1 < n:
                hi = struct.unpack_from("<i", code, (i + 1) * 8 + 4)[0]
                value = ((imm & _M32) | ((hi & _M32) << 32)) & _M64
            else:
                value = None  # a map, a variable, a kfunc's address: not known here
            if dst < 11:
                regs_now[dst] = value
            nexts = [i + 2]
        elif cls in (ALU, ALU64):
            bits = 64 if cls == ALU64 else 32
            code_op = op & 0xF0
            from_reg = bool(op & 0x08)
            operand: object = consts[i] if i in consts else \
                ((state[src] if src < 11 else None) if from_reg else imm)
            if dst < 11 and state[dst] == CTX and code_op in (0x00, 0x10) and bits == 64 \
                    and isinstance(operand, int):
                moved_by = _signed(operand, 64) * (1 if code_op == 0x00 else -1)
                regs_now[dst] = ("ctx+", moved_by) if moved_by else CTX
            elif dst < 11:
                if code_op == 0xB0 and off == 0:  # mov
                    if isinstance(operand, int):
                        regs_now[dst] = operand & (_M64 if bits == 64 else _M32)
                    else:  # a pointer copied (64-bit moves only keep it)
                        regs_now[dst] = operand if bits == 64 else None
                elif code_op == 0xD0 or off:  # byte swaps, sign-extending forms
                    regs_now[dst] = None
                elif isinstance(state[dst], int) and isinstance(operand, int):
                    regs_now[dst] = _alu(code_op, state[dst], operand, bits)
                else:
                    regs_now[dst] = None
            nexts = [i + 1]
        elif cls == LDX:
            base = state[src] if src < 11 else None
            size = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}[op & 0x18]
            if dst < 11:
                regs_now[dst] = None
                if isinstance(base, tuple) and base[0] == "kconfig" and off == 0 \
                        and isinstance(base[1], int) and op & 0xE0 == 0x60:  # plain load
                    regs_now[dst] = base[1] & ((1 << (size * 8)) - 1)
            nexts = [i + 1]
        elif cls == LD:
            if dst < 11:
                regs_now[dst] = None
            nexts = [i + 1]
        elif cls in (JMP, JMP32):
            code_op = op & 0xF0
            if code_op == 0x90:  # exit
                nexts = []
            elif code_op == 0x80:  # a call: r0-r5 are the callee's
                for r in range(6):
                    regs_now[r] = None
                nexts = [i + 1]
            elif code_op == 0x00:  # goto (JMP32's gotol takes imm)
                nexts = [i + 1 + (imm if cls == JMP32 else off)]
            elif code_op == 0xE0:  # may_goto: either way
                nexts = [i + 1, i + 1 + off]
            else:
                bits = 64 if cls == JMP else 32
                a = state[dst] if dst < 11 else None
                b = (state[src] if src < 11 else None) if op & 0x08 else imm
                taken = _compare(code_op, a, b, bits) \
                    if isinstance(a, int) and isinstance(b, int) else None
                nexts = [i + 1 + off] if taken else [i + 1] if taken is False else \
                    [i + 1, i + 1 + off]
        else:  # ST, STX: memory only (an atomic fetch writes a register: forget it)
            if cls == STX and op & 0xE0 == 0xC0 and imm & 0x01:
                regs_now[src if src < 11 else 0] = None
                regs_now[0] = None
            nexts = [i + 1]
        after = tuple(regs_now)
        for j in nexts:
            if not 0 <= j < n:
                continue
            before = states.get(j)
            merged = after if before is None else _meet(before, after)
            if merged != before:
                states[j] = merged
                todo.append(j)
    # what the context is used for, read off the final states (an intermediate state on
    # the way to them may have known more than every path agrees on)
    for i, state in states.items():
        if i >= n:
            continue
        op, regs, off, _imm = struct.unpack_from("<BBhi", code, i * 8)
        dst, src = regs & 0xF, regs >> 4
        if op & 7 == LDX and src < 11:
            if state[src] == CTX:
                reads.add((off, {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}[op & 0x18]))
            elif isinstance(state[src], tuple) and state[src][0] == "ctx+":
                moved.add(i)
        elif op == 0x85 and src == 1:  # a bpf-to-bpf call: does the callee get the context?
            passed = frozenset(r for r in range(1, 6) if state[r] == CTX)
            if passed:
                calls[i] = passed
    live = set(states)
    live |= {i + 1 for i in states if i + 1 < n and code[i * 8] == 0x18}  # second halves
    return Flow({i for i in live if i < n}, reads, calls, moved)
