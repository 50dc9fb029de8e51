"""Mutations that know where the numbers are: header fields of ELF, Mach-O, PE and zip.

A reader trusts a file's sizes, counts and offsets; random bytes rarely hit one, so these
mutators find the fields (program headers, dynamic entries, load commands, directories)
and set them to the values that break readers: 0, the largest values, values just past
the file's end, 2**40.
"""

from __future__ import annotations

import random
import struct

Field = tuple[int, int]  # offset, width in bytes


def interesting(rng: random.Random, width: int, size: int) -> int:
    top = (1 << (8 * width)) - 1
    choices = [
        0,
        1,
        top,
        top >> 1,
        (top >> 1) + 1,
        size,
        size + rng.randint(1, 64),
        size - rng.randint(1, 64),
        rng.randint(0, top),
        rng.randint(0, 4096),
    ]
    if width >= 4:
        choices += [0x1A000000, 1 << 31, (1 << 32) - 1]
    if width == 8:
        choices += [1 << 40, 1 << 63]
    return max(0, min(top, rng.choice(choices)))


def set_field(data: bytes, rng: random.Random, fields: list[Field], little: bool = True) -> bytes:
    fields = [(o, w) for o, w in fields if o >= 0 and o + w <= len(data)]
    if not fields:
        return generic_mutation(data, rng)
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        offset, width = rng.choice(fields)
        value = interesting(rng, width, len(data))
        out[offset : offset + width] = value.to_bytes(width, "little" if little else "big")
    return bytes(out)


def generic_mutation(data: bytes, rng: random.Random) -> bytes:
    """Byte-level changes: flips, interesting words, cuts, copies of a chunk elsewhere."""
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    out = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        width = rng.choice((1, 2, 4, 8))
        at = rng.randrange(max(1, len(out) - width))
        value = interesting(rng, width, len(data))
        out[at : at + width] = value.to_bytes(width, "little")[: len(out) - at]
    elif kind == 2:
        out = out[: rng.randrange(len(out))]
    elif kind == 3:
        a = rng.randrange(len(out))
        b = min(len(out), a + rng.randint(1, 256))
        at = rng.randrange(len(out))
        out[at:at] = out[a:b]
    elif kind == 4:
        a = rng.randrange(len(out))
        del out[a : a + rng.randint(1, 256)]
    else:
        at = rng.randrange(len(out))
        out[at : at + 4] = bytes(4)
    return bytes(out)


# --- ELF ----------------------------------------------------------------------------------


def elf_fields(data: bytes) -> list[Field]:
    """Header, program header and dynamic-entry fields of a 64- or 32-bit ELF."""
    if len(data) < 52 or data[:4] != b"\x7fELF":
        return []
    wide, little = data[4] == 2, data[5] == 1
    e = "<" if little else ">"
    word = 8 if wide else 4
    fields: list[Field] = [(0x10, 2), (0x12, 2)]
    if wide:
        fields += [(0x20, 8), (0x28, 8), (0x36, 2), (0x38, 2), (0x3A, 2), (0x3C, 2), (0x3E, 2)]
        phoff, phentsize, phnum = (
            struct.unpack_from(e + "Q", data, 0x20)[0],
            *struct.unpack_from(e + "HH", data, 0x36),
        )
    else:
        fields += [(0x1C, 4), (0x20, 4), (0x2A, 2), (0x2C, 2), (0x2E, 2), (0x30, 2), (0x32, 2)]
        phoff, phentsize, phnum = (
            struct.unpack_from(e + "I", data, 0x1C)[0],
            *struct.unpack_from(e + "HH", data, 0x2A),
        )
    for i in range(min(phnum, 64)):
        at = phoff + i * phentsize
        if at + phentsize > len(data) or phentsize < (56 if wide else 32):
            break
        if wide:  # type, flags, offset, vaddr, paddr, filesz, memsz, align
            fields += [(at, 4), (at + 4, 4)] + [(at + 8 + 8 * k, 8) for k in range(6)]
            p_type, p_offset, p_filesz = (
                struct.unpack_from(e + "I", data, at)[0],
                struct.unpack_from(e + "Q", data, at + 8)[0],
                struct.unpack_from(e + "Q", data, at + 32)[0],
            )
        else:
            fields += [(at + 4 * k, 4) for k in range(8)]
            p_type, p_offset, p_filesz = struct.unpack_from(e + "IIxxxxxxxxI", data, at)
        if p_type == 2:  # PT_DYNAMIC: every tag and value
            for j in range(min(p_filesz // (2 * word), 256)):
                entry = p_offset + j * 2 * word
                if entry + 2 * word > len(data):
                    break
                fields += [(entry, word), (entry + word, word)]
    return fields


def mutate_elf(data: bytes, rng: random.Random) -> bytes:
    little = len(data) > 5 and data[5] == 1
    return set_field(data, rng, elf_fields(data), little)


# --- Mach-O -------------------------------------------------------------------------------


def macho_fields(data: bytes) -> list[Field]:
    """Every word of the header and the load commands of a thin Mach-O (or the first
    slice of a universal one, and the fat header's own fields)."""
    fields: list[Field] = []
    base = 0
    if data[:4] in (b"\xca\xfe\xba\xbe", b"\xbe\xba\xfe\xca") and len(data) >= 28:
        fields += [(4 + 4 * k, 4) for k in range(1 + 5 * 2)]
        base = int.from_bytes(data[16:20], "big")
    head = data[base : base + 32]
    if len(head) < 28 or head[:4] not in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe"):
        return fields
    wide = head[:4] == b"\xcf\xfa\xed\xfe"
    header = 32 if wide else 28
    sizeofcmds = int.from_bytes(head[20:24], "little")
    end = min(len(data), base + header + sizeofcmds, base + header + 64 * 1024)
    fields += [(base + 4 * k, 4) for k in range(header // 4)]
    fields += [(at, 4) for at in range(base + header, end - 3, 4)]
    fields += [(at, 8) for at in range(base + header, end - 7, 8)]
    return fields


def mutate_macho(data: bytes, rng: random.Random) -> bytes:
    return set_field(data, rng, macho_fields(data))


# --- PE -----------------------------------------------------------------------------------


def pe_fields(data: bytes) -> list[Field]:
    """Every word of the headers (DOS, COFF, optional header, data directories, section
    table) and of the export directory and base relocation blocks they point to."""
    if len(data) < 0x40 or data[:2] != b"MZ":
        return []
    pe = int.from_bytes(data[0x3C:0x40], "little")
    fields: list[Field] = [(0x3C, 4)]
    if pe + 24 > len(data):
        return fields
    opt_size = int.from_bytes(data[pe + 20 : pe + 22], "little")
    nsect = int.from_bytes(data[pe + 6 : pe + 8], "little")
    end = min(len(data), pe + 24 + opt_size + 40 * min(nsect, 96))
    fields += [(at, 4) for at in range(pe, end - 3, 4)]
    fields += [(at, 2) for at in range(pe, end - 1, 2)]
    fields += [(at, 8) for at in range(pe, end - 7, 8)]
    # Sections' raw data (export table, relocations) by file offset: count words there.
    sections = pe + 24 + opt_size
    for i in range(min(nsect, 96)):
        at = sections + 40 * i
        if at + 40 > len(data):
            break
        raw_size, raw_ptr = struct.unpack_from("<II", data, at + 16)
        lo, hi = raw_ptr, min(len(data), raw_ptr + raw_size, raw_ptr + 4096)
        fields += [(x, 4) for x in range(lo, hi - 3, 16)]
    return fields


def mutate_pe(data: bytes, rng: random.Random) -> bytes:
    return set_field(data, rng, pe_fields(data))


# --- zip ----------------------------------------------------------------------------------

_EOCD = b"PK\x05\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"


def zip_fields(data: bytes) -> list[Field]:
    """Fields of every central directory entry, local header and the end record."""
    fields: list[Field] = []
    at = data.rfind(_EOCD)
    if at >= 0:
        fields += [(at + 4 + 2 * k, 2) for k in range(4)] + [(at + 12, 4), (at + 16, 4)]
    pos = data.find(_CENTRAL)
    while 0 <= pos < len(data) - 46:
        # made by, needed, flags, method, time, date, crc, sizes, lengths, ..., offset
        fields += [(pos + 4 + 2 * k, 2) for k in range(6)]
        fields += [(pos + 16, 4), (pos + 20, 4), (pos + 24, 4)]
        fields += [(pos + 28 + 2 * k, 2) for k in range(5)] + [(pos + 42, 4)]
        pos = data.find(_CENTRAL, pos + 46)
    pos = data.find(_LOCAL)
    while 0 <= pos < len(data) - 30:
        fields += [(pos + 4 + 2 * k, 2) for k in range(5)]
        fields += [(pos + 14, 4), (pos + 18, 4), (pos + 22, 4), (pos + 26, 2), (pos + 28, 2)]
        pos = data.find(_LOCAL, pos + 30)
    return fields


_NAMES = [
    b"x/[/].so",
    b"x/[bold]y[/bold].so",
    b"x/\x91\xff.so",
    b"../../etc/passwd.so",
    b"/abs.so",
    b"x\\y.pyd",
    b"x/" + b"a" * 300 + b".so",
    b"x/lib.libs/z.dll",
]


def mutate_zip(data: bytes, rng: random.Random) -> bytes:
    """Lie in a directory field, flag members encrypted or UTF-8, rename them, duplicate
    a central entry, or swap a member's compression method."""
    kind = rng.randrange(5)
    out = bytearray(data)
    entries = [i for i in range(len(data) - 46) if data[i : i + 4] == _CENTRAL][:64]
    if kind == 0 or not entries:
        return set_field(data, rng, zip_fields(data))
    pos = rng.choice(entries)
    if kind == 1:  # general purpose flags: encrypted, data descriptor, UTF-8
        flag = rng.choice((0x1, 0x8, 0x800, 0x41))
        value = int.from_bytes(out[pos + 8 : pos + 10], "little") ^ flag
        out[pos + 8 : pos + 10] = value.to_bytes(2, "little")
    elif kind == 2:  # compression method
        method = rng.choice((0, 8, 12, 14, 9, 99, 0xFFFF))
        out[pos + 10 : pos + 12] = method.to_bytes(2, "little")
    elif kind == 3:  # a new name (same length keeps the rest of the directory in place)
        name_len = int.from_bytes(out[pos + 28 : pos + 30], "little")
        name = rng.choice(_NAMES)
        start = pos + 46
        out[start : start + name_len] = name[:name_len].ljust(name_len, b"_")
    else:  # a duplicate of an entry, counted in the end record
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", out, pos + 28)
        entry = bytes(out[pos : pos + 46 + name_len + extra_len + comment_len])
        eocd = out.rfind(_EOCD)
        if eocd < 0:
            return bytes(out)
        out[pos:pos] = entry
        eocd += len(entry)
        for off in (8, 10):
            n = int.from_bytes(out[eocd + off : eocd + off + 2], "little") + 1
            out[eocd + off : eocd + off + 2] = (n & 0xFFFF).to_bytes(2, "little")
        size = int.from_bytes(out[eocd + 12 : eocd + 16], "little") + len(entry)
        out[eocd + 12 : eocd + 16] = (size & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(out)
