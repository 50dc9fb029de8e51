"""x86-64 (System V and Microsoft x64) and 32-bit x86 (cdecl)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import capstone
from capstone import x86_const as X

from ftaudit.inspect.image import TLS_POINTER
from ftaudit.inspect.walk.machine import MASK64, Machine, State, Walk, as_int, mask_bits, to_signed
from ftaudit.inspect.walk.memory import Partial, Value, vec_int, vec_join, vec_slice


def _x86_parents() -> dict[str, tuple[str, int]]:
    """Sub-register name -> (64-bit parent, width in bits)."""
    out: dict[str, tuple[str, int]] = {}
    for r in "abcd":
        parent = f"r{r}x"
        out.update({parent: (parent, 64), f"e{r}x": (parent, 32), f"{r}x": (parent, 16)})
        out.update({f"{r}l": (parent, 8), f"{r}h": (parent, -8)})
    for r in ("si", "di", "bp", "sp"):
        parent = f"r{r}"
        out.update({parent: (parent, 64), f"e{r}": (parent, 32), r: (parent, 16)})
        out[f"{r}l"] = (parent, 8)
    for i in range(8, 16):
        parent = f"r{i}"
        out.update({parent: (parent, 64), f"r{i}d": (parent, 32), f"r{i}w": (parent, 16)})
        out[f"r{i}b"] = (parent, 8)
    for i in range(32):
        out[f"xmm{i}"] = (f"xmm{i}", 128)
        out[f"ymm{i}"] = (f"xmm{i}", 256)
        out[f"zmm{i}"] = (f"xmm{i}", 512)
    return out


_X86_REGS = _x86_parents()
_X86_VECTOR_MOVES = {
    X.X86_INS_MOVDQA,
    X.X86_INS_MOVDQU,
    X.X86_INS_MOVAPS,
    X.X86_INS_MOVUPS,
    X.X86_INS_MOVAPD,
    X.X86_INS_MOVUPD,
    X.X86_INS_VMOVDQA,
    X.X86_INS_VMOVDQU,
    X.X86_INS_VMOVAPS,
    X.X86_INS_VMOVUPS,
    X.X86_INS_VMOVAPD,
    X.X86_INS_VMOVUPD,
    X.X86_INS_LDDQU,
    X.X86_INS_VMOVDQA64,
    X.X86_INS_VMOVDQU64,
    X.X86_INS_VMOVDQA32,
    X.X86_INS_VMOVDQU32,
    X.X86_INS_VMOVDQU8,
}
_X86_ZERO_IDIOMS = {
    X.X86_INS_PXOR,
    X.X86_INS_XORPS,
    X.X86_INS_XORPD,
    X.X86_INS_VPXOR,
    X.X86_INS_VXORPS,
    X.X86_INS_VPXORD,
    X.X86_INS_VPXORQ,
}
_X86_NOPS = {
    X.X86_INS_NOP,
    X.X86_INS_ENDBR64,
    X.X86_INS_UD2,
    X.X86_INS_PAUSE,
    X.X86_INS_PREFETCHT0,
}
_X86_ARITH: dict[int, Callable[[int, int], int]] = {
    X.X86_INS_ADD: lambda a, b: a + b,
    X.X86_INS_SUB: lambda a, b: a - b,
    X.X86_INS_AND: lambda a, b: a & b,
    X.X86_INS_OR: lambda a, b: a | b,
    X.X86_INS_XOR: lambda a, b: a ^ b,
    X.X86_INS_SHL: lambda a, b: a << (b & 63),
    X.X86_INS_SHR: lambda a, b: a >> (b & 63),
    X.X86_INS_IMUL: lambda a, b: a * b,
}


# MSVC's thread-safe statics: `inc eax` gives the next epoch.
_X86_UNARY: dict[int, Callable[[int], int]] = {
    X.X86_INS_INC: lambda a: a + 1,
    X.X86_INS_DEC: lambda a: a - 1,
    X.X86_INS_NEG: lambda a: -a,
    X.X86_INS_NOT: lambda a: ~a,
}

_X86_FLAGS_KEPT = {
    X.X86_INS_MOV,
    X.X86_INS_MOVABS,
    X.X86_INS_LEA,
    X.X86_INS_MOVZX,
    X.X86_INS_MOVSX,
    X.X86_INS_MOVSXD,
    X.X86_INS_PUSH,
    X.X86_INS_POP,
    X.X86_INS_NOP,
    X.X86_INS_ENDBR64,
    X.X86_INS_MOVQ,
    X.X86_INS_MOVD,
    *_X86_VECTOR_MOVES,
}


def _x86_condition(iid: int, flags: tuple[str, int, int, int]) -> bool | None:
    """Whether a Jcc is taken after `cmp a, b` / `test a, b` with known operands."""
    kind, a, b, bits = flags
    mask = (1 << bits) - 1
    a, b = a & mask, b & mask
    result = (a - b) & mask if kind == "cmp" else a & b
    zero = result == 0
    sign = bool(result >> (bits - 1) & 1)
    below = kind == "cmp" and a < b
    less = to_signed(a, bits) < to_signed(b, bits) if kind == "cmp" else sign
    table = {
        X.X86_INS_JE: zero,
        X.X86_INS_JNE: not zero,
        X.X86_INS_JB: below,
        X.X86_INS_JAE: not below,
        X.X86_INS_JBE: below or zero,
        X.X86_INS_JA: not below and not zero,
        X.X86_INS_JL: less,
        X.X86_INS_JGE: not less,
        X.X86_INS_JLE: less or zero,
        X.X86_INS_JG: not less and not zero,
        X.X86_INS_JS: sign,
        X.X86_INS_JNS: not sign,
    }
    return table.get(iid)


_CONDITIONS = ("E", "NE", "B", "AE", "BE", "A", "L", "GE", "LE", "G", "S", "NS")
# SETcc and CMOVcc -> the Jcc that tests the same condition.
_X86_SETCC = {getattr(X, f"X86_INS_SET{c}"): getattr(X, f"X86_INS_J{c}") for c in _CONDITIONS}
_X86_CMOVCC = {getattr(X, f"X86_INS_CMOV{c}"): getattr(X, f"X86_INS_J{c}") for c in _CONDITIONS}


class X86(Machine):
    sp = "rsp"
    ret_reg = "rax"
    callee_saved: tuple[str, ...] = ("rbx", "rbp", "r12", "r13", "r14", "r15", "rsp")
    arg_regs: tuple[str, ...] = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
    clobbered: tuple[str, ...] = (
        "rax",
        "rcx",
        "rdx",
        "rsi",
        "rdi",
        "r8",
        "r9",
        "r10",
        "r11",
        *(f"xmm{i}" for i in range(32)),
    )

    def _disassembler(self) -> capstone.Cs:
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)

    word = 8  # bytes a push moves the stack by

    def push_return(self, state: State, ret: int) -> None:
        sp = as_int(state.regs.get("rsp"))
        if sp is not None:
            state.regs["rsp"] = sp - self.word
            state.mem.write(sp - self.word, self.word, ret)

    def pop_return(self, state: State) -> None:
        sp = as_int(state.regs.get("rsp"))
        state.regs["rsp"] = sp + self.word if sp is not None else None

    # operands

    def reg_get(self, state: State, reg_id: int, insn: Any) -> Value:
        name = insn.reg_name(reg_id)
        if name == "rip":
            return int(insn.address + insn.size)
        parent, width = _X86_REGS.get(name, (name, 64))
        value = state.regs.get(parent)
        if isinstance(value, bytes):
            if width >= 128:
                return vec_slice(value, 0, width // 8)
            return vec_int(value, width // 8)
        if value is None:
            return None
        if width == -8:
            return (value >> 8) & 0xFF
        return value & mask_bits(width) if width < 64 else value

    def reg_set(self, state: State, reg_id: int, insn: Any, value: Value) -> None:
        name = insn.reg_name(reg_id)
        parent, width = _X86_REGS.get(name, (name, 64))
        if parent.startswith("xmm"):
            if isinstance(value, int):
                value = value.to_bytes(16, "little") if value >= 0 else None
            state.regs[parent] = value
            return
        if isinstance(value, bytes):
            value = vec_int(value, 8)
        if value is None:
            state.regs.pop(parent, None)
        elif width in (64, 32):
            state.regs[parent] = value & mask_bits(width)  # 32-bit writes zero the top half
        else:
            old = state.regs.get(parent)
            if isinstance(old, int) and width == -8:
                state.regs[parent] = (old & ~0xFF00) | ((value & 0xFF) << 8)
            elif isinstance(old, int):
                state.regs[parent] = (old & ~mask_bits(width)) | (value & mask_bits(width))
            elif width in (8, 16):
                # `mov r8b, 1` over an unknown r8 (a bool argument): its low bytes are
                # known, and kept as a Partial.
                n = width // 8
                low = (value & mask_bits(width)).to_bytes(n, "little")
                rest = (
                    vec_slice(old, n, 8)
                    if isinstance(old, bytes)
                    else Partial(bytes(8 - n), range(8 - n))
                )
                joined = vec_join(low, rest)
                state.regs[parent] = (
                    joined if isinstance(joined, Partial) else int.from_bytes(joined, "little")
                )
            else:
                state.regs.pop(parent, None)

    def address(self, state: State, insn: Any, op: Any) -> int | None:
        mem = op.mem
        if mem.segment != 0:
            # Thread-local storage; on Windows x64, gs:[0x58] is the thread's array of
            # TLS blocks (MSVC's thread-safe statics compare a guard with a TLS epoch).
            windows_tls = (
                mem.segment == X.X86_REG_GS
                and self.image.abi == "win64"
                and self.image.tls_template is not None
                and mem.base == mem.index == 0
                and mem.disp == 0x58
            )
            return TLS_POINTER if windows_tls else None
        addr = mem.disp
        if mem.base != 0:
            base = self.reg_get(state, mem.base, insn)
            if not isinstance(base, int):
                return None
            addr += base
        if mem.index != 0:
            index = self.reg_get(state, mem.index, insn)
            if not isinstance(index, int):
                return None
            addr += index * mem.scale
        return int(addr) & MASK64

    def get(self, state: State, insn: Any, op: Any) -> Value:
        if op.type == X.X86_OP_IMM:
            return int(op.imm) & mask_bits(8 * op.size) if op.size else int(op.imm) & MASK64
        if op.type == X.X86_OP_REG:
            return self.reg_get(state, op.reg, insn)
        if op.type == X.X86_OP_MEM:
            addr = self.address(state, insn, op)
            if addr is None:
                return None
            if op.size > 8:
                return state.mem.read_vector(addr, op.size)
            return state.mem.read_int(addr, op.size)
        return None

    def put(self, state: State, insn: Any, op: Any, value: Value) -> None:
        if op.type == X.X86_OP_REG:
            self.reg_set(state, op.reg, insn, value)
        elif op.type == X.X86_OP_MEM:
            addr = self.address(state, insn, op)
            if addr is not None:
                state.mem.write(addr, op.size, value)

    def _clobber_written(self, state: State, insn: Any) -> None:
        try:
            _, written = insn.regs_access()
        except capstone.CsError:
            written = []
        for reg in written:
            name = insn.reg_name(reg)
            parent = _X86_REGS.get(name, (name, 64))[0]
            if parent not in ("rip", "rflags"):
                state.regs.pop(parent, None)
        for op in insn.operands:
            if op.type == X.X86_OP_MEM and op.access & capstone.CS_AC_WRITE:
                addr = self.address(state, insn, op)
                if addr is not None:
                    state.mem.clobber(addr, max(op.size, 1))

    def _indirect_call(self, insn: Any) -> bool:
        return bool(insn.id == X.X86_INS_CALL and insn.operands[0].type != X.X86_OP_IMM)

    def _compare_exchange(self, state: State, insn: Any) -> None:
        """`cmpxchg [m], r`: r is stored where the accumulator matches; the accumulator
        ends up holding the old value either way (PyO3's once-per-interpreter check)."""
        dst, src = insn.operands
        size = dst.size or 8
        acc = {1: X.X86_REG_AL, 2: X.X86_REG_AX, 4: X.X86_REG_EAX}.get(size, X.X86_REG_RAX)
        expected, old = self.reg_get(state, acc, insn), self.get(state, insn, dst)
        if isinstance(expected, int) and isinstance(old, int):
            state.flags = ("cmp", expected, old, 8 * size)
            if expected == old:
                self.put(state, insn, dst, self.get(state, insn, src))
        else:
            state.flags = None
            if dst.type == X.X86_OP_MEM:
                addr = self.address(state, insn, dst)
                if addr is not None:
                    state.mem.clobber(addr, size)
            else:
                self.put(state, insn, dst, None)
        self.reg_set(state, acc, insn, old)

    def _flow(self, insn: Any) -> tuple[list[int], bool]:
        iid = insn.id
        if iid in (X.X86_INS_RET, X.X86_INS_RETF, X.X86_INS_HLT, X.X86_INS_UD2, X.X86_INS_INT3):
            return [], False
        branch = iid in (X.X86_INS_CALL, X.X86_INS_JMP) or capstone.CS_GRP_JUMP in insn.groups
        if not branch or not insn.operands:
            return [], True
        op = insn.operands[0]
        target: int | None = None
        if op.type == X.X86_OP_IMM:
            target = int(op.imm)
        elif op.type == X.X86_OP_MEM and op.mem.base == X.X86_REG_RIP and op.mem.index == 0:
            target = self.image.relocated.get(insn.address + insn.size + op.mem.disp)
        return ([target] if target is not None else []), iid != X.X86_INS_JMP

    # one instruction

    def step(self, state: State, insn: Any, todo: list[State], result: Walk) -> bool:
        iid = insn.id
        ops = insn.operands
        nxt = insn.address + insn.size
        if iid == X.X86_INS_CALL:
            self.call(state, self.get(state, insn, ops[0]), nxt, result)
            return True
        if iid == X.X86_INS_JMP:
            return self.jump(state, self.get(state, insn, ops[0]), result)
        if iid in (X.X86_INS_RET, X.X86_INS_RETF):
            return self._return(state, result)
        if capstone.CS_GRP_JUMP in insn.groups:  # a conditional branch
            taken = _x86_condition(iid, state.flags) if state.flags else None
            self.branch(state, self.get(state, insn, ops[0]) if ops else None, nxt, todo, taken)
            return True
        if iid in (X.X86_INS_HLT, X.X86_INS_INT3, X.X86_INS_UD2):
            return False
        state.pc = nxt
        if iid in (X.X86_INS_CMP, X.X86_INS_TEST) and len(ops) == 2:
            a, b = self.get(state, insn, ops[0]), self.get(state, insn, ops[1])
            known = isinstance(a, int) and isinstance(b, int)
            kind = "cmp" if iid == X.X86_INS_CMP else "test"
            state.flags = (kind, a, b, 8 * (ops[0].size or 8)) if known else None  # type: ignore[assignment]
            return True
        if iid == X.X86_INS_CMPXCHG and len(ops) == 2:
            self._compare_exchange(state, insn)
            return True
        if iid in _X86_SETCC or iid in _X86_CMOVCC:
            # `cmp byte [flag], 0; sete sil` turns a flag into Py_MOD_GIL_NOT_USED (1).
            cond = _X86_SETCC.get(iid) or _X86_CMOVCC[iid]
            holds = _x86_condition(cond, state.flags) if state.flags else None
            if iid in _X86_SETCC:
                self.put(state, insn, ops[0], None if holds is None else int(holds))
            else:
                # A 32-bit CMOVcc zeroes the upper half even when it does not move.
                chosen = None if holds is None else ops[1] if holds else ops[0]
                self.put(state, insn, ops[0], self.get(state, insn, chosen) if chosen else None)
            return True
        if iid not in _X86_FLAGS_KEPT:
            state.flags = None
        if iid in _X86_NOPS:
            return True
        if iid in (X.X86_INS_MOV, X.X86_INS_MOVABS) and len(ops) == 2:
            self.put(state, insn, ops[0], self.get(state, insn, ops[1]))
        elif iid == X.X86_INS_LEA:
            self.put(state, insn, ops[0], self.address(state, insn, ops[1]))
        elif iid in (X.X86_INS_MOVZX, X.X86_INS_MOVSX, X.X86_INS_MOVSXD):
            v = self.get(state, insn, ops[1])
            if isinstance(v, int) and iid != X.X86_INS_MOVZX:
                bits = 8 * ops[1].size
                v = v - (1 << bits) if v >> (bits - 1) & 1 else v
                v &= MASK64
            self.put(state, insn, ops[0], v)
        elif iid in _X86_ARITH and len(ops) == 2:
            if (
                iid == X.X86_INS_XOR
                and ops[0].type == ops[1].type == X.X86_OP_REG
                and (ops[0].reg == ops[1].reg)
            ):
                self.put(state, insn, ops[0], 0)
            else:
                a, b = self.get(state, insn, ops[0]), self.get(state, insn, ops[1])
                v = _X86_ARITH[iid](a, b) if isinstance(a, int) and isinstance(b, int) else None
                self.put(state, insn, ops[0], v & MASK64 if v is not None else None)
        elif iid in _X86_UNARY and len(ops) == 1:
            v = self.get(state, insn, ops[0])
            bits = 8 * (ops[0].size or 8)
            self.put(
                state,
                insn,
                ops[0],
                _X86_UNARY[iid](v) & mask_bits(bits) if isinstance(v, int) else None,
            )
        elif iid == X.X86_INS_PUSH:
            v = self.get(state, insn, ops[0])
            sp = as_int(state.regs.get("rsp"))
            if sp is not None:
                state.regs["rsp"] = sp - self.word
                state.mem.write(sp - self.word, self.word, v)
        elif iid == X.X86_INS_POP:
            sp = as_int(state.regs.get("rsp"))
            v = state.mem.read_int(sp, self.word) if sp is not None else None
            state.regs["rsp"] = sp + self.word if sp is not None else None
            self.put(state, insn, ops[0], v)
        elif iid == X.X86_INS_LEAVE:
            bp = as_int(state.regs.get("rbp"))
            state.regs["rbp"] = state.mem.read_int(bp, self.word) if bp is not None else None
            state.regs["rsp"] = bp + self.word if bp is not None else None
        elif iid in _X86_VECTOR_MOVES and len(ops) == 2:
            self.put(state, insn, ops[0], self.get(state, insn, ops[1]))
        elif (
            iid in _X86_ZERO_IDIOMS
            and len(ops) >= 2
            and ops[-1].type == X.X86_OP_REG
            and (ops[-1].reg == ops[-2].reg)
        ):
            self.put(state, insn, ops[0], bytes(16))
        elif iid in (X.X86_INS_MOVQ, X.X86_INS_MOVD, X.X86_INS_VMOVQ, X.X86_INS_VMOVD):
            v = self.get(state, insn, ops[1])
            if isinstance(v, bytes):
                v = vec_int(v, ops[0].size or 8)
            elif (
                isinstance(v, int)
                and ops[0].type == X.X86_OP_REG
                and insn.reg_name(ops[0].reg).startswith("xmm")
            ):
                v = (v & mask_bits(8 * (ops[1].size or 8))).to_bytes(16, "little")
            self.put(state, insn, ops[0], v)
        elif iid in (X.X86_INS_PUNPCKLQDQ, X.X86_INS_MOVLHPS, X.X86_INS_MOVHPS) and len(ops) == 2:
            a, b = self.get(state, insn, ops[0]), self.get(state, insn, ops[1])
            if isinstance(b, int):
                b = b.to_bytes(8, "little")
            v = (
                vec_join(vec_slice(a, 0, 8), vec_slice(b, 0, 8))
                if isinstance(a, bytes) and isinstance(b, bytes)
                else None
            )
            self.put(state, insn, ops[0], v)
        elif iid in (X.X86_INS_STOSQ, X.X86_INS_STOSD, X.X86_INS_MOVSQ, X.X86_INS_MOVSD) and (
            X.X86_PREFIX_REP in insn.prefix
        ):
            self._rep(state, insn, iid)
        else:
            self._clobber_written(state, insn)
        return True

    def _rep(self, state: State, insn: Any, iid: int) -> None:
        width = 8 if iid in (X.X86_INS_STOSQ, X.X86_INS_MOVSQ) else 4
        dst, count = as_int(state.regs.get("rdi")), as_int(state.regs.get("rcx"))
        if dst is None or count is None or count > 4096:
            self._clobber_written(state, insn)
            return
        if iid in (X.X86_INS_STOSQ, X.X86_INS_STOSD):
            v = as_int(state.regs.get("rax"))
            for i in range(count):
                state.mem.write(dst + i * width, width, v)
        else:
            src = as_int(state.regs.get("rsi"))
            for i in range(count):
                raw = state.mem.read_bytes(src + i * width, width) if src is not None else None
                state.mem.write(dst + i * width, width, raw)
            state.regs["rsi"] = src + count * width if src is not None else None
        state.regs["rdi"] = dst + count * width
        state.regs["rcx"] = 0


class X86_32(X86):  # noqa: N801 - the architecture's own name
    """32-bit x86 (i686), System V cdecl: arguments on the stack, eax/ecx/edx clobbered."""

    word = 4
    arg_regs = ()
    clobbered = ("rax", "rcx", "rdx", *(f"xmm{i}" for i in range(8)))
    callee_saved = ("rbx", "rbp", "rsi", "rdi", "rsp")

    def _disassembler(self) -> capstone.Cs:
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)

    def _args(self, state: State, at_entry: bool) -> list[int | None]:
        sp = as_int(state.regs.get("rsp"))
        if sp is None:
            return [None] * 4
        base = sp + (4 if at_entry else 0)  # past the return address once inside
        return [state.mem.read_int(base + 4 * i, 4) for i in range(4)]


class X86Win64(X86):
    """The Microsoft x64 calling convention: arguments in rcx, rdx, r8, r9."""

    callee_saved = ("rbx", "rbp", "rdi", "rsi", "r12", "r13", "r14", "r15", "rsp")
    arg_regs = ("rcx", "rdx", "r8", "r9")
    clobbered = ("rax", "rcx", "rdx", "r8", "r9", "r10", "r11", *(f"xmm{i}" for i in range(6)))
