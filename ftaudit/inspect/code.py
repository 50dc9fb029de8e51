"""Constant propagation over a module's init code, decoded with capstone.

Starting at an export (``PyInit_<name>`` or ``PyModExport_<name>``) it walks the code the
way the CPU would, tracking registers and memory whose values are known constants
(addresses included, since the image is laid out at base 0), following direct calls into
the binary's own functions and PLT stubs, and forking at conditional branches. It never
executes anything: it reads instructions and updates a model.

What it reports is a list of events: each call to an imported function with the values of
its first arguments (unknown ones are None), and each return from the export. A memory
view at the moment of the event lets the caller read what the code had stored so far,
which is how slot arrays that init code fills at run time become visible.

Budgets bound the walk; running out of budget only means fewer events, and the caller
turns missing evidence into `unknown`, never into a declaration.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import capstone
from capstone import arm64_const as A
from capstone import x86_const as X

from ftaudit.inspect.image import HEAP_BLOCK, TLS_POINTER, Image

# int: a known 64-bit value; bytes: a vector register (a Partial when only partly known,
# also for a general register); None: unknown.
Value = int | bytes | None

MAX_STEPS = 40_000  # instructions over all paths of one export
# Once a path has reached a declaration, other paths are walked only this much further,
# to find any that contradict it.
STEPS_AFTER_DECLARATION = 8_000
# The imports whose calls (with their arguments and the memory at that moment) are worth
# recording; every other import is only stepped over.
RECORDED = frozenset(
    {
        "PyModuleDef_Init",
        "PyUnstable_Module_SetGIL",
        "PyModule_Create2",
        "PyModule_Create",
        "PyModule_FromDefAndSpec2",
    }
)
MAX_PATHS = 400
MAX_VISITS = 12  # per path and address: bounds loops
LOOP_EXIT_AFTER = 6  # a branch back into code this path ran that often takes the exit
MAX_GLOBAL_VISITS = 8  # distinct memory states that may run one address
MAX_DEPTH = 6  # nested calls into the binary's own functions
MASK64 = (1 << 64) - 1
_UNKNOWN_BYTE = -1
# Added to a byte the path wrote before a call it stepped over, which could have changed
# it: the walk goes on reading it, a verdict may not rest on it (Memory.trusted).
_STALE = 0x100
_SENTINEL = 0x7D00_0000_0000_0000
_REACH_BUDGET = 6000  # instructions a reachability check may look at
# ... and on a second walk, when the first found nothing within its budget.
_WIDE_REACH_BUDGET = 30_000
_SMALL_FUNCTION = 200  # instructions: below this a function is always walked
# Imports whose effect on memory the walker models (see _emulate_libc, _returns).
_MODELLED = frozenset(
    {
        "memcpy",
        "memmove",
        "__memcpy_chk",
        "memset",
        "__memset_chk",
        "__cxa_guard_acquire",
        "__cxa_guard_release",
        "_Init_thread_header",
        "_Init_thread_footer",
        "PyModuleDef_Init",
    }
)
# Imports known to write through only their first N arguments (0: through none). The
# other argument registers may still hold the caller's pointers: `__tls_get_addr` takes
# one argument while five more registers point into the caller's frame,
# PyEval_SaveThread takes none while rdx points at a once-cell's state, and
# ReleaseSRWLockExclusive(lock) is called with r8 pointing at the thread's TLS block.
_WRITES_THROUGH: dict[str, int] = {
    **dict.fromkeys(
        (
            "__tls_get_addr",
            "_tlv_bootstrap",  # macOS thread-local variables: x0 in, the address out
            "strlen",
            "strcmp",
            "strncmp",
            "memcmp",
            "getenv",
            "Py_GetVersion",
            "PyInterpreterState_Get",
            "PyInterpreterState_Main",
            "PyThreadState_Get",
            "PyGILState_Check",
            "PyGILState_Ensure",
            "PyGILState_Release",
            "PyEval_SaveThread",
            "PyEval_RestoreThread",
            "PyInterpreterState_GetID",
            "PyErr_Occurred",
        ),
        0,
    ),
    **dict.fromkeys(
        (
            "AcquireSRWLockExclusive",
            "ReleaseSRWLockExclusive",
            "AcquireSRWLockShared",
            "ReleaseSRWLockShared",
            "WakeAllConditionVariable",
            "WakeConditionVariable",
            "pthread_mutex_lock",
            "pthread_mutex_unlock",
            "pthread_once",
        ),
        1,
    ),
    "SleepConditionVariableSRW": 2,
}
_ZEROED = frozenset({"calloc", "PyMem_Calloc", "PyMem_RawCalloc", "PyObject_Calloc"})
_ALLOCATORS = _ZEROED | {
    "malloc",
    "PyMem_Malloc",
    "PyMem_RawMalloc",
    "PyObject_Malloc",
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
}


class Partial(bytes):
    """A value some of whose bytes are unknown: they read as 0 here and are listed in
    `unknown`, and any number taken from them is unknown. A vector (PyO3 copies a
    closure's captures 16 bytes at a time, a known pointer beside an unknown one), or a
    general register whose low byte alone was written (`mov r8b, 1`)."""

    unknown: frozenset[int]

    def __new__(cls, data: bytes, unknown: Iterable[int]) -> Partial:
        self = super().__new__(cls, data)
        self.unknown = frozenset(unknown)
        return self


def _vec_slice(v: bytes, start: int, end: int) -> bytes:
    part = bytes(v[start:end])
    if isinstance(v, Partial):
        gone = [i - start for i in v.unknown if start <= i < end]
        if gone:
            return Partial(part, gone)
    return part


def _vec_join(a: bytes, b: bytes) -> bytes:
    unknown = set(a.unknown) if isinstance(a, Partial) else set()
    if isinstance(b, Partial):
        unknown.update(len(a) + i for i in b.unknown)
    data = bytes(a) + bytes(b)
    return Partial(data, unknown) if unknown else data


def _vec_int(v: bytes, size: int) -> int | None:
    """The little-endian number in a vector's first `size` bytes, if they are known."""
    if isinstance(v, Partial) and any(i < size for i in v.unknown):
        return None
    return int.from_bytes(v[:size], "little")


class Memory:
    """Bytes written by the walked code, over the image's own (relocated) contents.

    `signature` is an order-independent hash of everything written outside the stack: two
    paths at the same address with the same signature can only differ in registers and
    stack, so the walk keeps one of them.
    """

    __slots__ = ("bytes_", "image", "signature")

    def __init__(self, image: Image, bytes_: dict[int, int] | None = None, signature: int = 0):
        self.image = image
        self.bytes_: dict[int, int] = bytes_ if bytes_ is not None else {}
        self.signature = signature

    def copy(self) -> Memory:
        return Memory(self.image, dict(self.bytes_), self.signature)

    def _put(self, addr: int, byte: int) -> None:
        if not self.image.ranges.is_stack(addr):  # the stack does not sign
            old = self.bytes_.get(addr)
            if old is not None:
                self.signature ^= hash((addr, old))
            self.signature ^= hash((addr, byte))
        self.bytes_[addr] = byte

    def write(self, addr: int, size: int, value: Value) -> None:
        if isinstance(value, int):
            raw = (value & ((1 << (8 * size)) - 1)).to_bytes(size, self._order())
            for i, b in enumerate(raw):
                self._put(addr + i, b)
        elif isinstance(value, bytes):
            unknown = value.unknown if isinstance(value, Partial) else frozenset()
            for i in range(size):
                if i in unknown:
                    self._put(addr + i, _UNKNOWN_BYTE)
                else:
                    self._put(addr + i, value[i] if i < len(value) else 0)
        else:
            for i in range(size):
                self._put(addr + i, _UNKNOWN_BYTE)

    def clobber(self, addr: int, size: int) -> None:
        self.write(addr, size, None)

    def go_stale(self, *, keep_stack: bool) -> None:
        """Mark what the path wrote as possibly changed by a function it stepped over:
        everything outside the stack, and the stack too unless `keep_stack`."""
        ranges = self.image.ranges
        for addr, byte in self.bytes_.items():
            if 0 <= byte < _STALE and not (keep_stack and ranges.is_stack(addr)):
                self._put(addr, byte | _STALE)

    def read_bytes(self, addr: int, size: int) -> bytes | None:
        written = [self.bytes_.get(addr + i) for i in range(size)]
        if all(b is None for b in written):
            if self.image.touches_relocation(addr, size) or any(
                a in self.image.relocated for a in range(addr, addr + size)
            ):
                # A vector load over relocated pointers: compose them word by word.
                return self._compose(addr, size)
            return self.image.read(addr, size)
        if any(b == _UNKNOWN_BYTE for b in written):
            return None
        if all(b is not None for b in written):
            return bytes(b & 0xFF for b in written if b is not None)
        base = self._compose(addr, size)
        if base is None:
            return None
        return bytes(b & 0xFF if b is not None else base[i] for i, b in enumerate(written))

    def read_vector(self, addr: int, size: int) -> bytes | None:
        """A vector load: the bytes, a Partial when only some are known (word by word,
        so that a relocated pointer stays whole), None when none is."""
        raw = self.read_bytes(addr, size)
        if raw is not None or size <= 8:
            return raw
        out, unknown = bytearray(), list[int]()
        for lane in range(0, size, 8):
            word = self.read_bytes(addr + lane, 8)
            if word is None:
                # Byte by byte: a slot's 4-byte id beside padding never written (MSVC
                # copies slot structs whole, padding included).
                parts = [self.read_bytes(addr + lane + i, 1) for i in range(8)]
                unknown.extend(lane + i for i, b in enumerate(parts) if b is None)
                word = b"".join(b if b is not None else b"\0" for b in parts)
            out += word
        return Partial(bytes(out), unknown) if len(unknown) < size else None

    def _compose(self, addr: int, size: int) -> bytes | None:
        p = self.image.pointer_size
        out = bytearray()
        pos = addr
        while pos < addr + size:
            if pos in self.image.relocated and pos + p <= addr + size:
                out += self.image.relocated[pos].to_bytes(p, self._order())
                pos += p
                continue
            if self.image.touches_relocation(pos, 1) or pos in self.image.unresolvable:
                return None
            raw = self.image.read(pos, 1)
            if raw is None:
                return None
            out += raw
            pos += 1
        return bytes(out)

    def trusted(self, addr: int, size: int) -> bool:
        """Whether these bytes are known on an imprecise path: written by the path itself
        after the last call it stepped over, or in memory no code can write."""
        written = [self.bytes_.get(addr + i) for i in range(size)]
        if all(b is not None and 0 <= b < _STALE for b in written):
            return True
        return not (self.image.is_writable(addr) or self.image.ranges.is_dynamic(addr))

    def read_int(self, addr: int, size: int, *, signed: bool = False) -> int | None:
        if not any((addr + i) in self.bytes_ for i in range(size)):
            return self.image.read_int(addr, size, signed=signed)
        raw = self.read_bytes(addr, size)
        if raw is None:
            return None
        return int.from_bytes(raw, self._order(), signed=signed)

    def read_pointer(self, addr: int) -> int | None:
        return self.read_int(addr, self.image.pointer_size)

    def read_cstring(self, addr: int) -> str | None:
        if any((addr + i) in self.bytes_ for i in range(64)):
            out = bytearray()
            while len(out) < 512:
                b = self.read_bytes(addr + len(out), 1)
                if b is None:
                    return None
                if b == b"\0":
                    return out.decode("utf-8", "replace")
                out += b
            return None
        return self.image.read_cstring(addr)

    def _order(self) -> Any:
        return "little" if self.image.little_endian else "big"


class TrustedView:
    """Memory as an imprecise path may rely on it: bytes the path wrote, or read-only ones.
    Anything else reads as unknown, so a stepped-over function can never have changed a
    value that a verdict rests on."""

    __slots__ = ("mem",)

    def __init__(self, mem: Memory) -> None:
        self.mem = mem

    def read_int(self, addr: int, size: int, *, signed: bool = False) -> int | None:
        if not self.mem.trusted(addr, size):
            return None
        return self.mem.read_int(addr, size, signed=signed)

    def read_pointer(self, addr: int) -> int | None:
        return self.read_int(addr, self.mem.image.pointer_size)

    def read_cstring(self, addr: int) -> str | None:
        return self.mem.read_cstring(addr)  # names live in read-only data; only a check


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
    declared_at: int | None = None  # steps taken when a path first reached a declaration


@dataclass(slots=True)
class _State:
    pc: int
    regs: dict[str, Value]
    mem: Memory
    # Per activation: return address and the caller's loop counters, restored on return.
    frames: list[tuple[int, dict[int, int]]]
    visits: dict[int, int]
    # The last comparison with known operands: ("cmp" | "test", a, b, width in bits).
    flags: tuple[str, int, int, int] | None = None
    imprecise: bool = False  # a local function was stepped over without being walked

    def fork(self, pc: int) -> _State:
        frames = [(ret, dict(v)) for ret, v in self.frames]
        return _State(
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


def walk(image: Image, entry: int) -> Walk:
    """Walk every path from `entry` within the budgets and collect its events.

    A function is walked into unless a bounded look at its call graph shows it cannot
    reach a declaring import, since stepping over it makes writable memory unknown. When
    that spends the whole budget inside a large callee without reaching a declaration
    (pybind11 3's get_internals, about 11,000 instructions, runs before its
    PyModuleDef_Init), a second walk steps over every function a wider look clears. If
    that finds none either, a third counts a call through a pointer as one that may
    declare: PyO3 reaches its module's creation only through the vtable of a closure that
    a once-cell runs, inside a make_module the first walk stepped over. Each walk is
    sound on its own; the first that reaches a declaration is the one reported."""
    first = _machine(image, _REACH_BUDGET)
    found = first.run(entry)
    if found.declared_at is not None:
        return found
    for budget, eager in ((_WIDE_REACH_BUDGET, False), (_REACH_BUDGET, True)):
        machine = _machine(image, budget, eager=eager)
        machine.share_decoding(first)
        again = machine.run(entry)
        if again.declared_at is not None:
            return again
    return found


def _machine(image: Image, reach_budget: int, *, eager: bool = False) -> _Machine:
    if image.arch == "x86_64":
        cls: type[_Machine] = _X86Win64 if image.abi == "win64" else _X86
    elif image.arch == "i386" and image.abi != "win32":
        cls = _X86_32
    elif image.arch == "aarch64":
        cls = _Arm64
    else:
        raise ValueError(f"no code reader for {image.arch}")
    return cls(image, reach_budget, eager=eager)


def can_walk(image: Image) -> bool:
    """Whether there is a code reader for this image's architecture and convention."""
    return image.arch in ("x86_64", "aarch64") or (image.arch == "i386" and image.abi != "win32")


class _Machine(ABC):
    """The architecture-neutral driver: worklist of paths, calls, returns, budgets."""

    sp: str
    ret_reg: str
    arg_regs: tuple[str, ...]
    clobbered: tuple[str, ...]
    callee_saved: tuple[str, ...] = ()
    link: str | None = None  # link register (arm64), else the return address is pushed

    def __init__(self, image: Image, reach_budget: int = _REACH_BUDGET, *, eager: bool = False):
        self.image = image
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
            if name in _MODELLED or name in _ALLOCATORS
        }

    def share_decoding(self, other: _Machine) -> None:
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
        if seg is not None and seg.executable:
            code = self.image.read(pc, min(16, seg.vaddr + seg.memsz - pc))
            if code:
                insn = next(self.md.disasm(code, pc, 1), None)
        self._decoded[pc] = insn
        return insn

    def run(self, entry: int) -> Walk:
        result = Walk()
        start = _State(entry, {self.sp: self.image.ranges.stack}, Memory(self.image), [], {})
        self._global: dict[tuple[int, ...], set[int]] = {}
        todo = [start]
        while todo:
            if result.paths >= MAX_PATHS or result.steps >= self._limit(result):
                result.exhausted = True
                break
            result.paths += 1
            self._run_path(todo.pop(), todo, result)
        return result

    def _run_path(self, state: _State, todo: list[_State], result: Walk) -> None:
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
            if not self.step(state, insn, todo, result):
                return
        result.exhausted = True

    # --- control flow shared by the architectures -------------------------------------

    def _limit(self, result: Walk) -> int:
        if result.declared_at is None:
            return MAX_STEPS
        return min(MAX_STEPS, result.declared_at + STEPS_AFTER_DECLARATION)

    def _args(self, state: _State, at_entry: bool) -> list[int | None]:
        """A call's first arguments: at the call (`at_entry` False) or, reached by a jump,
        at the callee's first instruction."""
        return [_as_int(state.regs.get(r)) for r in self.arg_regs]

    def _event(
        self, state: _State, name: str | None, result: Walk, *, at_entry: bool = False
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

    def call(self, state: _State, target: Value, ret: int, result: Walk) -> None:
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

    def _step_over(self, state: _State) -> None:
        """A call the walk does not follow: it may have written any writable memory of
        the image, heap blocks, and the caller's stack if handed a pointer into it."""
        handed_stack = any(
            v is not None and self.image.ranges.is_stack(v) for v in self._args(state, False)
        )
        self._clobber(state)
        state.mem.go_stale(keep_stack=not handed_stack)
        state.imprecise = True

    def _passes_code_pointer(self, state: _State) -> bool:
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
            state = _State(target, dict(sentinels), Memory(self.image), [], {})
            scratch, todo = Walk(), list[_State]()
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
        state: _State,
        target: Value,
        fallthrough: int,
        todo: list[_State],
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
            todo.append(state.fork(target))
        state.pc = fallthrough

    def jump(self, state: _State, target: Value, result: Walk) -> bool:
        """An unconditional jump; False when the path ends."""
        if not isinstance(target, int):
            return False
        state.pc = target
        return True

    def _return(self, state: _State, result: Walk, imported: str | None = None) -> bool:
        """Return from the current function (after a tail call when `imported` is set)."""
        if imported is not None:
            self._after_import(state, imported, at_entry=True)
        if not state.frames:
            # The export returns (after a tail call into an import, that import's result):
            # the event carries the return register.
            returned = (_as_int(state.regs.get(self.ret_reg)),)
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

    def _after_import(self, state: _State, name: str, *, at_entry: bool = False) -> None:
        args = self._args(state, at_entry)
        if self._emulate_libc(state, name, args):
            self._clobber(state)
        else:
            self._external_call(state, args[: _WRITES_THROUGH.get(name, len(args))])
        state.regs[self.ret_reg] = self._returns(state, name, args)

    def _external_call(self, state: _State, args: list[int | None]) -> None:
        """Code outside the image may write through the pointers it is given (an
        out-parameter, a guard): what they point at is no longer known."""
        for arg in args:
            if arg is not None and arg >= 0x1000 and self._writable(arg):
                state.mem.clobber(arg, self.image.pointer_size)
        self._clobber(state)

    def _returns(self, state: _State, name: str, args: list[int | None]) -> Value:
        """What an imported function returns, where its definition fixes it."""
        if name == "PyModuleDef_Init":
            return args[0]  # it returns the definition it was given
        if name in _ALLOCATORS:
            # A fresh block in a range no image or stack uses. calloc-style blocks are
            # zeroed; malloc-style ones read as unknown until the code writes them.
            self._heap += HEAP_BLOCK
            count = args[0] if name in _ZEROED and args[1] is not None else 1
            size = args[1] if name in _ZEROED else args[0]
            if name in _ZEROED and count is not None and size is not None:
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

    def _emulate_libc(self, state: _State, name: str, args: list[int | None]) -> bool:
        """Apply what a well-known import does to memory; False when it is not one."""
        dst, src, n = args[0], args[1], args[2] if len(args) > 2 else None
        if name not in _MODELLED and name not in _ALLOCATORS:
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

    def _clobber(self, state: _State) -> None:
        for reg in self.clobbered:
            state.regs.pop(reg, None)

    @abstractmethod
    def push_return(self, state: _State, ret: int) -> None:
        """Record a call's return address where this architecture keeps it."""

    @abstractmethod
    def pop_return(self, state: _State) -> None:
        """Undo push_return on return."""

    @abstractmethod
    def step(self, state: _State, insn: Any, todo: list[_State], result: Walk) -> bool:
        """Apply one instruction to the state; False when the path ends."""


def _as_int(v: Value) -> int | None:
    return v if isinstance(v, int) else None


def _mask(bits: int) -> int:
    return (1 << bits) - 1


# --- x86-64 ------------------------------------------------------------------------------


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


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


def _x86_condition(iid: int, flags: tuple[str, int, int, int]) -> bool | None:
    """Whether a Jcc is taken after `cmp a, b` / `test a, b` with known operands."""
    kind, a, b, bits = flags
    mask = (1 << bits) - 1
    a, b = a & mask, b & mask
    result = (a - b) & mask if kind == "cmp" else a & b
    zero = result == 0
    sign = bool(result >> (bits - 1) & 1)
    below = kind == "cmp" and a < b
    less = _signed(a, bits) < _signed(b, bits) if kind == "cmp" else sign
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


class _X86(_Machine):
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

    def push_return(self, state: _State, ret: int) -> None:
        sp = _as_int(state.regs.get("rsp"))
        if sp is not None:
            state.regs["rsp"] = sp - self.word
            state.mem.write(sp - self.word, self.word, ret)

    def pop_return(self, state: _State) -> None:
        sp = _as_int(state.regs.get("rsp"))
        state.regs["rsp"] = sp + self.word if sp is not None else None

    # operands

    def reg_get(self, state: _State, reg_id: int, insn: Any) -> Value:
        name = insn.reg_name(reg_id)
        if name == "rip":
            return int(insn.address + insn.size)
        parent, width = _X86_REGS.get(name, (name, 64))
        value = state.regs.get(parent)
        if isinstance(value, bytes):
            if width >= 128:
                return _vec_slice(value, 0, width // 8)
            return _vec_int(value, width // 8)
        if value is None:
            return None
        if width == -8:
            return (value >> 8) & 0xFF
        return value & _mask(width) if width < 64 else value

    def reg_set(self, state: _State, reg_id: int, insn: Any, value: Value) -> None:
        name = insn.reg_name(reg_id)
        parent, width = _X86_REGS.get(name, (name, 64))
        if parent.startswith("xmm"):
            if isinstance(value, int):
                value = value.to_bytes(16, "little") if value >= 0 else None
            state.regs[parent] = value
            return
        if isinstance(value, bytes):
            value = _vec_int(value, 8)
        if value is None:
            state.regs.pop(parent, None)
        elif width in (64, 32):
            state.regs[parent] = value & _mask(width)  # 32-bit writes zero the top half
        else:
            old = state.regs.get(parent)
            if isinstance(old, int) and width == -8:
                state.regs[parent] = (old & ~0xFF00) | ((value & 0xFF) << 8)
            elif isinstance(old, int):
                state.regs[parent] = (old & ~_mask(width)) | (value & _mask(width))
            elif width in (8, 16):
                # `mov r8b, 1` over an unknown r8 (a bool argument): its low bytes are
                # known, and kept as a Partial.
                n = width // 8
                low = (value & _mask(width)).to_bytes(n, "little")
                rest = (
                    _vec_slice(old, n, 8)
                    if isinstance(old, bytes)
                    else Partial(bytes(8 - n), range(8 - n))
                )
                joined = _vec_join(low, rest)
                state.regs[parent] = (
                    joined if isinstance(joined, Partial) else int.from_bytes(joined, "little")
                )
            else:
                state.regs.pop(parent, None)

    def address(self, state: _State, insn: Any, op: Any) -> int | None:
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

    def get(self, state: _State, insn: Any, op: Any) -> Value:
        if op.type == X.X86_OP_IMM:
            return int(op.imm) & _mask(8 * op.size) if op.size else int(op.imm) & MASK64
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

    def put(self, state: _State, insn: Any, op: Any, value: Value) -> None:
        if op.type == X.X86_OP_REG:
            self.reg_set(state, op.reg, insn, value)
        elif op.type == X.X86_OP_MEM:
            addr = self.address(state, insn, op)
            if addr is not None:
                state.mem.write(addr, op.size, value)

    def _clobber_written(self, state: _State, insn: Any) -> None:
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

    def _compare_exchange(self, state: _State, insn: Any) -> None:
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

    def step(self, state: _State, insn: Any, todo: list[_State], result: Walk) -> bool:
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
                _X86_UNARY[iid](v) & _mask(bits) if isinstance(v, int) else None,
            )
        elif iid == X.X86_INS_PUSH:
            v = self.get(state, insn, ops[0])
            sp = _as_int(state.regs.get("rsp"))
            if sp is not None:
                state.regs["rsp"] = sp - self.word
                state.mem.write(sp - self.word, self.word, v)
        elif iid == X.X86_INS_POP:
            sp = _as_int(state.regs.get("rsp"))
            v = state.mem.read_int(sp, self.word) if sp is not None else None
            state.regs["rsp"] = sp + self.word if sp is not None else None
            self.put(state, insn, ops[0], v)
        elif iid == X.X86_INS_LEAVE:
            bp = _as_int(state.regs.get("rbp"))
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
                v = _vec_int(v, ops[0].size or 8)
            elif (
                isinstance(v, int)
                and ops[0].type == X.X86_OP_REG
                and insn.reg_name(ops[0].reg).startswith("xmm")
            ):
                v = (v & _mask(8 * (ops[1].size or 8))).to_bytes(16, "little")
            self.put(state, insn, ops[0], v)
        elif iid in (X.X86_INS_PUNPCKLQDQ, X.X86_INS_MOVLHPS, X.X86_INS_MOVHPS) and len(ops) == 2:
            a, b = self.get(state, insn, ops[0]), self.get(state, insn, ops[1])
            if isinstance(b, int):
                b = b.to_bytes(8, "little")
            v = (
                _vec_join(_vec_slice(a, 0, 8), _vec_slice(b, 0, 8))
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

    def _rep(self, state: _State, insn: Any, iid: int) -> None:
        width = 8 if iid in (X.X86_INS_STOSQ, X.X86_INS_MOVSQ) else 4
        dst, count = _as_int(state.regs.get("rdi")), _as_int(state.regs.get("rcx"))
        if dst is None or count is None or count > 4096:
            self._clobber_written(state, insn)
            return
        if iid in (X.X86_INS_STOSQ, X.X86_INS_STOSD):
            v = _as_int(state.regs.get("rax"))
            for i in range(count):
                state.mem.write(dst + i * width, width, v)
        else:
            src = _as_int(state.regs.get("rsi"))
            for i in range(count):
                raw = state.mem.read_bytes(src + i * width, width) if src is not None else None
                state.mem.write(dst + i * width, width, raw)
            state.regs["rsi"] = src + count * width if src is not None else None
        state.regs["rdi"] = dst + count * width
        state.regs["rcx"] = 0


class _X86_32(_X86):  # noqa: N801 - the architecture's own name
    """32-bit x86 (i686), System V cdecl: arguments on the stack, eax/ecx/edx clobbered."""

    word = 4
    arg_regs = ()
    clobbered = ("rax", "rcx", "rdx", *(f"xmm{i}" for i in range(8)))
    callee_saved = ("rbx", "rbp", "rsi", "rdi", "rsp")

    def _disassembler(self) -> capstone.Cs:
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)

    def _args(self, state: _State, at_entry: bool) -> list[int | None]:
        sp = _as_int(state.regs.get("rsp"))
        if sp is None:
            return [None] * 4
        base = sp + (4 if at_entry else 0)  # past the return address once inside
        return [state.mem.read_int(base + 4 * i, 4) for i in range(4)]


class _X86Win64(_X86):
    """The Microsoft x64 calling convention: arguments in rcx, rdx, r8, r9."""

    callee_saved = ("rbx", "rbp", "rdi", "rsi", "r12", "r13", "r14", "r15", "rsp")
    arg_regs = ("rcx", "rdx", "r8", "r9")
    clobbered = ("rax", "rcx", "rdx", "r8", "r9", "r10", "r11", *(f"xmm{i}" for i in range(6)))


# --- AArch64 -----------------------------------------------------------------------------

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
    less = _signed(a, bits) < _signed(b, bits) if kind == "cmp" else negative
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


class _Arm64(_Machine):
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

    def push_return(self, state: _State, ret: int) -> None:
        state.regs["x30"] = ret

    def pop_return(self, state: _State) -> None:
        pass

    def reg_get(self, state: _State, insn: Any, reg_id: int) -> Value:
        parent, size = _arm64_reg(insn.reg_name(reg_id))
        if parent == "zr":
            return 0
        v = state.regs.get(parent)
        if isinstance(v, bytes):
            return _vec_slice(v, 0, 16) if size == 16 else _vec_int(v, size)
        if isinstance(v, int) and size < 8:
            return v & _mask(8 * size)
        return v

    def reg_set(self, state: _State, insn: Any, reg_id: int, value: Value) -> None:
        parent, size = _arm64_reg(insn.reg_name(reg_id))
        if parent == "zr":
            return
        if parent.startswith("v"):
            if isinstance(value, int):
                value = (value & _mask(8 * size)).to_bytes(size, "little") + bytes(16 - size)
            elif isinstance(value, bytes):
                value = _vec_join(_vec_slice(value, 0, size), bytes(16 - size))
        elif isinstance(value, bytes):
            value = _vec_int(value, size)
        if value is None:
            state.regs.pop(parent, None)
        else:
            state.regs[parent] = value & _mask(8 * size) if isinstance(value, int) else value

    def _indirect_call(self, insn: Any) -> bool:
        return bool(insn.id == A.ARM64_INS_BLR)

    def _compare_and_swap(self, state: _State, insn: Any) -> None:
        """`cas Xs, Xt, [Xn]`: Xt is stored where Xs matches; Xs gets the old value
        either way (PyO3's once-per-interpreter check on the module's first import)."""
        expected_op, new_op, mem_op = insn.operands
        size = {"b": 1, "h": 2}.get(insn.mnemonic[-1], self.reg_size(insn, expected_op.reg))
        addr = self.mem_address(state, insn, mem_op, False)
        old = state.mem.read_int(addr, size) if addr is not None else None
        expected = self.reg_get(state, insn, expected_op.reg)
        if addr is not None:
            if isinstance(old, int) and isinstance(expected, int):
                if old == expected & _mask(8 * size):
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

    def _taken(self, state: _State, insn: Any) -> bool | None:
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

    def operand(self, state: _State, insn: Any, op: Any) -> Value:
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

    def mem_address(self, state: _State, insn: Any, op: Any, post: bool) -> int | None:
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

    def _load_store(self, state: _State, insn: Any) -> bool:
        ops = insn.operands
        mem_idx = next((i for i, op in enumerate(ops) if op.type == A.ARM64_OP_MEM), None)
        if mem_idx is None:
            return False
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

    def step(self, state: _State, insn: Any, todo: list[_State], result: Walk) -> bool:
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
