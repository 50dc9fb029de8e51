"""The walk's model of memory: bytes the walked code wrote, over the image's contents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ftaudit.inspect.image import Image

# int: a known 64-bit value; bytes: a vector register (a Partial when only partly known,
# also for a general register); None: unknown.
Value = int | bytes | None

_UNKNOWN_BYTE = -1
# Added to a byte the path wrote before a call it stepped over, which could have changed
# it: the walk goes on reading it, a verdict may not rest on it (Memory.trusted).
_STALE = 0x100


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
