"""ELF shared objects (Linux, every architecture) read into an `Image` with pyelftools.

Everything comes from the dynamic segment (symbols, relocation tables), which the loader
itself uses, so stripped binaries without section headers read the same. Relocated
pointers are computed as the loader would at base 0: GNU ld writes the addend in place
but lld writes 0, so the value always comes from the relocation entry; RELR (packed
relative relocations) keep the value in place, which a plain read already returns.
"""

from __future__ import annotations

import io
import struct

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
)


def load_elf(data: bytes) -> Image:
    try:
        return _load(data)
    except _PARSE_ERRORS as exc:
        raise BinaryFormatError(f"corrupt ELF file ({exc.__class__.__name__}: {exc})") from exc


def _load(data: bytes) -> Image:
    elf = ELFFile(io.BytesIO(data))
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
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD":
            if seg["p_filesz"] > len(data) or seg["p_offset"] + seg["p_filesz"] > len(data):
                raise BinaryFormatError("truncated ELF file: a segment lies past its end")
            image.segments.append(
                Segment(
                    vaddr=seg["p_vaddr"],
                    memsz=seg["p_memsz"],
                    data=seg.data(),
                    executable=bool(seg["p_flags"] & 1),
                )
            )
        elif seg["p_type"] == "PT_DYNAMIC" and isinstance(seg, DynamicSegment):
            dynamic = seg
    if dynamic is None:
        raise BinaryFormatError("not a shared object: no dynamic segment")
    for section in elf.iter_sections():
        if section["sh_flags"] & 2 and section["sh_addr"]:  # SHF_ALLOC
            image.sections.append((section.name, section["sh_addr"], section["sh_size"]))

    symbols = list(dynamic.iter_symbols())
    for sym in symbols:
        if not sym.name:
            continue
        if sym["st_shndx"] == "SHN_UNDEF":
            image.imports.add(sym.name)
        elif sym["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC") and sym["st_info"][
            "bind"
        ] in ("STB_GLOBAL", "STB_WEAK"):
            image.exports[sym.name] = sym["st_value"]
    _apply_relocations(image, dynamic, symbols)
    return image


def _apply_relocations(image: Image, dynamic: DynamicSegment, symbols: list[object]) -> None:
    kinds = _RELOCS.get(image.arch.removesuffix("be"))
    if kinds is None:
        return
    mask = (1 << (8 * image.pointer_size)) - 1
    for table_name, table in dynamic.get_relocation_tables().items():
        if table_name == "RELR":
            continue  # values are in place
        is_rela = table.is_RELA()
        for rel in table.iter_relocations():
            offset = rel["r_offset"]
            rtype = rel["r_info_type"]
            if rtype == kinds.relative:
                if is_rela:
                    image.relocated[offset] = rel["r_addend"] & mask
                # REL: the addend is in place, which a plain read returns.
                continue
            if rtype in kinds.absolute or rtype in kinds.symbolic:
                sym = symbols[rel["r_info_sym"]]
                if is_rela:
                    addend = rel["r_addend"]
                elif rtype in kinds.absolute:
                    addend = image.read_int(offset, image.pointer_size) or 0
                else:
                    addend = 0
                name = getattr(sym, "name", "")
                if sym["st_shndx"] == "SHN_UNDEF":  # type: ignore[index]
                    if not name:
                        image.unresolvable.add(offset)
                        continue
                    base = image.import_address(name)
                else:
                    base = sym["st_value"]  # type: ignore[index]
                image.relocated[offset] = (base + addend) & mask
            elif rtype == kinds.irelative or rtype != 0:
                image.unresolvable.add(offset)
