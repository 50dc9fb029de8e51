"""macOS Mach-O (thin and universal) read into `Image`s with macholib.

Load commands come from macholib; the tables it leaves as raw bytes are decoded here:
the symbol table (exports and imports), the classic bind opcode streams that fill GOT and
lazy pointers (LC_DYLD_INFO), and chained fixups (LC_DYLD_CHAINED_FIXUPS), where every
pointer in data is a fixup whose rebase target sits in its low bits. The image is laid
out at base 0 (the __TEXT segment's address), so the walker sees addresses as offsets.
A universal binary gives one image per architecture.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

from macholib import mach_o
from macholib.MachO import MachO

from ftaudit.errors import BinaryFormatError
from ftaudit.inspect.image import Image, Segment

CPU_X86_64 = 0x01000007
CPU_ARM64 = 0x0100000C
_ARCHES = {CPU_X86_64: ("x86_64", "sysv"), CPU_ARM64: ("aarch64", "aapcs64")}
_VM_PROT_EXECUTE = 4
_VM_PROT_WRITE = 2
_N_EXT, _N_TYPE, _N_SECT, _N_UNDF = 0x01, 0x0E, 0x0E, 0x00
_N_STAB = 0xE0
_LC_DYLD_CHAINED_FIXUPS = 0x80000034
# Bind opcodes and fixup chains repeat and skip: a few bytes can claim millions of
# pointers. No file binds more pointers than it has words, plus slack for zero fill.
_SLACK = 1 << 16


class _Budget:
    """Pointers left to bind or fix up in one image: running out means the tables lie."""

    def __init__(self, data_size: int) -> None:
        self.left = data_size // 4 + _SLACK

    def spend(self, what: str) -> None:
        self.left -= 1
        if self.left < 0:
            raise BinaryFormatError(f"corrupt Mach-O file: more {what} than the file has words")


def load_macho(data: bytes) -> list[Image]:
    try:
        return _load(data)
    except (
        ValueError,
        struct.error,
        IndexError,
        KeyError,
        EOFError,
        OSError,
        AttributeError,
        TypeError,
        OverflowError,
    ) as exc:
        raise BinaryFormatError(f"corrupt Mach-O file ({exc.__class__.__name__}: {exc})") from exc


def _load(data: bytes) -> list[Image]:
    macho = MachO.__new__(MachO)  # MachO() insists on a file name; read from memory instead
    macho.graphident = macho.filename = "<memory>"
    macho.loader_path = ""
    macho.fat = None
    macho.headers = []
    macho.allow_unknown_load_commands = True
    macho.load(io.BytesIO(data))
    images = []
    for header in macho.headers:
        arch = _ARCHES.get(header.header.cputype)
        if arch is None:
            raise BinaryFormatError(f"unsupported Mach-O CPU type {header.header.cputype:#x}")
        images.append(_slice(data[header.offset : header.offset + header.size], header, *arch))
    if not images:
        raise BinaryFormatError("no Mach-O headers")
    return images


def _slice(data: bytes, header: object, arch: str, abi: str) -> Image:
    commands = header.commands  # type: ignore[attr-defined]
    wide = header.header.magic in (mach_o.MH_MAGIC_64, mach_o.MH_CIGAM_64)  # type: ignore[attr-defined]
    image = Image(
        arch=arch, pointer_size=8 if wide else 4, little_endian=True, segments=[], abi=abi
    )
    segments: list[tuple[int, int, int, int]] = []  # vmaddr, vmsize, fileoff, filesize
    base = None
    symtab = dyld_info = chained = None
    for lc, cmd, extra in commands:
        if lc.cmd in (mach_o.LC_SEGMENT_64, mach_o.LC_SEGMENT):
            name = cmd.segname.rstrip(b"\0").decode("ascii", "replace")
            if base is None and cmd.fileoff == 0 and cmd.filesize:
                base = cmd.vmaddr
            segments.append((cmd.vmaddr, cmd.vmsize, cmd.fileoff, cmd.filesize))
            for sect in extra:
                sname = sect.sectname.rstrip(b"\0").decode("ascii", "replace")
                image.sections.append((f"{name},{sname}", sect.addr, sect.size))
            if name != "__PAGEZERO":
                image.segments.append(
                    Segment(
                        vaddr=cmd.vmaddr,
                        memsz=cmd.vmsize,
                        data=data[cmd.fileoff : cmd.fileoff + cmd.filesize],
                        executable=bool(cmd.initprot & _VM_PROT_EXECUTE),
                        writable=bool(cmd.initprot & _VM_PROT_WRITE),
                        name=name,
                    )
                )
        elif lc.cmd == mach_o.LC_SYMTAB:
            symtab = cmd
        elif lc.cmd in (mach_o.LC_DYLD_INFO, mach_o.LC_DYLD_INFO_ONLY):
            dyld_info = cmd
        elif lc.cmd == _LC_DYLD_CHAINED_FIXUPS:
            chained = cmd
        elif lc.cmd in (mach_o.LC_LOAD_DYLIB, mach_o.LC_LOAD_WEAK_DYLIB):
            image.libraries.add(extra.rstrip(b"\0").decode("utf-8", "replace"))
    base = base or 0
    if base:  # lay the image out at 0, as every other format is
        image.segments = [
            Segment(
                vaddr=s.vaddr - base,
                memsz=s.memsz,
                data=s.data,
                executable=s.executable,
                name=s.name,
                writable=s.writable,
            )
            for s in image.segments
        ]
        image.sections = [(n, a - base, sz) for n, a, sz in image.sections]
    if symtab is not None:
        _symbols(image, data, symtab, base)
    seg_bases = [vm - base for vm, _size, _off, _fsize in segments]

    def finish() -> None:
        budget = _Budget(len(data))
        if chained is not None:
            _chained_fixups(image, data, chained.dataoff, chained.datasize, base, budget)
        if dyld_info is not None:
            for off, size in (
                (dyld_info.bind_off, dyld_info.bind_size),
                (dyld_info.weak_bind_off, dyld_info.weak_bind_size),
                (dyld_info.lazy_bind_off, dyld_info.lazy_bind_size),
            ):
                if size:
                    _binds(image, data[off : off + size], seg_bases, budget)

    image.finish = lambda: _guarded(finish)
    return image


def _guarded(work: Callable[[], None]) -> None:
    try:
        work()
    except (ValueError, struct.error, IndexError, KeyError) as exc:
        raise BinaryFormatError(f"corrupt Mach-O file ({exc.__class__.__name__}: {exc})") from exc


def _cstring(data: bytes, offset: int) -> str:
    end = data.index(b"\0", offset)
    return data[offset:end].decode("utf-8", "replace")


def _symbols(image: Image, data: bytes, symtab: object, base: int) -> None:
    wide = image.pointer_size == 8
    entry = struct.Struct("<IBBHQ" if wide else "<IBBHI")
    symoff, nsyms = symtab.symoff, symtab.nsyms  # type: ignore[attr-defined]
    strings = data[symtab.stroff : symtab.stroff + symtab.strsize]  # type: ignore[attr-defined]
    if symoff + nsyms * entry.size > len(data):
        raise BinaryFormatError("truncated Mach-O symbol table")
    for i in range(nsyms):
        strx, ntype, _sect, _desc, value = entry.unpack_from(data, symoff + i * entry.size)
        if ntype & _N_STAB or not ntype & _N_EXT or strx >= len(strings):
            continue
        name = _cstring(strings, strx).removeprefix("_")
        kind = ntype & _N_TYPE
        if kind == _N_SECT:
            image.exports[name] = value - base
        elif kind == _N_UNDF and name:
            image.imports.add(name)


def _leb128(buf: bytes, pos: int, *, signed: bool = False) -> tuple[int, int]:
    """A LEB128 number at `pos`: (value, position after it)."""
    result = shift = 0
    while True:
        if shift > 63:  # no field of these tables is wider than 64 bits
            raise ValueError("LEB128 number longer than 64 bits")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if signed and byte & 0x40:
                result -= 1 << shift
            return result, pos


def _uleb(buf: bytes, pos: int) -> tuple[int, int]:
    return _leb128(buf, pos)


def _sleb(buf: bytes, pos: int) -> tuple[int, int]:
    return _leb128(buf, pos, signed=True)


def _binds(image: Image, stream: bytes, seg_bases: list[int], budget: _Budget) -> None:
    """Run a bind opcode stream (mach-o/loader.h BIND_OPCODE_*): pointer slot -> symbol."""
    ptr = image.pointer_size
    pos = 0
    symbol = ""
    addend = 0
    addr = 0

    def bind() -> None:
        budget.spend("binds")
        if symbol:
            image.imports.add(symbol)
            image.relocated[addr] = image.import_address(symbol) + addend

    while pos < len(stream):
        byte = stream[pos]
        pos += 1
        op, imm = byte & 0xF0, byte & 0x0F
        if op == 0x00:  # DONE: lazy streams hold one entry per DONE, so carry on
            continue
        if op in (0x10, 0x30):  # SET_DYLIB_ORDINAL_IMM, SET_DYLIB_SPECIAL_IMM
            continue
        if op == 0x20:  # SET_DYLIB_ORDINAL_ULEB
            _, pos = _uleb(stream, pos)
        elif op == 0x40:  # SET_SYMBOL_TRAILING_FLAGS_IMM
            end = stream.index(b"\0", pos)
            symbol = stream[pos:end].decode("utf-8", "replace").removeprefix("_")
            pos = end + 1
        elif op == 0x50:  # SET_TYPE_IMM
            continue
        elif op == 0x60:  # SET_ADDEND_SLEB
            addend, pos = _sleb(stream, pos)
        elif op == 0x70:  # SET_SEGMENT_AND_OFFSET_ULEB
            offset, pos = _uleb(stream, pos)
            addr = seg_bases[imm] + offset
        elif op == 0x80:  # ADD_ADDR_ULEB
            delta, pos = _uleb(stream, pos)
            addr = (addr + delta) & ((1 << 64) - 1)
        elif op == 0x90:  # DO_BIND
            bind()
            addr += ptr
        elif op == 0xA0:  # DO_BIND_ADD_ADDR_ULEB
            bind()
            delta, pos = _uleb(stream, pos)
            addr = (addr + ptr + delta) & ((1 << 64) - 1)
        elif op == 0xB0:  # DO_BIND_ADD_ADDR_IMM_SCALED
            bind()
            addr += ptr + imm * ptr
        elif op == 0xC0:  # DO_BIND_ULEB_TIMES_SKIPPING_ULEB
            count, pos = _uleb(stream, pos)
            skip, pos = _uleb(stream, pos)
            for _ in range(min(count, 1 << 20)):
                bind()
                addr += ptr + skip
        else:  # THREADED or unknown: nothing more can be read safely
            return


def _chained_fixups(
    image: Image, data: bytes, off: int, size: int, base: int, budget: _Budget
) -> None:
    """LC_DYLD_CHAINED_FIXUPS (mach-o/fixup-chains.h): walk every chain of every page."""
    blob = data[off : off + size]
    (
        _version,
        starts_off,
        imports_off,
        symbols_off,
        imports_count,
        imports_format,
        _symbols_format,
    ) = struct.unpack_from("<7I", blob, 0)
    names: list[tuple[str, int]] = []
    for i in range(imports_count):
        if imports_format == 1:  # DYLD_CHAINED_IMPORT
            (raw,) = struct.unpack_from("<I", blob, imports_off + 4 * i)
            name_off, addend = raw >> 9, 0
        elif imports_format == 2:  # DYLD_CHAINED_IMPORT_ADDEND
            raw, addend = struct.unpack_from("<Ii", blob, imports_off + 8 * i)
            name_off = raw >> 9
        elif imports_format == 3:  # DYLD_CHAINED_IMPORT_ADDEND64
            raw, addend = struct.unpack_from("<QQ", blob, imports_off + 16 * i)
            name_off = raw >> 32
        else:
            raise BinaryFormatError(f"unknown chained import format {imports_format}")
        names.append((_cstring(blob, symbols_off + name_off).removeprefix("_"), addend))
    (seg_count,) = struct.unpack_from("<I", blob, starts_off)
    for s in range(seg_count):
        (info_off,) = struct.unpack_from("<I", blob, starts_off + 4 + 4 * s)
        if info_off == 0:
            continue
        at = starts_off + info_off
        _size, page_size, pointer_format, segment_offset, _max, page_count = struct.unpack_from(
            "<IHHQIH", blob, at
        )
        starts = struct.unpack_from(f"<{page_count}H", blob, at + 22)
        for page, start in enumerate(starts):
            if start == 0xFFFF:  # DYLD_CHAINED_PTR_START_NONE
                continue
            where = segment_offset + page * page_size + start
            for _ in range(page_size // 4 + 1):
                budget.spend("fixups")
                value = image.read_int(where, 8)
                if value is None:
                    break
                nxt = _fixup(image, where, value, pointer_format, names, base)
                if nxt == 0:
                    break
                where += nxt


def _fixup(
    image: Image, where: int, value: int, fmt: int, names: list[tuple[str, int]], base: int
) -> int:
    """Apply one chained fixup; return the distance to the next one (0: end of chain)."""
    if fmt in (2, 6):  # DYLD_CHAINED_PTR_64, DYLD_CHAINED_PTR_64_OFFSET
        nxt = ((value >> 51) & 0xFFF) * 4
        if value >> 63:
            ordinal, addend = value & 0xFFFFFF, (value >> 24) & 0xFF
            if ordinal < len(names):
                name, extra = names[ordinal]
                image.imports.add(name)
                image.relocated[where] = image.import_address(name) + addend + extra
            else:
                image.unresolvable.add(where)
        else:
            target = value & 0xF_FFFF_FFFF  # low 36 bits
            high8 = (value >> 36) & 0xFF
            if fmt == 2:
                target -= base  # DYLD_CHAINED_PTR_64 holds a vmaddr, _OFFSET an offset
            image.relocated[where] = (high8 << 56) | target
        return nxt
    if fmt in (1, 9, 12):  # arm64e: authenticated pointers, stride 8
        nxt = ((value >> 51) & 0x7FF) * 8
        auth, is_bind = value >> 63, (value >> 62) & 1
        if is_bind:
            ordinal = value & (0xFFFFFF if fmt == 12 else 0xFFFF)
            if ordinal < len(names):
                name, extra = names[ordinal]
                image.imports.add(name)
                image.relocated[where] = image.import_address(name) + extra
            else:
                image.unresolvable.add(where)
        else:
            target = value & (0xFFFFFFFF if auth else 0x7FF_FFFF_FFFF)
            if fmt == 1 and not auth:
                target -= base
            image.relocated[where] = target
        return nxt
    image.unresolvable.add(where)
    return 0
