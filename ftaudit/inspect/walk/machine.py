"""The architecture-neutral driver of the walk: paths, calls, returns, budgets."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import capstone

from ftaudit.inspect.image import HEAP_BLOCK, Image
from ftaudit.inspect.walk.calls import ALLOCATORS, MODELLED, RECORDED, WRITES_THROUGH, ZEROED
from ftaudit.inspect.walk.memory import BudgetEnded, Ledger, Memory, Value

MAX_STEPS = 40_000  # instructions over all paths of one export
# Once a path has reached a declaration, other paths are walked only this much further,
# to find any that contradict it.
STEPS_AFTER_DECLARATION = 8_000
MAX_PATHS = 400
MAX_VISITS = 12  # per path and address: bounds loops
LOOP_EXIT_AFTER = 6  # a branch back into code this path ran that often takes the exit
MAX_GLOBAL_VISITS = 8  # distinct memory states that may run one address
MAX_DEPTH = 6  # nested calls into the binary's own functions
MASK64 = (1 << 64) - 1
_STEPS_ENDED = f"the walk's budget of {MAX_STEPS:,} instructions ended"
_PATHS_ENDED = f"the walk's budget of {MAX_PATHS} paths ended"
_SENTINEL = 0x7D00_0000_0000_0000
REACH_BUDGET = 6000  # instructions a reachability check may look at
# ... and on a second walk, when the first found nothing within its budget.
WIDE_REACH_BUDGET = 30_000
_SMALL_FUNCTION = 200  # instructions: below this a function is always walked
# CPU time (of the thread) one export's walk may take, all its runs together. The other
# budgets bound the walk by design; this one is a backstop, generous enough never to be
# what decides on a machine in good health.
WALK_CPU_SECONDS = 5.0
_CPU_CHECK_EVERY = 256  # instructions between looks at the clock


class CpuPool:
    """CPU time that several walks share: one artifact's modules, judged on several
    threads, each walk charging what its own thread spent since it last looked."""

    __slots__ = ("_left", "_lock", "reason")

    def __init__(self, seconds: float, reason: str) -> None:
        self._left = seconds
        self._lock = threading.Lock()
        self.reason = reason

    def charge(self, spent: float) -> bool:
        """Take `spent` seconds; whether any time is left."""
        with self._lock:
            self._left -= spent
            return self._left > 0


class Budget:
    """What one export's walk may spend, shared by its successive runs: the memory its
    states allocate, CPU time up to a deadline (of `time.thread_time`), and a share of
    its artifact's CPU pool."""

    __slots__ = ("_last", "deadline", "ledger", "pool", "reason")

    def __init__(
        self, deadline: float | None = None, reason: str | None = None, pool: CpuPool | None = None
    ) -> None:
        self._last = time.thread_time()
        own = self._last + WALK_CPU_SECONDS
        self.ledger = Ledger()
        self.pool = pool
        if deadline is not None and deadline < own:
            self.deadline, self.reason = deadline, reason or "the CPU time budget ended"
        else:
            self.deadline = own
            self.reason = f"the walk's budget of {WALK_CPU_SECONDS:g} s of CPU time ended"

    def check_clock(self) -> None:
        now = time.thread_time()
        if now > self.deadline:
            raise BudgetEnded(self.reason)
        if self.pool is not None:
            spent, self._last = now - self._last, now
            if not self.pool.charge(spent):
                raise BudgetEnded(self.pool.reason)


@dataclass(slots=True)
class Event:
    """A call to an imported function (name set) or the export's return (name is None)."""

    name: str | None
    args: tuple[int | None, ...]
    memory: Memory
    at: int  # address of the call or return instruction
    # The path stepped over a function it did not follow: memory that function could have
    # written is only as good as the path's own writes (see Memory.trusted).
    imprecise: bool = False


@dataclass(slots=True)
class Walk:
    events: list[Event] = field(default_factory=list)
    steps: int = 0
    paths: int = 0
    exhausted: bool = False  # a budget ran out before every path ended
    # Which budget ended: "the walk's budget of N ... ended".
    stopped: str | None = None
    # The budget that ended is one the walk's runs share (memory, CPU): another run would
    # end the same way.
    final: bool = False
    declared_at: int | None = None  # steps taken when a path first reached a declaration
    # How the one event was proved decisive, when it was (walk/proof.py).
    proof: str | None = None


@dataclass(slots=True)
class State:
    pc: int
    regs: dict[str, Value]
    mem: Memory
    # Per activation: return address and the caller's loop counters, restored on return.
    frames: list[tuple[int, dict[int, int]]]
    visits: dict[int, int]
    # The last comparison with known operands: ("cmp" | "test", a, b, width in bits).
    flags: tuple[str, int, int, int] | None = None
    imprecise: bool = False  # a local function was stepped over without being walked

    def fork(self, pc: int) -> State:
        frames = [(ret, dict(v)) for ret, v in self.frames]
        return State(
            pc,
            dict(self.regs),
            self.mem.copy(),
            frames,
            dict(self.visits),
            self.flags,
            self.imprecise,
        )

    def enter(self, ret: int, target: int) -> None:
        self.frames.append((ret, self.visits))
        self.visits = {}
        self.pc = target

    def leave(self) -> None:
        self.pc, self.visits = self.frames.pop()

    def context(self) -> tuple[int, ...]:
        return (self.pc, *(ret for ret, _ in self.frames))


EventHook = Callable[[Event], None]


class Machine(ABC):
    """The architecture-neutral driver: worklist of paths, calls, returns, budgets."""

    sp: str
    ret_reg: str
    arg_regs: tuple[str, ...]
    clobbered: tuple[str, ...]
    callee_saved: tuple[str, ...] = ()
    link: str | None = None  # link register (arm64), else the return address is pushed

    def __init__(
        self,
        image: Image,
        reach_budget: int = REACH_BUDGET,
        *,
        eager: bool = False,
        budget: Budget | None = None,
    ):
        self.image = image
        self.budget = budget if budget is not None else Budget()
        self._todo: list[State] = []
        self.reach_budget = reach_budget
        # Count a call through a register as one that may declare (see walk()).
        self.eager = eager
        self.md = self._disassembler()
        self.md.detail = True
        self._decoded: dict[int, Any] = {}
        self._stubs: dict[int, str | None] = {}
        self._reach: dict[int, bool] = {}
        self._heap = image.ranges.heap
        # The C++ runtime linked into the binary itself (usearch links libstdc++
        # statically): its __cxa_guard_acquire is the ABI's function whatever code it
        # holds, so it is modelled like the import, not walked through its futex calls.
        self._runtime = {
            addr: name
            for name, addr in image.exports.items()
            if name in MODELLED or name in ALLOCATORS
        }

    def share_decoding(self, other: Machine) -> None:
        """Reuse what another walk of the same image decoded: instructions, PLT stubs and
        the runtime functions linked in do not depend on the walk's budgets."""
        self._decoded, self._stubs, self._runtime = other._decoded, other._stubs, other._runtime

    @abstractmethod
    def _disassembler(self) -> capstone.Cs:
        """The capstone decoder for this architecture."""

    def decode(self, pc: int) -> Any:
        if pc in self._decoded:
            return self._decoded[pc]
        seg = self.image.segment_at(pc)
        insn = None
        # Only the file's bytes hold code: the zero fill past them (a segment whose size
        # in memory exceeds its file size) decodes as `add [rax], al` without end.
        if seg is not None and seg.executable and pc < seg.vaddr + len(seg.data):
            code = self.image.read(pc, min(16, seg.vaddr + len(seg.data) - pc))
            if code:
                insn = next(self.md.disasm(code, pc, 1), None)
        self._decoded[pc] = insn
        return insn

    def run(self, entry: int) -> Walk:
        result = Walk()
        memory = Memory(self.image, self.budget.ledger)
        start = State(entry, {self.sp: self.image.ranges.stack}, memory, [], {})
        self._global: dict[tuple[int, ...], set[int]] = {}
        self._walk = result
        todo = self._todo = [start]
        try:
            while todo:
                if result.steps >= self._limit(result):
                    result.exhausted = True
                    result.stopped = _STEPS_ENDED
                    break
                if result.paths >= MAX_PATHS:
                    result.exhausted = True
                    break
                result.paths += 1
                self._run_path(todo.pop(), todo, result)
        except BudgetEnded as ended:
            result.exhausted, result.stopped, result.final = True, ended.reason, True
        finally:
            self._todo = []
        if result.exhausted and result.stopped is None:
            result.stopped = _PATHS_ENDED
        return result

    def _queue(self, todo: list[State], state: State, target: int) -> None:
        """Queue the other side of a branch. The walk pops at most MAX_PATHS paths, the
        newest first: a path queued below as many as it has pops left is never walked,
        so it is dropped (the walk then did not walk every path) rather than kept."""
        if todo is not self._todo:  # a scratch walk (_stub_import)
            todo.append(state.fork(target))
            return
        left = MAX_PATHS - self._walk.paths
        if len(todo) >= left:
            self._walk.exhausted = True
            if left <= 0:
                return
            del todo[: len(todo) - left + 1]
        todo.append(state.fork(target))

    def _run_path(self, state: State, todo: list[State], result: Walk) -> None:
        while result.steps < self._limit(result):
            seen = state.visits.get(state.pc, 0)
            if seen >= MAX_VISITS:
                return
            if seen == 0:
                # Join points: a path arriving where another already was, with the same
                # memory outside the stack and the same registers, cannot find anything
                # the other did not. Every register counts: a value on its way to
                # PyUnstable_Module_SetGIL may sit in a scratch register (w8 on AArch64,
                # eax on 32-bit x86) where two branches meet.
                key = hash((state.mem.signature, frozenset(state.regs.items())))
                sigs = self._global.setdefault(state.context(), set())
                if key in sigs or len(sigs) >= MAX_GLOBAL_VISITS:
                    return
                sigs.add(key)
            state.visits[state.pc] = seen + 1
            name = self._callee_name(state.pc)
            if name is not None:  # reached an import by a jump (a tail call)
                self._event(state, name, result, at_entry=True)
                if not self._return(state, result, imported=name):
                    return
                continue
            insn = self.decode(state.pc)
            if insn is None:
                return
            result.steps += 1
            if not result.steps % _CPU_CHECK_EVERY:
                self.budget.check_clock()
            if not self.step(state, insn, todo, result):
                return
        result.exhausted = True
        result.stopped = _STEPS_ENDED

    # --- control flow shared by the architectures -------------------------------------

    def _limit(self, result: Walk) -> int:
        if result.declared_at is None:
            return MAX_STEPS
        return min(MAX_STEPS, result.declared_at + STEPS_AFTER_DECLARATION)

    def _args(self, state: State, at_entry: bool) -> list[int | None]:
        """A call's first arguments: at the call (`at_entry` False) or, reached by a jump,
        at the callee's first instruction."""
        return [as_int(state.regs.get(r)) for r in self.arg_regs]

    def _event(
        self, state: State, name: str | None, result: Walk, *, at_entry: bool = False
    ) -> None:
        if name not in RECORDED:
            return
        args = tuple(self._args(state, at_entry))
        # Reached by a jump (through a PLT stub), pc is the import itself: the place worth
        # showing is where the stub was called from, the current frame's return address.
        at = state.frames[-1][0] if at_entry and state.frames else state.pc
        result.events.append(Event(name, args, state.mem.copy(), at, state.imprecise))
        if name in ("PyModuleDef_Init", "PyUnstable_Module_SetGIL") and result.declared_at is None:
            result.declared_at = result.steps

    def call(self, state: State, target: Value, ret: int, result: Walk) -> None:
        """A call instruction: into an import, into our own code, or somewhere unknown."""
        state.flags = None
        if isinstance(target, int):
            # An import, directly or through a PLT-style stub (resolved up front so that
            # stubs do not use up the call depth).
            name = self._callee_name(target) or self._stub_import(target)
            if name is not None:
                self._event(state, name, result)
                self._after_import(state, name)
                state.pc = ret
                return
            # A large function that can reach no declaring import is stepped over.
            if (
                self.image.is_code(target)
                and len(state.frames) < MAX_DEPTH
                and (self._passes_code_pointer(state) or not self._not_worth_walking(target))
            ):
                self.push_return(state, ret)
                state.enter(ret, target)
                return
            if self.image.is_code(target):  # stepped over, or too deep
                self._step_over(state)
                state.pc = ret
                return
        # Through a pointer the walk does not know: most often another module's C API
        # (datetime's capsule). Like an import, it writes only through what it is handed.
        self._external_call(state, self._args(state, False))
        state.pc = ret

    def _step_over(self, state: State) -> None:
        """A call the walk does not follow: it may have written any writable memory of
        the image, heap blocks, and the caller's stack if handed a pointer into it."""
        handed_stack = any(
            v is not None and self.image.ranges.is_stack(v) for v in self._args(state, False)
        )
        self._clobber(state)
        state.mem.go_stale(keep_stack=not handed_stack)
        state.imprecise = True

    def _passes_code_pointer(self, state: State) -> bool:
        """A call that hands over a function (PyO3's module_init(closure)) may call back into
        code that declares: such a callee is always walked."""
        return any(
            isinstance(v, int) and self.image.is_code(v)
            for v in (state.regs.get(r) for r in self.arg_regs)
        )

    def _not_worth_walking(self, entry: int) -> bool:
        """True for a function that reaches none of the RECORDED imports and is large.

        A bounded traversal of its control flow (direct branches and calls, PLT stubs,
        pointers loaded from relocated slots) looks for a call into a declaring import;
        running out of budget counts as "may reach". Small functions are walked anyway:
        they cost little and their stores stay precise."""
        if entry in self._reach:
            return self._reach[entry]
        seen: set[int] = set()
        todo = [entry]
        reaches = False
        while todo and not reaches:
            pc = todo.pop()
            while pc not in seen:
                if len(seen) >= self.reach_budget:
                    reaches = True
                    break
                seen.add(pc)
                insn = self.decode(pc)
                if insn is None:
                    break
                targets, falls_through = self._flow(insn)
                if self.eager and not targets and self._indirect_call(insn):
                    reaches = True
                for t in targets:
                    name = self._callee_name(t) or self._stub_import(t)
                    if name in RECORDED:
                        reaches = True
                    elif name is None and self.image.is_code(t):
                        todo.append(t)
                if not falls_through:
                    break
                pc = insn.address + insn.size
        result = not reaches and len(seen) > _SMALL_FUNCTION
        self._reach[entry] = result
        return result

    @abstractmethod
    def _indirect_call(self, insn: Any) -> bool:
        """Whether the instruction calls through a register or memory."""

    @abstractmethod
    def _flow(self, insn: Any) -> tuple[list[int], bool]:
        """Where an instruction can transfer control (for reachability), and whether it
        also falls through."""

    def _callee_name(self, addr: int) -> str | None:
        """The import, or the runtime function linked into the image, at `addr`."""
        return self.image.import_at(addr) or self._runtime.get(addr)

    def _stub_import(self, target: int) -> str | None:
        """The import a PLT-style stub at `target` jumps to, if it is one.

        Resolving stubs up front keeps them from using up the call depth."""
        if target in self._stubs:
            return self._stubs[target]
        found = None
        if self.image.is_code(target):
            # Sentinels in the argument registers: a real stub passes them on untouched;
            # a wrapper that adjusts an argument (PyO3's `add rdi, 16; jmp ...`) does not
            # and must be walked as a function.
            sentinels = {r: _SENTINEL + i for i, r in enumerate((self.sp, *self.arg_regs))}
            state = State(target, dict(sentinels), Memory(self.image), [], {})
            scratch, todo = Walk(), list[State]()
            for _ in range(7):
                name = self._callee_name(state.pc)
                if name is not None:
                    if all(state.regs.get(r) == v for r, v in sentinels.items()):
                        found = name
                    break
                insn = self.decode(state.pc)
                if insn is None or capstone.CS_GRP_CALL in insn.groups:
                    break
                if not self.step(state, insn, todo, scratch) or todo or scratch.events:
                    break
        self._stubs[target] = found
        return found

    def branch(
        self,
        state: State,
        target: Value,
        fallthrough: int,
        todo: list[State],
        taken: bool | None = None,
    ) -> None:
        """A conditional branch: when the compared values are known, only the side the CPU
        would take (a C++ static guard reads 0 at load, so its skip path is infeasible);
        otherwise follow the fall-through and queue the other side.

        A side this path has already run many times is a loop's back edge: leave it."""
        if taken is not None and isinstance(target, int):
            chosen = target if taken else fallthrough
            if state.visits.get(chosen, 0) < LOOP_EXIT_AFTER:
                state.pc = chosen
                return
        back = isinstance(target, int) and state.visits.get(target, 0) >= LOOP_EXIT_AFTER
        ahead = state.visits.get(fallthrough, 0) >= LOOP_EXIT_AFTER
        if isinstance(target, int) and not back:
            if ahead:
                state.pc = target
                return
            self._queue(todo, state, target)
        state.pc = fallthrough

    def jump(self, state: State, target: Value, result: Walk) -> bool:
        """An unconditional jump; False when the path ends."""
        if not isinstance(target, int):
            return False
        state.pc = target
        return True

    def _return(self, state: State, result: Walk, imported: str | None = None) -> bool:
        """Return from the current function (after a tail call when `imported` is set)."""
        if imported is not None:
            self._after_import(state, imported, at_entry=True)
        if not state.frames:
            # The export returns (after a tail call into an import, that import's result):
            # the event carries the return register.
            returned = (as_int(state.regs.get(self.ret_reg)),)
            result.events.append(Event(None, returned, state.mem.copy(), state.pc, state.imprecise))
            if returned[0] and result.declared_at is None:
                result.declared_at = result.steps
            return False
        state.leave()
        self.pop_return(state)
        # A status code returned by a followed function says which of its paths this one
        # is, not what the call returns at import: keep addresses, forget plain numbers,
        # so that the caller's `if (f() < 0)` walks both ways.
        value = state.regs.get(self.ret_reg)
        if isinstance(value, int) and not self._address_like(value):
            state.regs.pop(self.ret_reg, None)
        return True

    def _address_like(self, value: int) -> bool:
        # NULL and the rest of the zero page are error returns, even where the image
        # starts at address 0.
        return value >= 0x1000 and (
            self.image.ranges.is_heap(value) or self.image.segment_at(value) is not None
        )

    def _after_import(self, state: State, name: str, *, at_entry: bool = False) -> None:
        args = self._args(state, at_entry)
        if self._emulate_libc(state, name, args):
            self._clobber(state)
        else:
            self._external_call(state, args[: WRITES_THROUGH.get(name, len(args))])
        state.regs[self.ret_reg] = self._returns(state, name, args)

    def _external_call(self, state: State, args: list[int | None]) -> None:
        """Code outside the image may write through the pointers it is given (an
        out-parameter, a guard): what they point at is no longer known."""
        for arg in args:
            if arg is not None and arg >= 0x1000 and self._writable(arg):
                state.mem.clobber(arg, self.image.pointer_size)
        self._clobber(state)

    def _returns(self, state: State, name: str, args: list[int | None]) -> Value:
        """What an imported function returns, where its definition fixes it."""
        if name == "PyModuleDef_Init":
            return args[0]  # it returns the definition it was given
        if name in ALLOCATORS:
            # A fresh block in a range no image or stack uses. calloc-style blocks are
            # zeroed; malloc-style ones read as unknown until the code writes them.
            self._heap += HEAP_BLOCK
            count = args[0] if name in ZEROED and args[1] is not None else 1
            size = args[1] if name in ZEROED else args[0]
            if name in ZEROED and count is not None and size is not None:
                total = count * size
                if total <= HEAP_BLOCK:
                    state.mem.write(self._heap, total, bytes(total))
            return self._heap
        if name == "__cxa_guard_acquire" and args[0] is not None:
            # Itanium C++ ABI: 1 ("initialise now") while the guard's first byte is 0, as
            # it is for every static of a module being imported for the first time.
            first = state.mem.read_int(args[0], 1)
            return None if first is None else int(first == 0)
        return None

    def _writable(self, addr: int) -> bool:
        return self.image.ranges.is_dynamic(addr) or self.image.is_writable(addr)

    def _emulate_libc(self, state: State, name: str, args: list[int | None]) -> bool:
        """Apply what a well-known import does to memory; False when it is not one."""
        dst, src, n = args[0], args[1], args[2] if len(args) > 2 else None
        if name not in MODELLED and name not in ALLOCATORS:
            return False
        if name == "_Init_thread_header" and dst is not None:
            # MSVC thread-safe statics: the first thread to get here finds the guard at 0,
            # sets it to -1 and runs the initialiser.
            if state.mem.read_int(dst, 4) == 0:
                state.mem.write(dst, 4, 0xFFFFFFFF)
        elif name == "_Init_thread_footer" and dst is not None:
            state.mem.clobber(dst, 4)  # set to the current epoch
        if name in ("memcpy", "memmove", "__memcpy_chk") and dst is not None:
            if src is not None and n is not None and n <= 4096:
                for i in range(n):
                    b = state.mem.read_bytes(src + i, 1)
                    state.mem.write(dst + i, 1, b[0] if b else None)
            elif n is not None and n <= 4096:
                state.mem.clobber(dst, n)
        elif name == "__cxa_guard_release" and dst is not None:
            state.mem.write(dst, 1, 1)
        elif name in ("memset", "__memset_chk") and dst is not None and n is not None and n <= 4096:
            state.mem.write(dst, n, bytes([src & 0xFF]) * n if src is not None else None)
        return True

    def _clobber(self, state: State) -> None:
        for reg in self.clobbered:
            state.regs.pop(reg, None)

    @abstractmethod
    def push_return(self, state: State, ret: int) -> None:
        """Record a call's return address where this architecture keeps it."""

    @abstractmethod
    def pop_return(self, state: State) -> None:
        """Undo push_return on return."""

    @abstractmethod
    def step(self, state: State, insn: Any, todo: list[State], result: Walk) -> bool:
        """Apply one instruction to the state; False when the path ends."""


def as_int(v: Value) -> int | None:
    return v if isinstance(v, int) else None


def mask_bits(bits: int) -> int:
    return (1 << bits) - 1


def to_signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v
