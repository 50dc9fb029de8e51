"""ELF shared objects (Linux, every architecture) read into an `Image` with pyelftools.

Everything comes from the dynamic segment (symbols, relocation tables), which the loader
itself uses, so stripped binaries without section headers read the same. Relocated
pointers are computed as the loader would at base 0: GNU ld writes the addend in place
but lld writes 0, so the value always comes from the relocation entry; RELR (packed
relative relocations) keep the value in place, which a plain read already returns.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Callable

from elftools.common.exceptions import ELFError, ELFParseError, ELFRelocationError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile

from ftaudit.errors import BinaryFormatError
from ftaudit.inspect.image import Image, Segment

_ARCH = {
    "EM_X86_64": "x86_64",
    "EM_AARCH64": "aarch64",
    "EM_386": "i386",
    "EM_ARM": "arm",
    "EM_PPC64": "ppc64",
    "EM_S390": "s390x",
    "EM_RISCV": "riscv64",
    "EM_LOONGARCH": "loongarch64",
}


class _RelocKinds:
    """Relocation type numbers of one architecture, by what they mean to a static reader."""

    def __init__(
        self, relative: int, absolute: tuple[int, ...], symbolic: tuple[int, ...], irelative: int
    ) -> None:
        self.relative = relative
        self.absolute = absolute  # S + A (R_*_64, R_*_ABS64, R_386_32)
        self.symbolic = symbolic  # S (+ A for RELA): GLOB_DAT, JUMP_SLOT
        self.irelative = irelative


_RELOCS = {
    "x86_64": _RelocKinds(8, (1,), (6, 7), 37),
    "aarch64": _RelocKinds(1027, (257,), (1025, 1026), 1032),
    "i386": _RelocKinds(8, (1,), (6, 7), 42),
    "arm": _RelocKinds(23, (2,), (21, 22), 160),
    "ppc64": _RelocKinds(22, (38,), (20, 21), 248),
    "s390x": _RelocKinds(12, (22,), (10, 11), 61),
    "riscv64": _RelocKinds(3, (2,), (5,), 58),
    "loongarch64": _RelocKinds(3, (2,), (5,), 12),
}

# What pyelftools raises on malformed input; anything else is a bug and propagates.
_PARSE_ERRORS = (
    ELFError,
    ELFParseError,
    ELFRelocationError,
    struct.error,
    ValueError,
    KeyError,
    IndexError,
    OverflowError,
    AttributeError,
    TypeError,
    UnicodeDecodeError,
    AssertionError,  # pyelftools checks some structures with assert
)


def load_elf(data: bytes) -> Image:
    try:
        return _load(data)
    except _PARSE_ERRORS as exc:
        raise BinaryFormatError(f"corrupt ELF file ({exc.__class__.__name__}: {exc})") from exc


def _load(data: bytes) -> Image:
    elf = ELFFile(io.BytesIO(data))
    view = memoryview(data)
    machine = elf["e_machine"]
    arch = _ARCH.get(machine)
    if arch is None:
        raise BinaryFormatError(f"unsupported ELF machine {machine}")
    image = Image(
        arch=arch,
        pointer_size=8 if elf.elfclass == 64 else 4,
        little_endian=elf.little_endian,
        segments=[],
    )
    if arch == "ppc64" and not elf.little_endian:
        image.arch = "ppc64be"
    dynamic: DynamicSegment | None = None
    relro: list[tuple[int, int]] = []
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD":
            if seg["p_offset"] + seg["p_filesz"] > len(data):
                raise BinaryFormatError("truncated ELF file: a segment lies past its end")
            image.segments.append(
                Segment(
                    vaddr=seg["p_vaddr"],
                    memsz=seg["p_memsz"],
                    data=view[seg["p_offset"] : seg["p_offset"] + seg["p_filesz"]],
                    executable=bool(seg["p_flags"] & 1),
                    writable=bool(seg["p_flags"] & 2),
                )
            )
        elif seg["p_type"] == "PT_DYNAMIC" and isinstance(seg, DynamicSegment):
            dynamic = seg
        elif seg["p_type"] == "PT_GNU_RELRO":
            relro.append((seg["p_vaddr"], seg["p_vaddr"] + seg["p_memsz"]))
    _check_layout(image.segments)
    for start, end in relro:
        image.segments = _protect(image.segments, start, end, _page_size(arch))
    if dynamic is None:
        raise BinaryFormatError("not a shared object: no dynamic segment")
    if elf.num_sections() < 4096:
        for section in elf.iter_sections():
            if section["sh_flags"] & 2 and section["sh_addr"]:  # SHF_ALLOC
                image.sections.append((section.name, section["sh_addr"], section["sh_size"]))
    tags: dict[str, int] = {}
    for tag in dynamic.iter_tags():
        tags.setdefault(tag.entry.d_tag, tag.entry.d_val)
    symbols = _symbols(image, tags, dynamic.num_symbols())
    for name, defined, exported, _value in symbols:
        if not name:
            continue
        if not defined:
            image.imports.add(name)
        elif exported:
            image.exports[name] = _value
    image.finish = lambda: _guarded(lambda: _apply_relocations(image, tags, symbols))
    return image


def _guarded(work: Callable[[], None]) -> None:
    try:
        work()
    except _PARSE_ERRORS as exc:
        raise BinaryFormatError(f"corrupt ELF file ({exc.__class__.__name__}: {exc})") from exc


# (name, defined, exported function, value)
_Symbol = tuple[str, bool, bool, int]


def _table(image: Image, addr: int | None, size: int | None) -> bytes:
    """A dynamic table's bytes as the file holds them.

    Its size is what DT_*SZ claims, which is only believed as far as the file goes: the
    part past the segment's file bytes would read as zeros (entries of type 0, which
    change nothing), so it is never materialised.
    """
    if not addr or not size:
        return b""
    seg = image.segment_at(addr)
    if seg is None or size < 0:
        raise BinaryFormatError(f"dynamic table at {addr:#x} lies outside the image")
    start = addr - seg.vaddr
    return bytes(seg.data[start : start + min(size, seg.memsz - start)])


def _check_layout(segments: list[Segment]) -> None:
    """PT_LOAD segments lie in ascending, disjoint address ranges (the ELF gABI). One that
    claims to reach over another (a p_memsz of 2**40) leaves no layout to trust."""
    ordered = sorted(segments, key=lambda s: s.vaddr)
    for a, b in itertools.pairwise(ordered):
        if a.vaddr + a.memsz > b.vaddr:
            raise BinaryFormatError(
                f"corrupt ELF file: the segment at {a.vaddr:#x} ({a.memsz:#x} bytes) "
                f"overlaps the one at {b.vaddr:#x}"
            )


def _page_size(arch: str) -> int:
    # The loader protects whole pages of the run-time page size; 64 KiB kernels exist for
    # every architecture but x86, and the larger page protects the shorter range.
    return 4096 if arch in ("x86_64", "i386") else 65536


def _protect(segments: list[Segment], start: int, end: int, page: int) -> list[Segment]:
    """Split off the part of a writable segment that PT_GNU_RELRO makes read-only once
    relocations are applied, before any init code runs (.data.rel.ro, the GOT): no code
    can change it, so a pointer or slot there is as good as read-only data.

    The loader rounds the end down to a page (glibc's _dl_protect_relro)."""
    end &= ~(page - 1)
    out = []
    for seg in segments:
        lo, hi = max(start, seg.vaddr), min(end, seg.vaddr + seg.memsz)
        if not seg.writable or lo >= hi:
            out.append(seg)
            continue
        for a, b, writable in (
            (seg.vaddr, lo, True),
            (lo, hi, False),
            (hi, seg.vaddr + seg.memsz, True),
        ):
            if a < b:
                off = a - seg.vaddr
                out.append(
                    Segment(
                        vaddr=a,
                        memsz=b - a,
                        data=seg.data[off : max(off, min(len(seg.data), b - seg.vaddr))],
                        executable=seg.executable,
                        name=seg.name,
                        writable=writable,
                    )
                )
    return out


def _symbols(image: Image, tags: dict[str, int], count: int) -> list[_Symbol]:
    """The dynamic symbol table, parsed with struct: pyelftools is too slow for 10k+."""
    order = "<" if image.little_endian else ">"
    wide = image.pointer_size == 8
    entsize = tags.get("DT_SYMENT", 24 if wide else 16)
    if count < 0 or count > 10_000_000 or entsize < (24 if wide else 16):
        raise BinaryFormatError("implausible dynamic symbol table")
    raw = _table(image, tags.get("DT_SYMTAB"), count * entsize)
    strtab = _table(image, tags.get("DT_STRTAB"), tags.get("DT_STRSZ"))
    if len(raw) < count * entsize:
        raise BinaryFormatError("truncated ELF file: the dynamic symbol table lies past its end")
    out: list[_Symbol] = []
    fmt = struct.Struct(order + ("IBBHQQ" if wide else "IIIBBH"))
    for i in range(count):
        fields = fmt.unpack_from(raw, i * entsize)
        if wide:
            name_off, info, _other, shndx, value, _size = fields
        else:
            name_off, value, _size, info, _other, shndx = fields
        end = strtab.find(b"\0", name_off)
        name = strtab[name_off:end].decode("utf-8", "replace") if end >= 0 else ""
        bind, kind = info >> 4, info & 0xF
        out.append((name, shndx != 0, shndx != 0 and kind in (2, 10) and bind in (1, 2), value))
    return out


def _relocation_entries(
    image: Image, tags: dict[str, int]
) -> list[tuple[int, int, int, int | None]]:
    """(offset, type, symbol index, addend or None for REL) from every dynamic table."""
    order = "<" if image.little_endian else ">"
    wide = image.pointer_size == 8
    tables = [
        (tags.get("DT_RELA"), tags.get("DT_RELASZ"), True),
        (tags.get("DT_REL"), tags.get("DT_RELSZ"), False),
        (tags.get("DT_JMPREL"), tags.get("DT_PLTRELSZ"), tags.get("DT_PLTREL") == 7),
    ]
    out = []
    for addr, size, rela in tables:
        raw = _table(image, addr, size)
        fmt = struct.Struct(order + ("QQq" if wide else "IIi")[: 3 if rela else 2])
        for fields in fmt.iter_unpack(raw[: len(raw) - len(raw) % fmt.size]):
            offset, info = fields[0], fields[1]
            sym, rtype = (info >> 32, info & 0xFFFFFFFF) if wide else (info >> 8, info & 0xFF)
            out.append((offset, rtype, sym, fields[2] if rela else None))
    return out


def _apply_relocations(image: Image, tags: dict[str, int], symbols: list[_Symbol]) -> None:
    kinds = _RELOCS.get(image.arch.removesuffix("be"))
    if kinds is None:
        return
    mask = (1 << (8 * image.pointer_size)) - 1
    for offset, rtype, sym_index, addend in _relocation_entries(image, tags):
        if rtype == kinds.relative:
            if addend is not None:
                image.relocated[offset] = addend & mask
            # REL: the addend is in place, which a plain read returns.
        elif rtype in kinds.absolute or rtype in kinds.symbolic:
            if sym_index >= len(symbols):
                image.unresolvable.add(offset)
                continue
            name, defined, _exported, value = symbols[sym_index]
            if addend is None:
                addend = (
                    (image.read_int(offset, image.pointer_size) or 0)
                    if (rtype in kinds.absolute)
                    else 0
                )
            if defined:
                base = value
            elif name:
                base = image.import_address(name)
            else:
                image.unresolvable.add(offset)
                continue
            image.relocated[offset] = (base + addend) & mask
        elif rtype != 0:
            image.unresolvable.add(offset)  # IRELATIVE, TLS, COPY: not known statically
