"""Windows PE/COFF (.pyd) read into an `Image` with pefile.

Pointers in a PE's data are absolute addresses for its preferred ImageBase; the base
relocation table lists where they are. Laying the image out at base 0 means subtracting
ImageBase at each of those places. Import address table slots become the fake addresses
of the functions they import, as the loader would fill them.
"""

from __future__ import annotations

import struct

import pefile

from ftaudit.errors import BinaryFormatError
from ftaudit.inspect.image import Image, Segment

_MACHINES = {
    0x8664: ("x86_64", 8, "win64"),
    0xAA64: ("aarch64", 8, "arm64-win"),
    0x14C: ("i386", 4, "win32"),
}
_DIRS = pefile.DIRECTORY_ENTRY
_EXECUTE = 0x20000000
_WRITE = 0x80000000
_REL_DIR64, _REL_HIGHLOW = 10, 3
_TLS_LIMIT = 1 << 20  # a TLS template larger than this is not read


def load_pe(data: bytes) -> Image:
    try:
        return _load(data)
    except (
        pefile.PEFormatError,
        struct.error,
        ValueError,
        IndexError,
        KeyError,
        AttributeError,
        TypeError,
        OverflowError,
    ) as exc:
        raise BinaryFormatError(f"corrupt PE file ({exc.__class__.__name__}: {exc})") from exc


def _load(data: bytes) -> Image:
    pe = pefile.PE(data=data, fast_load=True)
    machine = _MACHINES.get(pe.FILE_HEADER.Machine)
    if machine is None:
        raise BinaryFormatError(f"unsupported PE machine {pe.FILE_HEADER.Machine:#x}")
    arch, pointer_size, abi = machine
    image = Image(arch=arch, pointer_size=pointer_size, little_endian=True, segments=[], abi=abi)
    for section in pe.sections:
        size = section.Misc_VirtualSize or section.SizeOfRawData
        raw = section.get_data()[: min(section.SizeOfRawData, size)]
        name = section.Name.rstrip(b"\0").decode("ascii", "replace")
        image.segments.append(
            Segment(
                vaddr=section.VirtualAddress,
                memsz=size,
                data=raw,
                executable=bool(section.Characteristics & _EXECUTE),
                writable=bool(section.Characteristics & _WRITE),
                name=name,
            )
        )
        image.sections.append((name, section.VirtualAddress, size))
    pe.parse_data_directories(
        directories=[_DIRS["IMAGE_DIRECTORY_ENTRY_EXPORT"], _DIRS["IMAGE_DIRECTORY_ENTRY_IMPORT"]]
    )
    export = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
    for sym in export.symbols if export is not None else ():
        if sym.name and not sym.forwarder:
            image.exports[sym.name.decode("ascii", "replace")] = sym.address
    base = pe.OPTIONAL_HEADER.ImageBase
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", ()):
        image.libraries.add(entry.dll.decode("ascii", "replace").lower())
        for imp in entry.imports:
            name = imp.name.decode("ascii", "replace") if imp.name else f"#{imp.ordinal}"
            image.imports.add(name)
            image.relocated[imp.address - base] = image.import_address(name)

    pe.parse_data_directories(directories=[_DIRS["IMAGE_DIRECTORY_ENTRY_TLS"]])
    tls = getattr(pe, "DIRECTORY_ENTRY_TLS", None)
    if tls is not None and tls.struct.StartAddressOfRawData and tls.struct.AddressOfIndex:
        t = tls.struct
        start, end = t.StartAddressOfRawData - base, t.EndAddressOfRawData - base
        if 0 <= start <= end and end - start + t.SizeOfZeroFill <= _TLS_LIMIT:
            image.tls_template = (start, end, t.SizeOfZeroFill)
            image.tls_index_at = t.AddressOfIndex - base

    def relocate() -> None:
        pe.parse_data_directories(directories=[_DIRS["IMAGE_DIRECTORY_ENTRY_BASERELOC"]])
        for block in getattr(pe, "DIRECTORY_ENTRY_BASERELOC", ()):
            for entry in block.entries:
                width = {_REL_DIR64: 8, _REL_HIGHLOW: 4}.get(entry.type)
                if width is None or entry.rva in image.relocated:
                    continue
                value = image.read_int(entry.rva, width)
                if value is not None:
                    image.relocated[entry.rva] = (value - base) & ((1 << (8 * width)) - 1)

    image.finish = lambda: _guarded(relocate)
    return image


def _guarded(work: object) -> None:
    try:
        work()  # type: ignore[operator]
    except (pefile.PEFormatError, struct.error, ValueError, IndexError) as exc:
        raise BinaryFormatError(f"corrupt PE file ({exc.__class__.__name__}: {exc})") from exc
