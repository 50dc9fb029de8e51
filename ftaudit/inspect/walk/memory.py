"""The walk's model of memory: bytes the walked code wrote, over the image's contents."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Any

from ftaudit.inspect.image import STACK_SPAN, Image

# int: a known 64-bit value; bytes: a vector register (a Partial when only partly known,
# also for a general register); None: unknown.
Value = int | bytes | None

# What the walk's memories may allocate, over every fork of one walk: bytes of pages
# (each written byte costs 8 bytes of page, and a path that writes a page it shares with
# another copies it).
MAX_MEMORY_BYTES = 64 << 20
_PAGE_BITS = 6
_PAGE = 1 << _PAGE_BITS
_ENTRY_BYTES = 8  # array("q")
# A page entry: 0 for a byte never written, else _WRITTEN | epoch << _EPOCH_SHIFT | code,
# where code is the byte's value or _UNKNOWN, and epoch says when it was written (see
# Memory.go_stale).
_WRITTEN = 0x200
_UNKNOWN = 0x100
_CODE = 0x1FF
_EPOCH_SHIFT = 10
# How a byte written before a call the path stepped over reads in the signature (that
# call could have changed it: the walk goes on reading it, a verdict may not rest on it;
# see Memory.trusted), and how an unknown byte does.
_STALE = 0x100
_UNKNOWN_BYTE = -1
_NEVER = [0] * _PAGE


class BudgetEnded(Exception):
    """A walk's budget ran out; the walk stops and says which (`reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Ledger:
    """What the memories of one walk have allocated: shared by every fork, so that the
    walk's memory is bounded whatever the paths do."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MAX_MEMORY_BYTES if limit is None else limit
        self.used = 0

    def charge(self, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise BudgetEnded(f"the walk's budget of {_size(self.limit)} of written memory ended")


def _size(nbytes: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift} {unit}"
    return f"{nbytes} bytes"


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


def vec_slice(v: bytes, start: int, end: int) -> bytes:
    part = bytes(v[start:end])
    if isinstance(v, Partial):
        gone = [i - start for i in v.unknown if start <= i < end]
        if gone:
            return Partial(part, gone)
    return part


def vec_join(a: bytes, b: bytes) -> bytes:
    unknown = set(a.unknown) if isinstance(a, Partial) else set()
    if isinstance(b, Partial):
        unknown.update(len(a) + i for i in b.unknown)
    data = bytes(a) + bytes(b)
    return Partial(data, unknown) if unknown else data


def vec_int(v: bytes, size: int) -> int | None:
    """The little-endian number in a vector's first `size` bytes, if they are known."""
    if isinstance(v, Partial) and any(i < size for i in v.unknown):
        return None
    return int.from_bytes(v[:size], "little")


class Memory:
    """Bytes written by the walked code, over the image's own (relocated) contents.

    Written bytes live in pages shared copy-on-write: a fork shares the page table and
    every page until one side writes, so forking costs nothing and a path pays only for
    the pages it changes. Each byte records the epoch it was written in; a stepped-over
    call raises a barrier (one for the stack, one for the rest), and a byte written
    before its barrier is stale, so "everything so far may have changed" costs nothing.

    `signature` is an order-independent hash of everything written outside the stack,
    stale bytes apart from fresh ones: two paths at the same address with the same
    signature can only differ in registers and stack, so the walk keeps one of them. It
    is kept as two parts, what stays as it is and the fresh bytes (with what they would
    hash to once stale), so that a barrier moves one into the other at once.
    """

    __slots__ = (
        "_barrier",
        "_epoch",
        "_fixed",
        "_fresh",
        "_fresh_stale",
        "_own",
        "_pages",
        "_stack_barrier",
        "_stack_page",
        "image",
        "ledger",
    )

    def __init__(self, image: Image, ledger: Ledger | None = None) -> None:
        self.image = image
        self.ledger = ledger if ledger is not None else Ledger()
        self._pages: dict[int, array[int]] = {}
        # Pages this memory may change in place; None while the page table is shared.
        self._own: set[int] | None = set()
        self._epoch = 0
        self._barrier = 0  # bytes outside the stack written before this epoch are stale
        self._stack_barrier = 0  # the same for the stack
        self._fixed = 0  # signature of unknown and stale bytes
        self._fresh = 0  # ... of fresh bytes
        self._fresh_stale = 0  # ... of the fresh bytes as they will hash once stale
        # Pages from this one up are the stack (its lower end is page-aligned).
        self._stack_page = (image.ranges.stack - STACK_SPAN) >> _PAGE_BITS

    @property
    def signature(self) -> int:
        return self._fixed ^ self._fresh

    def copy(self) -> Memory:
        new = Memory.__new__(Memory)
        new.image, new.ledger, new._stack_page = self.image, self.ledger, self._stack_page
        new._pages = self._pages
        new._own = self._own = None
        new._epoch, new._barrier, new._stack_barrier = (
            self._epoch,
            self._barrier,
            self._stack_barrier,
        )
        new._fixed, new._fresh, new._fresh_stale = self._fixed, self._fresh, self._fresh_stale
        return new

    def _writable_page(self, number: int) -> array[int]:
        own = self._own
        if own is None:
            self.ledger.charge(len(self._pages) * _ENTRY_BYTES)
            self._pages = dict(self._pages)
            own = self._own = set()
        page = self._pages.get(number)
        if page is None or number not in own:
            self.ledger.charge(_PAGE * _ENTRY_BYTES)
            page = array("q", _NEVER if page is None else page)
            self._pages[number] = page
            own.add(number)
        return page

    def _store(self, addr: int, codes: Sequence[int]) -> None:
        """Write bytes (values, or _UNKNOWN) at `addr` in the current epoch."""
        stamp = _WRITTEN | self._epoch << _EPOCH_SHIFT
        pos, i, n = addr, 0, len(codes)
        while i < n:
            number, offset = pos >> _PAGE_BITS, pos & (_PAGE - 1)
            page = self._writable_page(number)
            count = min(n - i, _PAGE - offset)
            if number >= self._stack_page:  # the stack does not sign
                for k in range(count):
                    page[offset + k] = stamp | codes[i + k]
            else:
                for k in range(count):
                    self._sign(pos + k, page[offset + k])
                    code = codes[i + k]
                    page[offset + k] = stamp | code
                    if code == _UNKNOWN:
                        self._fixed ^= hash((pos + k, _UNKNOWN_BYTE))
                    else:
                        self._fresh ^= hash((pos + k, code))
                        self._fresh_stale ^= hash((pos + k, code | _STALE))
            pos, i = pos + count, i + count

    def _sign(self, addr: int, entry: int) -> None:
        """Take a byte outside the stack out of the signature (XOR is its own inverse)."""
        if not entry:
            return
        code = entry & _CODE
        if code == _UNKNOWN:
            self._fixed ^= hash((addr, _UNKNOWN_BYTE))
        elif entry >> _EPOCH_SHIFT < self._barrier:
            self._fixed ^= hash((addr, code | _STALE))
        else:
            self._fresh ^= hash((addr, code))
            self._fresh_stale ^= hash((addr, code | _STALE))

    def _view(self, addr: int, size: int) -> list[int | None]:
        """The bytes as written: None where never written, _UNKNOWN_BYTE where written
        with an unknown value, the value | _STALE where written before its barrier."""
        out: list[int | None] = []
        pos, end = addr, addr + size
        while pos < end:
            number, offset = pos >> _PAGE_BITS, pos & (_PAGE - 1)
            count = min(end - pos, _PAGE - offset)
            page = self._pages.get(number)
            if page is None:
                out.extend([None] * count)
            else:
                barrier = self._stack_barrier if number >= self._stack_page else self._barrier
                for entry in page[offset : offset + count]:
                    if not entry:
                        out.append(None)
                    elif entry & _UNKNOWN:
                        out.append(_UNKNOWN_BYTE)
                    elif entry >> _EPOCH_SHIFT < barrier:
                        out.append((entry & 0xFF) | _STALE)
                    else:
                        out.append(entry & 0xFF)
            pos += count
        return out

    def _written(self, addr: int, size: int) -> bool:
        """Whether the path wrote any of these bytes."""
        pages = self._pages
        if not pages:
            return False
        pos, end = addr, addr + size
        while pos < end:
            number, offset = pos >> _PAGE_BITS, pos & (_PAGE - 1)
            count = min(end - pos, _PAGE - offset)
            page = pages.get(number)
            if page is not None and any(page[offset : offset + count]):
                return True
            pos += count
        return False

    def write(self, addr: int, size: int, value: Value) -> None:
        if size <= 0:
            return
        if isinstance(value, int):
            self._store(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, self._order()))
        elif isinstance(value, bytes):
            unknown = value.unknown if isinstance(value, Partial) else frozenset()
            self._store(
                addr,
                [
                    _UNKNOWN if i in unknown else value[i] if i < len(value) else 0
                    for i in range(size)
                ],
            )
        else:
            self._store(addr, [_UNKNOWN] * size)

    def clobber(self, addr: int, size: int) -> None:
        self.write(addr, size, None)

    def go_stale(self, *, keep_stack: bool) -> None:
        """Mark what the path wrote as possibly changed by a function it stepped over:
        everything outside the stack, and the stack too unless `keep_stack`."""
        self._epoch += 1
        self._barrier = self._epoch
        self._fixed ^= self._fresh_stale
        self._fresh = self._fresh_stale = 0
        if not keep_stack:
            self._stack_barrier = self._epoch

    def read_bytes(self, addr: int, size: int) -> bytes | None:
        written = self._view(addr, size)
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
        if all(b is not None and 0 <= b < _STALE for b in self._view(addr, size)):
            return True
        return not (self.image.is_writable(addr) or self.image.ranges.is_dynamic(addr))

    def read_int(self, addr: int, size: int, *, signed: bool = False) -> int | None:
        if not self._written(addr, size):
            return self.image.read_int(addr, size, signed=signed)
        raw = self.read_bytes(addr, size)
        if raw is None:
            return None
        return int.from_bytes(raw, self._order(), signed=signed)

    def read_pointer(self, addr: int) -> int | None:
        return self.read_int(addr, self.image.pointer_size)

    def read_cstring(self, addr: int) -> str | None:
        if self._written(addr, 64):
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
