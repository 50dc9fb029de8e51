"""A binary as the dynamic loader would lay it out, without loading it.

Every format reader (ELF now; Mach-O and PE fit the same shape) produces an `Image`: its
segments at their virtual addresses, the pointer value each dynamic relocation would store,
its exports and imports. The code interpreter and the slot reader only ever see an `Image`,
so they work the same for every format.

Imported symbols get fake addresses in a range no real image uses, so that "a pointer to
PyModuleDef_Init" is just a number that the interpreter can recognise at a call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

IMPORT_BASE = 0x7E00_0000_0000_0000
IMPORT_STRIDE = 0x100
# Where the interpreter puts the stack: far from any image and from the import range.
STACK_BASE = 0x7F00_0000_0000_0000
STACK_SPAN = 1 << 24  # the stack lies in this many bytes below its base
# Blocks that allocators called by the init code return (nanobind builds its definition
# on the heap).
HEAP_BASE = 0x7C00_0000_0000_0000
HEAP_BLOCK = 0x10000
# Windows x64 thread-local storage: what gs:[0x58] holds (the thread's array of TLS block
# pointers) and the block of this module in it, far above any heap block.
TLS_ARRAY = HEAP_BASE + (1 << 44)
TLS_BLOCK = TLS_ARRAY + (1 << 32)
TLS_POINTER = TLS_ARRAY - 8  # the address that stands for gs:[0x58] (ARM64: [x18, #0x58])
# The same ranges for 32-bit images, whose registers and pointers hold 32 bits.
_RANGES_32 = (0xC000_0000, 0xE000_0000, 0xF000_0000)  # heap, imports, stack


@dataclass(frozen=True, slots=True)
class Ranges:
    """Where fake addresses live for one image: heap blocks, imports, the stack."""

    heap: int
    imports: int
    stack: int

    @classmethod
    def for_pointer_size(cls, pointer_size: int) -> Ranges:
        if pointer_size == 4:
            return cls(*_RANGES_32)
        return cls(HEAP_BASE, IMPORT_BASE, STACK_BASE)

    def is_heap(self, addr: int) -> bool:
        return self.heap <= addr < self.imports

    def is_stack(self, addr: int) -> bool:
        return addr >= self.stack - STACK_SPAN

    def is_dynamic(self, addr: int) -> bool:
        """Heap or stack: memory the program writes at run time, outside the image."""
        return addr >= self.heap


def find_bytes(data: bytes | memoryview, needle: bytes, start: int = 0) -> int:
    """`bytes.find` for a segment's bytes, a view included (searched without a copy)."""
    if isinstance(data, bytes):
        return data.find(needle, start)
    found = re.compile(re.escape(needle)).search(data, start)
    return -1 if found is None else found.start()


@dataclass(frozen=True, slots=True)
class Segment:
    vaddr: int
    memsz: int
    # File contents; memory past len(data) reads as zero (.bss). An ELF segment is a view
    # of the file's bytes, which are not copied (a library of 500 MB is held once).
    data: bytes | memoryview
    executable: bool
    name: str = ""
    writable: bool = True


@dataclass(slots=True)
class Image:
    arch: str  # "x86_64", "aarch64", "i386", "arm", "ppc64", "s390x", ...
    pointer_size: int
    little_endian: bool
    segments: list[Segment]
    # calling convention of the code: "sysv" (ELF, Mach-O x86-64), "win64", "aapcs64",
    # "arm64-win" (Windows on ARM64: AAPCS64 with x18 holding the thread's TEB)
    abi: str = "sysv"
    # address -> the pointer-sized value the loader stores there (relocations applied,
    # image loaded at base 0). Addresses absent here hold their file bytes.
    relocated: dict[int, int] = field(default_factory=dict)
    # addresses whose relocation cannot be resolved statically (IRELATIVE, TLS, ...)
    unresolvable: set[int] = field(default_factory=set)
    exports: dict[str, int] = field(default_factory=dict)
    imports: set[str] = field(default_factory=set)
    libraries: set[str] = field(default_factory=set)  # shared libraries it links against
    sections: list[tuple[str, int, int]] = field(default_factory=list)  # name, addr, size
    # PE thread-local storage: where the loader stores this module's TLS index, and the
    # template (start, end, zero fill) each thread's block starts as a copy of.
    tls_index_at: int | None = None
    tls_template: tuple[int, int, int] | None = None
    # Relocations are applied on demand: a vendored library with no init export never
    # needs them, and they are most of the cost of reading a large one.
    finish: Callable[[], None] | None = None
    _import_addr: dict[str, int] = field(default_factory=dict)
    _import_name: dict[int, str] = field(default_factory=dict)

    @property
    def ranges(self) -> Ranges:
        return Ranges.for_pointer_size(self.pointer_size)

    def ensure_relocated(self) -> None:
        if self.finish is not None:
            finish, self.finish = self.finish, None
            finish()

    def import_address(self, name: str) -> int:
        """The fake address that stands for imported symbol `name`."""
        addr = self._import_addr.get(name)
        if addr is None:
            addr = self.ranges.imports + IMPORT_STRIDE * (len(self._import_addr) + 1)
            self._import_addr[name] = addr
            self._import_name[addr] = name
        return addr

    def import_at(self, addr: int) -> str | None:
        """The imported symbol a fake address stands for (exact address only)."""
        return self._import_name.get(addr)

    def segment_at(self, addr: int) -> Segment | None:
        for seg in self.segments:
            if seg.vaddr <= addr < seg.vaddr + seg.memsz:
                return seg
        return None

    def is_writable(self, addr: int) -> bool:
        seg = self.segment_at(addr)
        return seg is not None and seg.writable

    def is_code(self, addr: int) -> bool:
        seg = self.segment_at(addr)
        return seg is not None and seg.executable

    def read(self, addr: int, size: int) -> bytes | None:
        """File-backed bytes at a virtual address, or None outside the image.

        Relocated words are not applied here: callers that read pointers use
        `read_pointer`, which does.
        """
        seg = self.segment_at(addr)
        if seg is None and addr >= TLS_POINTER:
            return self._thread_local(addr, size)
        if seg is None or addr + size > seg.vaddr + seg.memsz:
            return None
        start = addr - seg.vaddr
        chunk = bytes(seg.data[start : start + size])
        if len(chunk) < size:  # the tail lies in .bss
            chunk = chunk + bytes(size - len(chunk))
        return chunk

    def _thread_local(self, addr: int, size: int) -> bytes | None:
        """Thread-local storage as the module's init code first sees it, the same way
        writable data is read as the file holds it: this module's slot of the thread's
        array points at its block, and the block starts as a copy of the TLS template
        (MSVC's _Init_thread_epoch starts there at INT_MIN)."""
        if self.tls_template is None or self.tls_index_at is None:
            return None
        if addr == TLS_POINTER and size == 8:
            return TLS_ARRAY.to_bytes(8, "little")
        index = self.read_int(self.tls_index_at, 4)
        if index is not None and addr == TLS_ARRAY + 8 * index and size == 8:
            return TLS_BLOCK.to_bytes(8, "little")
        start, end, zero_fill = self.tls_template
        offset = addr - TLS_BLOCK
        if offset < 0 or offset + size > end - start + zero_fill:
            return None
        if self.touches_relocation(start + offset, size) or (start + offset) in self.relocated:
            return None  # a pointer in the template, which the loader relocates
        raw = self.read(start + offset, min(size, max(0, end - start - offset)))
        if raw is None:
            return None
        return raw + bytes(size - len(raw))

    def touches_relocation(self, addr: int, size: int) -> bool:
        """Whether [addr, addr+size) overlaps a relocated word without being exactly it."""
        p = self.pointer_size
        for start in range(addr - p + 1, addr + size):
            if (start in self.relocated or start in self.unresolvable) and not (
                start == addr and size == p
            ):
                return True
        return False

    def read_int(self, addr: int, size: int, *, signed: bool = False) -> int | None:
        if size == self.pointer_size and addr in self.relocated:
            return self.relocated[addr]
        if addr in self.unresolvable or self.touches_relocation(addr, size):
            return None
        raw = self.read(addr, size)
        if raw is None:
            return None
        return int.from_bytes(raw, "little" if self.little_endian else "big", signed=signed)

    def read_pointer(self, addr: int) -> int | None:
        return self.read_int(addr, self.pointer_size)

    def read_cstring(self, addr: int, limit: int = 512) -> str | None:
        raw = self.read(addr, 1)
        if raw is None:
            return None
        out = bytearray()
        while len(out) < limit:
            b = self.read(addr + len(out), 1)
            if b is None:
                return None
            if b == b"\0":
                try:
                    return out.decode("utf-8")
                except UnicodeDecodeError:
                    return None
            out += b
        return None

    def where(self, addr: int) -> str:
        """A human name for an address: the section it lies in and the offset."""
        for name, start, size in self.sections:
            if start <= addr < start + size and name:
                return f"{name}+{addr - start:#x}"
        if self.ranges.is_heap(addr):
            block, offset = divmod(addr - self.ranges.heap, HEAP_BLOCK)
            return f"heap block {block} the init code allocated+{offset:#x}"
        return f"{addr:#x}"

    def contains_bytes(self, needle: bytes) -> bool:
        return any(find_bytes(seg.data, needle) >= 0 for seg in self.segments)
