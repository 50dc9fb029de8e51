"""A proof that a single-phase init function declares Py_MOD_GIL_NOT_USED last, read from
that function alone.

numpy's PyInit__multiarray_umath calls PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED)
just before `return m`, after initumath and a hundred other calls: more code than any
walk's budget covers. The interpreter reads the module's GIL flag once the init function
has returned, and the last call to the setter is the one that counts, so what the callees
did before it does not matter when, on every way out of the init function that returns a
module, the last thing done to that module was this call.

The proof reads the init function only, stepping over every call it makes, and does not
believe what it cannot know:

* Only registers are modelled. A load from the stack or from writable memory is unknown;
  only read-only data (and the stubs' import slots) read as the file holds them. A callee
  keeps the registers the calling convention says it keeps, and nothing else.
* The module is a token per call site of a module constructor, which may be NULL: a test
  of it against zero walks both ways, NULL on one side.
* Every branch whose outcome is not fixed by known values is taken both ways, and states
  meeting at an address are joined (a register on which they differ becomes unknown)
  until nothing changes, so every path is covered, loops included.
* A call to anything but the C API (a function of the binary, a pointer, another library)
  may call the setter again, so it undoes what an earlier setter call proved.

Every return must then give NULL, or a module whose last setter call was
Py_MOD_GIL_NOT_USED, and one at least must give a module. Anything else (a return of a
value not known, a jump through a table, an instruction that cannot be decoded, a budget
that ends) is no proof, and the caller's walk decides as it would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import capstone
from capstone import arm64_const as A  # noqa: N812 - capstone's own constants

from ftaudit.inspect.image import HEAP_BLOCK, Image
from ftaudit.inspect.walk.arm64 import Arm64, _arm64_condition, _arm64_reg
from ftaudit.inspect.walk.calls import ALLOCATORS, MODELLED
from ftaudit.inspect.walk.machine import Budget, Event, Machine, State, Walk
from ftaudit.inspect.walk.memory import BudgetEnded, Memory, Value
from ftaudit.inspect.walk.x86 import _X86_REGS, X86, X86Win64, _x86_condition

SET_GIL = "PyUnstable_Module_SetGIL"
_NOT_USED = 1  # Py_MOD_GIL_NOT_USED
_CREATORS = frozenset({"PyModule_Create2", "PyModule_Create", "PyModule_FromDefAndSpec2"})
# Imports after which the path cannot go on; the code that follows their call is the
# next function's.
_NO_RETURN = frozenset(
    {
        "abort",
        "exit",
        "_exit",
        "Py_FatalError",
        "_Py_FatalErrorFunc",
        "__stack_chk_fail",
        "__assert_fail",
        "__assert_rtn",
        "__cxa_throw",
        "__cxa_rethrow",
        "_Unwind_Resume",
        "_ZSt9terminatev",
    }
)
PROOF_STEPS = 60_000  # instructions, every visit of every address counted
MAX_SHAPES = 16  # kinds of state kept apart at one address
_CPU_CHECK_EVERY = 256


class _NoProof(Exception):
    """The function does something the proof cannot account for."""


class _ReadOnly(Memory):
    """Memory as the proof may believe it: the image's read-only bytes, nothing written."""

    __slots__ = ()

    def __init__(self, image: Image) -> None:
        super().__init__(image)

    def copy(self) -> Memory:
        return self

    def _believed(self, addr: int, size: int) -> bool:
        image = self.image
        return not (
            image.ranges.is_dynamic(addr)
            or image.is_writable(addr)
            or image.is_writable(addr + size - 1)
            or image.segment_at(addr) is None
        )

    def write(self, addr: int, size: int, value: Value) -> None:
        pass

    def go_stale(self, *, keep_stack: bool) -> None:
        pass

    def read_bytes(self, addr: int, size: int) -> bytes | None:
        if not self._believed(addr, size):
            return None
        if self.image.touches_relocation(addr, size) or any(
            a in self.image.relocated for a in range(addr, addr + size)
        ):
            return self._compose(addr, size)
        return self.image.read(addr, size)

    def read_int(self, addr: int, size: int, *, signed: bool = False) -> int | None:
        if not self._believed(addr, size):
            return None
        return self.image.read_int(addr, size, signed=signed)

    def read_cstring(self, addr: int) -> str | None:
        return self.image.read_cstring(addr) if self._believed(addr, 1) else None

    def trusted(self, addr: int, size: int) -> bool:
        return self._believed(addr, size)


Flags = tuple[str, int, int, int]


@dataclass(slots=True)
class _Path(State):
    # (module token, setter call site): the module's last setter call, with no call since
    # that could have made another, was Py_MOD_GIL_NOT_USED.
    gil: tuple[int, int] | None = None
    # A test of a module against NULL that the next instruction, a branch, decides on.
    null_test: Flags | None = None
    dead: bool = False  # the path called a function that does not return


@dataclass(slots=True)
class _Seen:
    regs: dict[str, Value]
    flags: Flags | None
    gil: tuple[int, int] | None
    null_test: Flags | None


class Proof(Machine):
    """The proof's driver over one architecture's instruction semantics: a concrete
    class also derives from that architecture's Machine (see `prove`)."""

    # Registers a callee may change besides the convention's scratch ones (AArch64 keeps
    # only the low halves of v8-v15).
    extra_clobbered: tuple[str, ...] = ()

    def run_proof(self, entry: int) -> Walk | None:
        """A walk holding the setter call that decides, or None without a proof."""
        self._sites: dict[int, int] = {}  # module constructor call site -> its token
        self._seen: dict[
            tuple[int, tuple[int, int] | None, tuple[tuple[str, int], ...]], _Seen
        ] = {}
        self._shapes: dict[int, int] = {}
        self._decided: set[int] = set()  # setter calls a module-returning path ended on
        self._steps = 0
        self._insn: Any = None
        start = _Path(entry, {self.sp: self.image.ranges.stack}, _ReadOnly(self.image), [], {})
        self._paths: list[_Path] = [start]
        self._proving = True
        try:
            while self._paths:
                self._run(self._paths.pop())
        except (_NoProof, BudgetEnded):
            return None
        finally:
            self._proving = False
        if not self._decided:
            return None
        event = Event(SET_GIL, (None, _NOT_USED), Memory(self.image), min(self._decided), True)
        return Walk(events=[event], steps=self._steps, proof=PROVED)

    # --- the driver ---------------------------------------------------------------------

    def _run(self, state: _Path) -> None:
        while self._join(state):
            self._steps += 1
            if self._steps > PROOF_STEPS:
                raise _NoProof
            if not self._steps % _CPU_CHECK_EVERY:
                self.budget.check_clock()
            name = self._callee_name(state.pc)
            if name is not None:  # reached an import by a jump: a tail call
                self._import(state, name)
                self._end(state)
                return
            insn = self._insn = self.decode(state.pc)
            if insn is None:
                raise _NoProof
            from_token = self._reads_module(state, insn)
            if not self.step(state, insn, [], Walk()) or state.dead:
                return
            state.null_test = None
            if from_token:
                self._forget_derived(state, insn)
            self._hide_tokens(state)

    def _join(self, state: _Path) -> bool:
        """Join the state with what reached its address before in the same shape; False
        when nothing new reaches it (every path on was walked from a state at least as
        general). The shape keeps apart what the proof turns on, so that a path returning
        the module and one returning NULL through the same epilogue stay two."""
        key = (state.pc, state.gil, self._shape(state))
        seen = self._seen.get(key)
        if seen is None:
            shapes = self._shapes[state.pc] = self._shapes.get(state.pc, 0) + 1
            if shapes > MAX_SHAPES:
                raise _NoProof
            self._seen[key] = _Seen(dict(state.regs), state.flags, state.gil, state.null_test)
            return True
        regs = {k: v for k, v in seen.regs.items() if k in state.regs and state.regs[k] == v}
        flags = seen.flags if seen.flags == state.flags else None
        null_test = seen.null_test if seen.null_test == state.null_test else None
        if len(regs) == len(seen.regs) and (flags, null_test) == (seen.flags, seen.null_test):
            return False
        seen.regs, seen.flags, seen.null_test = dict(regs), flags, null_test
        state.regs, state.flags, state.null_test = regs, flags, null_test
        return True

    def _shape(self, state: _Path) -> tuple[tuple[str, int], ...]:
        """The registers a return could give, where they hold a module or NULL."""
        tokens = self._sites.values()
        return tuple(
            (r, v)
            for r in (self.ret_reg, *self.callee_saved)
            if isinstance(v := state.regs.get(r), int) and (v == 0 or v in tokens)
        )

    def _fork(self, state: _Path, pc: int) -> _Path:
        return _Path(pc, dict(state.regs), state.mem, [], {}, state.flags, True, state.gil)

    def _tokenish(self, v: object) -> bool:
        """A module's token, or an address computed from one."""
        return isinstance(v, int) and self.image.ranges.is_heap(v)

    def _registers(self, insn: Any) -> tuple[list[str], list[str]]:
        """The registers an instruction reads and writes, by the names the walk keeps."""
        try:
            read, written = insn.regs_access()
        except capstone.CsError:  # every operand register, both ways
            read = written = [op.reg for op in insn.operands if op.type == _REG]
            read = [*read, *(r for op in insn.operands for r in _memory_registers(op))]
        return [self._parent(insn, r) for r in read], [self._parent(insn, r) for r in written]

    def _parent(self, insn: Any, reg: int) -> str:
        raise NotImplementedError

    def _reads_module(self, state: _Path, insn: Any) -> bool:
        if not self._sites:
            return False
        read, _ = self._registers(insn)
        return any(self._tokenish(state.regs.get(r)) for r in read)

    def _forget_derived(self, state: _Path, insn: Any) -> None:
        """A number computed from a module's address other than an address inside it
        (its low bits, a hash) would be the token's made-up value, not the module's: it
        is unknown."""
        ops = insn.operands
        if (
            insn.mnemonic in ("xor", "sub", "eor")
            and len({op.reg for op in ops}) == 1
            and all(op.type == _REG for op in ops)
        ):
            return  # `xor ebx, ebx`: zero, whatever the register held
        _, written = self._registers(insn)
        for reg in written:
            value = state.regs.get(reg)
            if value is not None and not self._tokenish(value):
                del state.regs[reg]

    def _hide_tokens(self, state: _Path) -> None:
        """A comparison involving a module is not decided by its token's made-up value:
        the flags become unknown. A test of a module against NULL is kept aside for the
        branch that follows it."""
        flags = state.flags
        if flags is None or not (self._tokenish(flags[1]) or self._tokenish(flags[2])):
            return
        state.flags = None
        kind, a, b, bits = flags
        tokens = self._sites.values()
        if bits == 64 and (
            (kind == "cmp" and ((a in tokens and b == 0) or (b in tokens and a == 0)))
            or (kind == "test" and a == b and a in tokens)
        ):
            state.null_test = flags

    # --- what the architectures call back -----------------------------------------------

    def branch(
        self,
        state: State,
        target: Value,
        fallthrough: int,
        todo: list[State],
        taken: bool | None = None,
    ) -> None:
        if not self._proving:
            super().branch(state, target, fallthrough, todo, taken)
            return
        assert isinstance(state, _Path)
        if not isinstance(target, int):
            raise _NoProof
        null = self._null_side(state, target, fallthrough)
        if null is not None:
            token, side = null
            zero = self._fork(state, side)
            zero.regs = {k: (0 if v == token else v) for k, v in zero.regs.items()}
            if zero.gil is not None and zero.gil[0] == token:
                zero.gil = None
            self._paths.append(zero)
            state.pc = fallthrough if side == target else target
            return
        if taken is not None and not self._reads_token(state):
            state.pc = target if taken else fallthrough
            return
        self._paths.append(self._fork(state, target))
        state.pc = fallthrough

    def _null_side(self, state: _Path, target: int, fallthrough: int) -> tuple[int, int] | None:
        """(token, the side where that module is NULL) for a branch on a NULL test."""
        tested = self._register_test(state)
        if tested is not None:
            token, on_zero = tested
            return token, target if on_zero else fallthrough
        if state.null_test is None:
            return None
        kind, a, b, bits = state.null_test
        token = a if self._tokenish(a) else b
        zeroed = (kind, 0 if a == token else a, 0 if b == token else b, bits)
        as_null = self._condition(self._insn, zeroed)
        as_module = self._condition(self._insn, state.null_test)
        if as_null is None or as_module is None or as_null == as_module:
            return None
        return token, target if as_null else fallthrough

    def _register_test(self, state: _Path) -> tuple[int, bool] | None:
        """A branch on a register that holds a module being zero: (token, whether it
        branches on zero). AArch64's cbz/cbnz; none on x86."""
        return None

    def _reads_token(self, state: _Path) -> bool:
        """Whether the branch tests a register holding (part of) a module's address."""
        return False

    def _condition(self, insn: Any, flags: Flags) -> bool | None:
        """Whether the branch `insn` is taken after a comparison with these operands."""
        raise NotImplementedError

    def jump(self, state: State, target: Value, result: Walk) -> bool:
        if not self._proving:
            return super().jump(state, target, result)
        assert isinstance(state, _Path)
        if not isinstance(target, int):
            raise _NoProof  # a jump table, or a tail call through a pointer
        name = self._callee_name(target) or self._stub_import(target)
        if name is not None:
            self._import(state, name)
            self._end(state)
            return False
        state.pc = target
        return True

    def call(self, state: State, target: Value, ret: int, result: Walk) -> None:
        if not self._proving:
            super().call(state, target, ret, result)
            return
        assert isinstance(state, _Path)
        state.flags = None
        name = None
        if isinstance(target, int):
            name = self._callee_name(target) or self._stub_import(target)
        if name is not None:
            self._import(state, name)
        else:  # our own code, or a pointer: it may call anything, the setter included
            self._forget(state)
            state.gil = None
        state.pc = ret

    def _return(self, state: State, result: Walk, imported: str | None = None) -> bool:
        if not self._proving:
            return super()._return(state, result, imported)
        assert isinstance(state, _Path)
        if imported is not None:
            self._import(state, imported)
        self._end(state)
        return False

    def _stub_import(self, target: int) -> str | None:
        # Resolving a stub walks it with the walk's own semantics.
        proving, self._proving = self._proving, False
        try:
            return super()._stub_import(target)
        finally:
            self._proving = proving

    # --- calls and returns --------------------------------------------------------------

    def _import(self, state: _Path, name: str) -> None:
        if name in _NO_RETURN:
            state.dead = True
            return
        args = [state.regs.get(r) for r in self.arg_regs]
        if name == SET_GIL:
            module = args[0] if args else None
            value = args[1] if len(args) > 1 else None
            if isinstance(module, int) and module in self._sites.values() and value == _NOT_USED:
                state.gil = (module, state.pc)
            else:
                state.gil = None
        elif not _keeps_declaration(name):
            state.gil = None
        self._forget(state)
        if name in _CREATORS:
            token = self._sites.setdefault(
                state.pc, self.image.ranges.heap + HEAP_BLOCK * (len(self._sites) + 1)
            )
            # A module made here before is another object than the one made now.
            state.regs = {k: v for k, v in state.regs.items() if v != token}
            if state.gil is not None and state.gil[0] == token:
                state.gil = None
            state.regs[self.ret_reg] = token

    def _forget(self, state: _Path) -> None:
        for reg in (*self.clobbered, *self.extra_clobbered):
            state.regs.pop(reg, None)

    def _end(self, state: _Path) -> None:
        """The function returns: NULL, or a module whose last setter call decides."""
        if state.dead:
            return
        returned = state.regs.get(self.ret_reg)
        if returned == 0:
            return
        if returned is None or state.gil is None or returned != state.gil[0]:
            raise _NoProof
        self._decided.add(state.gil[1])


PROVED = (
    "the last call on every path that returns the module, read from the init function "
    "alone with every call it makes stepped over"
)
# Imports besides the C API that cannot call the setter: they call nothing back.
_PLAIN = frozenset({"strlen", "strcmp", "strncmp", "memcmp", "getenv"})


def _keeps_declaration(name: str) -> bool:
    """Imports that cannot call the setter on the module: the rest of the C API (which
    never does), and C library functions that call no code back."""
    if name in _CREATORS or name == SET_GIL or name.startswith(("PyInit_", "PyModExport_")):
        return False  # another module's init, which may be handed this one
    return (
        name.startswith(("Py", "_Py")) or name in MODELLED or name in ALLOCATORS or name in _PLAIN
    )


def prove(image: Image, entry: int, budget: Budget) -> Walk | None:
    """The proof for the init function at `entry`, or None (no proof, or no reader)."""
    cls: type[Proof]
    if image.arch == "x86_64":
        cls = _ProofWin64 if image.abi == "win64" else _ProofX86
    elif image.arch == "aarch64":
        cls = _ProofArm64
    else:
        return None
    return cls(image, budget=budget).run_proof(entry)


def _memory_registers(op: Any) -> list[int]:
    mem = getattr(op, "mem", None)
    if mem is None or op.type not in (_X86_MEM, _ARM64_MEM):
        return []
    return [r for r in (mem.base, mem.index) if r]


_REG = capstone.CS_OP_REG
_X86_MEM = capstone.x86.X86_OP_MEM
_ARM64_MEM = A.ARM64_OP_MEM


class _ProofX86(Proof, X86):
    def _parent(self, insn: Any, reg: int) -> str:
        name = insn.reg_name(reg)
        return str(_X86_REGS.get(name, (name, 64))[0])

    def _condition(self, insn: Any, flags: Flags) -> bool | None:
        return _x86_condition(insn.id, flags)


class _ProofWin64(Proof, X86Win64):
    def _parent(self, insn: Any, reg: int) -> str:
        name = insn.reg_name(reg)
        return str(_X86_REGS.get(name, (name, 64))[0])

    def _condition(self, insn: Any, flags: Flags) -> bool | None:
        return _x86_condition(insn.id, flags)


_REGISTER_BRANCHES = (A.ARM64_INS_CBZ, A.ARM64_INS_CBNZ, A.ARM64_INS_TBZ, A.ARM64_INS_TBNZ)


class _ProofArm64(Proof, Arm64):
    extra_clobbered = tuple(f"v{i}" for i in range(8, 16))

    def _parent(self, insn: Any, reg: int) -> str:
        return _arm64_reg(insn.reg_name(reg))[0]

    def _condition(self, insn: Any, flags: Flags) -> bool | None:
        return _arm64_condition(insn.cc, flags)

    def _tested(self, state: _Path) -> tuple[str, Value] | None:
        insn = self._insn
        if insn is None or insn.id not in _REGISTER_BRANCHES:
            return None
        name = insn.reg_name(insn.operands[0].reg)
        return name, state.regs.get(_arm64_reg(name)[0])

    def _register_test(self, state: _Path) -> tuple[int, bool] | None:
        tested = self._tested(state)
        if tested is None or self._insn.id not in (A.ARM64_INS_CBZ, A.ARM64_INS_CBNZ):
            return None
        name, value = tested
        if name.startswith("x") and isinstance(value, int) and value in self._sites.values():
            return value, self._insn.id == A.ARM64_INS_CBZ
        return None

    def _reads_token(self, state: _Path) -> bool:
        tested = self._tested(state)
        return tested is not None and self._tokenish(tested[1])
