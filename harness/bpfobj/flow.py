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

LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
State = tuple[int | None, ...]  # r0..r10
_UNKNOWN: State = (None,) * 11


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
           0x60: a << shift, 0x70: a >> shift, 0x80: -a, 0xA0: a ^ b}.get(op)
    return None if out is None else out & mask


def _meet(a: State, b: State) -> State:
    return tuple(x if x == y else None for x, y in zip(a, b, strict=True))


def live_instructions(code: bytes, constants: Mapping[int, int] | None = None) -> set[int]:
    """Indexes (in 8-byte slots) of the instructions that can run when the function is
    entered at slot 0. constants: slot -> the value libbpf puts there (into a MOV's or a
    64-bit load's immediate)."""
    consts = constants or {}
    n = len(code) // 8
    states: dict[int, State] = {0: _UNKNOWN}
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
            if i in consts:
                value: int | None = consts[i] & _M64
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
            if i in consts:
                operand: int | None = consts[i]
            else:
                operand = (state[src] if src < 11 else None) if from_reg else imm
            if dst < 11:
                if code_op == 0xB0 and off == 0:  # mov
                    regs_now[dst] = None if operand is None else (
                        operand & _M64 if bits == 64 else operand & _M32)
                elif code_op == 0xD0 or off:  # byte swaps, sign-extending forms
                    regs_now[dst] = None
                elif state[dst] is not None and operand is not None:
                    regs_now[dst] = _alu(code_op, state[dst] or 0, operand, bits)
                else:
                    regs_now[dst] = None
            nexts = [i + 1]
        elif cls in (LDX, LD):
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
                taken = _compare(code_op, a, b, bits) if a is not None and b is not None \
                    else None
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
    live = set(states)
    live |= {i + 1 for i in states if i + 1 < n and code[i * 8] == 0x18}  # second halves
    return {i for i in live if i < n}
