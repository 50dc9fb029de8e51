"""AArch64 (AAPCS64, on Linux, macOS and Windows)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import capstone
from capstone import arm64_const as A

from ftaudit.inspect.image import TLS_POINTER
from ftaudit.inspect.walk.machine import MASK64, Machine, State, Walk, mask_bits, to_signed
from ftaudit.inspect.walk.memory import Value, vec_int, vec_join, vec_slice

_ARM64_SIZES = {"x": 8, "w": 4, "q": 16, "d": 8, "s": 4, "h": 2, "b": 1, "v": 16}


def _arm64_reg(name: str) -> tuple[str, int]:
    """Register name -> (parent, size in bytes); zero registers have parent 'zr'."""
    if name in ("xzr", "wzr"):
        return "zr", 8 if name == "xzr" else 4
    if name in ("sp", "wsp"):
        return "sp", 8 if name == "sp" else 4
    if name in ("fp", "x29"):
        return "x29", 8
    if name in ("lr", "x30"):
        return "x30", 8
    kind, num = name[0], name[1:]
    if kind in ("x", "w") and num.isdigit():
        return f"x{num}", _ARM64_SIZES[kind]
    if kind in _ARM64_SIZES and num.isdigit():
        return f"v{num}", _ARM64_SIZES[kind]
    return name, 8


_ARM64_LOGIC: dict[int, Callable[[int, int], int]] = {
    A.ARM64_INS_AND: lambda a, b: a & b,
    A.ARM64_INS_ANDS: lambda a, b: a & b,
    A.ARM64_INS_ORR: lambda a, b: a | b,
    A.ARM64_INS_EOR: lambda a, b: a ^ b,
    A.ARM64_INS_BIC: lambda a, b: a & ~b,
    A.ARM64_INS_LSL: lambda a, b: a << (b & 63),
    A.ARM64_INS_LSR: lambda a, b: a >> (b & 63),
}
_ARM64_CAS = {
    getattr(A, f"ARM64_INS_CAS{order}{width}")
    for order in ("", "A", "AL", "L")
    for width in ("", "B", "H")
}
_ARM64_FLAG_SETTERS = {"adds", "subs", "ands", "bics", "negs", "adcs", "sbcs", "ngcs", "cmn"}


def _arm64_condition(cc: int, flags: tuple[str, int, int, int]) -> bool | None:
    kind, a, b, bits = flags
    mask = (1 << bits) - 1
    a, b = a & mask, b & mask
    if kind == "cmn":  # a + b: its zero and sign are exact; carry and overflow not kept
        total = (a + b) & mask
        signs = {A.ARM64_CC_EQ: total == 0, A.ARM64_CC_NE: total != 0}
        signs[A.ARM64_CC_MI] = bool(total >> (bits - 1) & 1)
        signs[A.ARM64_CC_PL] = not signs[A.ARM64_CC_MI]
        return signs.get(cc)
    result = (a - b) & mask if kind == "cmp" else a & b
    zero = result == 0
    negative = bool(result >> (bits - 1) & 1)
    carry = kind == "cmp" and a >= b  # no borrow; tst clears C
    less = to_signed(a, bits) < to_signed(b, bits) if kind == "cmp" else negative
    table = {
        A.ARM64_CC_EQ: zero,
        A.ARM64_CC_NE: not zero,
        A.ARM64_CC_HS: carry,
        A.ARM64_CC_LO: not carry,
        A.ARM64_CC_HI: carry and not zero,
        A.ARM64_CC_LS: not carry or zero,
        A.ARM64_CC_MI: negative,
        A.ARM64_CC_PL: not negative,
        A.ARM64_CC_LT: less,
        A.ARM64_CC_GE: not less,
        A.ARM64_CC_GT: not less and not zero,
        A.ARM64_CC_LE: less or zero,
    }
    return table.get(cc)


class Arm64(Machine):
    sp = "sp"
    ret_reg = "x0"
    callee_saved = (*(f"x{i}" for i in range(19, 30)), "sp")
    arg_regs = ("x0", "x1", "x2", "x3", "x4", "x5")
    clobbered = (
        *(f"x{i}" for i in range(19)),
        "x30",
        *(f"v{i}" for i in range(8)),
        *(f"v{i}" for i in range(16, 32)),
    )

    def _disassembler(self) -> capstone.Cs:
        return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)

    def push_return(self, state: State, ret: int) -> None:
        state.regs["x30"] = ret

    def pop_return(self, state: State) -> None:
        pass

    def reg_get(self, state: State, insn: Any, reg_id: int) -> Value:
        parent, size = _arm64_reg(insn.reg_name(reg_id))
        if parent == "zr":
            return 0
        v = state.regs.get(parent)
        if isinstance(v, bytes):
            return vec_slice(v, 0, 16) if size == 16 else vec_int(v, size)
        if isinstance(v, int) and size < 8:
            return v & mask_bits(8 * size)
        return v

    def reg_set(self, state: State, insn: Any, reg_id: int, value: Value) -> None:
        parent, size = _arm64_reg(insn.reg_name(reg_id))
        if parent == "zr":
            return
        if parent.startswith("v"):
            if isinstance(value, int):
                value = (value & mask_bits(8 * size)).to_bytes(size, "little") + bytes(16 - size)
            elif isinstance(value, bytes):
                value = vec_join(vec_slice(value, 0, size), bytes(16 - size))
        elif isinstance(value, bytes):
            value = vec_int(value, size)
        if value is None:
            state.regs.pop(parent, None)
        else:
            state.regs[parent] = value & mask_bits(8 * size) if isinstance(value, int) else value

    def _indirect_call(self, insn: Any) -> bool:
        return bool(insn.id == A.ARM64_INS_BLR)

    def _compare_and_swap(self, state: State, insn: Any) -> None:
        """`cas Xs, Xt, [Xn]`: Xt is stored where Xs matches; Xs gets the old value
        either way (PyO3's once-per-interpreter check on the module's first import)."""
        expected_op, new_op, mem_op = insn.operands
        size = {"b": 1, "h": 2}.get(insn.mnemonic[-1], self.reg_size(insn, expected_op.reg))
        addr = self.mem_address(state, insn, mem_op, False)
        old = state.mem.read_int(addr, size) if addr is not None else None
        expected = self.reg_get(state, insn, expected_op.reg)
        if addr is not None:
            if isinstance(old, int) and isinstance(expected, int):
                if old == expected & mask_bits(8 * size):
                    state.mem.write(addr, size, self.reg_get(state, insn, new_op.reg))
            else:
                state.mem.clobber(addr, size)
        self.reg_set(state, insn, expected_op.reg, old)

    def _flow(self, insn: Any) -> tuple[list[int], bool]:
        iid = insn.id
        if iid in (A.ARM64_INS_RET, A.ARM64_INS_BR):
            return [], False
        if iid in (
            A.ARM64_INS_BL,
            A.ARM64_INS_B,
            A.ARM64_INS_CBZ,
            A.ARM64_INS_CBNZ,
            A.ARM64_INS_TBZ,
            A.ARM64_INS_TBNZ,
        ):
            unconditional = iid == A.ARM64_INS_B and insn.cc in (A.ARM64_CC_INVALID, A.ARM64_CC_AL)
            return [int(insn.operands[-1].imm)], not unconditional
        return [], True

    def _taken(self, state: State, insn: Any) -> bool | None:
        """Whether a conditional branch is taken, when its inputs are known."""
        iid, ops = insn.id, insn.operands
        if iid in (A.ARM64_INS_CBZ, A.ARM64_INS_CBNZ):
            v = self.reg_get(state, insn, ops[0].reg)
            return None if not isinstance(v, int) else bool((v == 0) == (iid == A.ARM64_INS_CBZ))
        if iid in (A.ARM64_INS_TBZ, A.ARM64_INS_TBNZ):
            v = self.reg_get(state, insn, ops[0].reg)
            if not isinstance(v, int):
                return None
            bit_clear = not (v >> int(ops[1].imm)) & 1
            return bool(bit_clear == (iid == A.ARM64_INS_TBZ))
        return _arm64_condition(insn.cc, state.flags) if state.flags else None

    def reg_size(self, insn: Any, reg_id: int) -> int:
        return _arm64_reg(insn.reg_name(reg_id))[1]

    def operand(self, state: State, insn: Any, op: Any) -> Value:
        if op.type == A.ARM64_OP_IMM:
            imm = int(op.imm)
            if op.shift.type == A.ARM64_SFT_LSL:
                imm <<= op.shift.value
            return imm & MASK64
        if op.type == A.ARM64_OP_REG:
            v = self.reg_get(state, insn, op.reg)
            if isinstance(v, int) and op.shift.type == A.ARM64_SFT_LSL:
                v = (v << op.shift.value) & MASK64
            elif isinstance(v, int) and op.shift.type == A.ARM64_SFT_LSR:
                v >>= op.shift.value
            elif op.shift.type not in (A.ARM64_SFT_INVALID, A.ARM64_SFT_LSL):
                return None  # arithmetic shifts and rotations are not followed
            return v
        return None

    def mem_address(self, state: State, insn: Any, op: Any, post: bool) -> int | None:
        if self.image.abi == "arm64-win" and insn.reg_name(op.mem.base) == "x18":
            # Windows on ARM64 keeps the thread's TEB in x18, which no code may change;
            # [x18, #0x58] is its array of TLS blocks, as gs:[0x58] is on x64 (MSVC's
            # thread-safe statics compare a guard with a TLS epoch). Nothing else of the
            # TEB is modelled.
            plain = not post and not op.mem.index and op.mem.disp == 0x58
            return TLS_POINTER if plain and self.image.tls_template is not None else None
        base = self.reg_get(state, insn, op.mem.base)
        if not isinstance(base, int):
            return None
        addr = base if post else base + op.mem.disp
        if op.mem.index:
            index = self.reg_get(state, insn, op.mem.index)
            if not isinstance(index, int):
                return None
            addr += index << (op.shift.value if op.shift.type == A.ARM64_SFT_LSL else 0)
        return addr & MASK64

    def _access_size(self, insn: Any, reg_op: Any) -> int:
        mnemonic = insn.mnemonic
        if mnemonic.endswith("b") and mnemonic[:3] in ("str", "ldr", "stu", "ldu"):
            return 1
        if mnemonic.endswith("h") and mnemonic[:3] in ("str", "ldr", "stu", "ldu"):
            return 2
        if mnemonic == "ldrsw":
            return 4
        return self.reg_size(insn, reg_op.reg)

    def _load_literal(self, state: State, insn: Any) -> bool:
        """`ldr x16, #0x8048`: a load from a PC-relative address capstone gives as an
        immediate. Apple's linker rewrites `adrp; ldr [x, #off]` pairs it can prove near
        into this form, in the stubs (`nop; ldr x16, lit; br x16`) and at GOT loads."""
        ops = insn.operands
        if (
            insn.id not in (A.ARM64_INS_LDR, A.ARM64_INS_LDRSW)
            or len(ops) != 2
            or ops[0].type != A.ARM64_OP_REG
            or ops[1].type != A.ARM64_OP_IMM
        ):
            return False
        addr = int(ops[1].imm) & MASK64
        size = 4 if insn.id == A.ARM64_INS_LDRSW else self.reg_size(insn, ops[0].reg)
        v: Value
        if size == 16:
            v = state.mem.read_vector(addr, 16)
        else:
            v = state.mem.read_int(addr, size, signed=insn.id == A.ARM64_INS_LDRSW)
        self.reg_set(state, insn, ops[0].reg, v)
        return True

    def _load_store(self, state: State, insn: Any) -> bool:
        ops = insn.operands
        mem_idx = next((i for i, op in enumerate(ops) if op.type == A.ARM64_OP_MEM), None)
        if mem_idx is None:
            return self._load_literal(state, insn)
        mem_op = ops[mem_idx]
        regs = ops[:mem_idx]
        post = insn.writeback and len(ops) > mem_idx + 1
        addr = self.mem_address(state, insn, mem_op, post)
        is_store = insn.mnemonic.startswith("st")
        size = self._access_size(insn, regs[0])
        for i, reg_op in enumerate(regs):
            a = addr + i * size if addr is not None else None
            v: Value
            if is_store:
                v = self.reg_get(state, insn, reg_op.reg)
                if a is not None:
                    state.mem.write(a, size, v)
            else:
                if a is None:
                    v = None
                elif size == 16:
                    v = state.mem.read_vector(a, 16)
                else:
                    v = state.mem.read_int(a, size, signed=insn.mnemonic.startswith("ldrs"))
                self.reg_set(state, insn, reg_op.reg, v)
        if insn.writeback:
            base = self.reg_get(state, insn, mem_op.mem.base)
            if isinstance(base, int):
                delta = int(ops[mem_idx + 1].imm) if post else mem_op.mem.disp
                parent = _arm64_reg(insn.reg_name(mem_op.mem.base))[0]
                state.regs[parent] = (base + delta) & MASK64
        return True

    def step(self, state: State, insn: Any, todo: list[State], result: Walk) -> bool:
        iid = insn.id
        ops = insn.operands
        nxt = insn.address + insn.size
        if iid == A.ARM64_INS_BL:
            self.call(state, int(ops[0].imm), nxt, result)
            return True
        if iid == A.ARM64_INS_BLR:
            self.call(state, self.reg_get(state, insn, ops[0].reg), nxt, result)
            return True
        if iid == A.ARM64_INS_B and insn.cc in (A.ARM64_CC_INVALID, A.ARM64_CC_AL):
            return self.jump(state, int(ops[0].imm), result)
        if iid == A.ARM64_INS_BR:
            return self.jump(state, self.reg_get(state, insn, ops[0].reg), result)
        if iid == A.ARM64_INS_RET:
            return self._return(state, result)
        if iid in (
            A.ARM64_INS_B,
            A.ARM64_INS_CBZ,
            A.ARM64_INS_CBNZ,
            A.ARM64_INS_TBZ,
            A.ARM64_INS_TBNZ,
        ):
            self.branch(state, int(ops[-1].imm), nxt, todo, self._taken(state, insn))
            return True
        state.pc = nxt
        if iid in (A.ARM64_INS_CMP, A.ARM64_INS_TST, A.ARM64_INS_CMN) and len(ops) == 2:
            a, b = self.operand(state, insn, ops[0]), self.operand(state, insn, ops[1])
            bits = 8 * self.reg_size(insn, ops[0].reg)
            kind = {A.ARM64_INS_CMP: "cmp", A.ARM64_INS_TST: "test"}.get(iid, "cmn")
            known = isinstance(a, int) and isinstance(b, int)
            state.flags = (kind, a, b, bits) if known else None  # type: ignore[assignment]
            return True
        if insn.mnemonic in _ARM64_FLAG_SETTERS or insn.mnemonic.startswith(("ccm", "fcm")):
            state.flags = None
        if iid in _ARM64_CAS and len(ops) == 3:
            self._compare_and_swap(state, insn)
            return True
        if iid in (A.ARM64_INS_ADRP, A.ARM64_INS_ADR):
            self.reg_set(state, insn, ops[0].reg, int(ops[1].imm))
        elif iid in (A.ARM64_INS_ADD, A.ARM64_INS_SUB) and len(ops) == 3:
            a, b = self.operand(state, insn, ops[1]), self.operand(state, insn, ops[2])
            if isinstance(a, int) and isinstance(b, int):
                self.reg_set(state, insn, ops[0].reg, a + b if iid == A.ARM64_INS_ADD else a - b)
            else:
                self.reg_set(state, insn, ops[0].reg, None)
        elif iid in (A.ARM64_INS_MOV, A.ARM64_INS_MOVZ) and len(ops) == 2:
            self.reg_set(state, insn, ops[0].reg, self.operand(state, insn, ops[1]))
        elif iid in _ARM64_LOGIC and len(ops) == 3:
            a, b = self.operand(state, insn, ops[1]), self.operand(state, insn, ops[2])
            v: Value = (
                _ARM64_LOGIC[iid](a, b) if isinstance(a, int) and isinstance(b, int) else None
            )
            self.reg_set(state, insn, ops[0].reg, v)
            if iid == A.ARM64_INS_ANDS:
                bits = 8 * self.reg_size(insn, ops[0].reg)
                state.flags = ("test", a, b, bits) if v is not None else None  # type: ignore[assignment]
        elif iid == A.ARM64_INS_MVN and len(ops) == 2:
            neg = self.operand(state, insn, ops[1])
            self.reg_set(state, insn, ops[0].reg, ~neg & MASK64 if isinstance(neg, int) else None)
        elif iid in (A.ARM64_INS_CSET, A.ARM64_INS_CSEL) and ops:
            # `cset w8, eq` and `csel x0, x1, x2, ne` after a known comparison.
            holds = _arm64_condition(insn.cc, state.flags) if state.flags else None
            chosen: Value = None
            if holds is not None and iid == A.ARM64_INS_CSET:
                chosen = int(holds)
            elif holds is not None:
                chosen = self.operand(state, insn, ops[1] if holds else ops[2])
            self.reg_set(state, insn, ops[0].reg, chosen)
        elif iid == A.ARM64_INS_MOVN and len(ops) == 2:
            v = self.operand(state, insn, ops[1])
            self.reg_set(state, insn, ops[0].reg, ~v & MASK64 if isinstance(v, int) else None)
        elif iid == A.ARM64_INS_MOVK and len(ops) == 2:
            old = self.reg_get(state, insn, ops[0].reg)
            shift = ops[1].shift.value if ops[1].shift.type == A.ARM64_SFT_LSL else 0
            if isinstance(old, int):
                v = (old & ~(0xFFFF << shift)) | ((int(ops[1].imm) & 0xFFFF) << shift)
                self.reg_set(state, insn, ops[0].reg, v)
            else:
                self.reg_set(state, insn, ops[0].reg, None)
        elif (insn.mnemonic.startswith(("ld", "st")) and self._load_store(state, insn)) or iid in (
            A.ARM64_INS_NOP,
            A.ARM64_INS_HINT,
            A.ARM64_INS_CMP,
            A.ARM64_INS_TST,
            A.ARM64_INS_CMN,
        ):
            pass
        else:
            try:
                _, written = insn.regs_access()
            except capstone.CsError:
                written = [op.reg for op in ops[:1] if op.type == A.ARM64_OP_REG]
            for reg in written:
                parent = _arm64_reg(insn.reg_name(reg))[0]
                if parent not in ("nzcv", "zr"):
                    state.regs.pop(parent, None)
        return True
