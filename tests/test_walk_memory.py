"""The walk's memory model on its own: forks share, barriers make bytes stale, budgets end.

`_Reference` is the model the walk used to have (a dict of every written byte, copied on
each fork, walked byte by byte at each stepped-over call): slow, but plainly right. The
property test checks that the paged, copy-on-write memory reads, trusts and signs exactly
as it did, whatever the sequence of writes, forks and barriers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftaudit.inspect.image import STACK_BASE, Image, Segment
from ftaudit.inspect.walk.memory import BudgetEnded, Ledger, Memory, Partial, Value

DATA = 0x1000  # writable data
RODATA = 0x2000  # read-only data
STACK = STACK_BASE - 0x1000
HEAP = 0x7C00_0000_0000_0000
_STALE = 0x100


def _image() -> Image:
    return Image(
        arch="x86_64",
        pointer_size=8,
        little_endian=True,
        segments=[
            Segment(DATA, 0x1000, bytes(range(256)) * 4, executable=False, writable=True),
            Segment(RODATA, 0x1000, b"\x11" * 0x1000, executable=False, writable=False),
        ],
        relocated={DATA + 0x100: 0xDEAD_BEEF},
    )


class _Reference:
    """The old model: written byte -> value, -1 (unknown), or value | _STALE."""

    def __init__(self, image: Image) -> None:
        self.image = image
        self.bytes_: dict[int, int] = {}
        self.signature = 0

    def copy(self) -> _Reference:
        new = _Reference(self.image)
        new.bytes_, new.signature = dict(self.bytes_), self.signature
        return new

    def _put(self, addr: int, byte: int) -> None:
        if not self.image.ranges.is_stack(addr):
            old = self.bytes_.get(addr)
            if old is not None:
                self.signature ^= hash((addr, old))
            self.signature ^= hash((addr, byte))
        self.bytes_[addr] = byte

    def write(self, addr: int, size: int, value: Value) -> None:
        if isinstance(value, int):
            for i, b in enumerate((value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")):
                self._put(addr + i, b)
        elif isinstance(value, bytes):
            unknown = value.unknown if isinstance(value, Partial) else frozenset()
            for i in range(size):
                self._put(addr + i, -1 if i in unknown else value[i] if i < len(value) else 0)
        else:
            for i in range(size):
                self._put(addr + i, -1)

    def go_stale(self, *, keep_stack: bool) -> None:
        for addr, byte in list(self.bytes_.items()):
            if 0 <= byte < _STALE and not (keep_stack and self.image.ranges.is_stack(addr)):
                self._put(addr, byte | _STALE)

    def trusted(self, addr: int, size: int) -> bool:
        written = [self.bytes_.get(addr + i) for i in range(size)]
        if all(b is not None and 0 <= b < _STALE for b in written):
            return True
        return not (self.image.is_writable(addr) or self.image.ranges.is_dynamic(addr))

    def read(self, addr: int, size: int) -> bytes | str | None:
        """What Memory.read_bytes returns, for the bytes this model knows by itself."""
        written = [self.bytes_.get(addr + i) for i in range(size)]
        if any(b == -1 for b in written):
            return None
        if all(b is not None for b in written):
            return bytes(b & 0xFF for b in written if b is not None)
        return "image"  # some bytes come from the image: Memory composes those


def test_a_fork_shares_what_it_has_not_changed() -> None:
    mem = Memory(_image(), Ledger())
    mem.write(DATA, 8, 0x1122334455667788)
    used = mem.ledger.used
    fork = mem.copy()
    assert mem.ledger.used == used  # forking copies nothing
    fork.write(DATA, 8, 0xAA)
    assert mem.read_int(DATA, 8) == 0x1122334455667788
    assert fork.read_int(DATA, 8) == 0xAA
    # The fork paid for the one page it changed (and its own page table), no more.
    assert 0 < mem.ledger.used - used <= 2 * 64 * 8
    mem.write(DATA + 8, 1, 5)
    assert fork.read_int(DATA + 8, 1) == 8  # the file's byte
    assert mem.read_int(DATA + 8, 1) == 5


def test_a_barrier_makes_earlier_writes_stale_stack_apart() -> None:
    mem = Memory(_image())
    mem.write(DATA, 4, 7)
    mem.write(HEAP, 4, 8)
    mem.write(STACK, 4, 9)
    assert mem.trusted(DATA, 4) and mem.trusted(HEAP, 4) and mem.trusted(STACK, 4)
    mem.go_stale(keep_stack=True)
    assert not mem.trusted(DATA, 4) and not mem.trusted(HEAP, 4)
    assert mem.trusted(STACK, 4)
    # Stale bytes still read as written: only a verdict may not rest on them.
    assert (mem.read_int(DATA, 4), mem.read_int(HEAP, 4), mem.read_int(STACK, 4)) == (7, 8, 9)
    mem.go_stale(keep_stack=False)
    assert not mem.trusted(STACK, 4)
    mem.write(DATA, 2, 1)  # written again after the barrier: trusted again, the rest not
    assert mem.trusted(DATA, 2) and not mem.trusted(DATA, 4)


def test_a_fork_keeps_its_own_barriers() -> None:
    mem = Memory(_image())
    mem.write(DATA, 4, 7)
    fork = mem.copy()
    fork.go_stale(keep_stack=False)
    assert mem.trusted(DATA, 4) and not fork.trusted(DATA, 4)


def test_trusted_memory_that_no_code_can_write() -> None:
    mem = Memory(_image())
    assert mem.trusted(RODATA, 8)  # never written, and read-only
    assert not mem.trusted(DATA, 8)  # never written, but writable
    assert not mem.trusted(HEAP, 8)
    mem.write(DATA, 8, None)  # written with an unknown value
    assert not mem.trusted(DATA, 8)
    assert mem.read_int(DATA, 8) is None


def test_the_signature_is_equal_only_for_equal_memory() -> None:
    image = _image()
    a, b = Memory(image), Memory(image)
    a.write(DATA, 4, 0x01020304)
    a.write(HEAP, 2, 0x0506)
    b.write(HEAP, 2, 0x0506)
    b.write(DATA, 4, 0x01020304)
    assert a.signature == b.signature  # order does not matter
    b.write(STACK, 8, 123)
    assert a.signature == b.signature  # the stack does not sign
    b.write(DATA, 1, 0x05)
    assert a.signature != b.signature
    b.write(DATA, 1, 0x04)
    assert a.signature == b.signature  # the same bytes again
    a.go_stale(keep_stack=True)
    assert a.signature != b.signature  # stale bytes are not the same as fresh ones
    b.go_stale(keep_stack=False)
    assert a.signature == b.signature
    a.write(DATA, 1, None)
    assert a.signature != b.signature


def test_a_budget_of_written_memory_ends_with_its_reason() -> None:
    mem = Memory(_image(), Ledger(limit=4096))
    with pytest.raises(BudgetEnded) as ended:
        for page in range(64):
            mem.write(HEAP + 64 * page, 1, 1)
    assert ended.value.reason == "the walk's budget of 4 KiB of written memory ended"
    assert mem.ledger.used > 4096


_ADDRS = st.sampled_from(
    [DATA, DATA + 60, DATA + 0xFE, DATA + 0x100, RODATA, HEAP + 3, STACK, STACK + 62]
)
_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=(1 << 64) - 1),
    st.builds(
        Partial,
        st.binary(min_size=16, max_size=16),
        st.sets(st.integers(min_value=0, max_value=15), max_size=4),
    ),
)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), _ADDRS, st.sampled_from([1, 2, 4, 8, 16]), _VALUES),
        st.tuples(st.just("stale"), st.booleans()),
        st.tuples(st.just("fork"), st.booleans()),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_memory_reads_trusts_and_signs_as_the_plain_model(ops: list[tuple[object, ...]]) -> None:
    image = _image()
    pairs = [(Memory(image), _Reference(image))]
    for op in ops:
        mem, ref = pairs[-1]
        if op[0] == "write":
            _, addr, size, value = op
            assert isinstance(addr, int) and isinstance(size, int)
            mem.write(addr, size, value)  # type: ignore[arg-type]
            ref.write(addr, size, value)  # type: ignore[arg-type]
        elif op[0] == "stale":
            mem.go_stale(keep_stack=bool(op[1]))
            ref.go_stale(keep_stack=bool(op[1]))
        else:
            pairs.append((mem.copy(), ref.copy()))
            if op[1]:  # go on with the older copy: the fork must not see its writes
                pairs[-2], pairs[-1] = pairs[-1], pairs[-2]
    for mem, ref in pairs:
        assert mem.signature == ref.signature
        for addr in (DATA, DATA + 60, DATA + 0xFC, RODATA, HEAP, STACK, STACK + 60):
            for size in (1, 4, 8):
                assert mem.trusted(addr, size) == ref.trusted(addr, size)
                expected = ref.read(addr, size)
                if expected != "image":
                    assert mem.read_bytes(addr, size) == expected
