"""A wheel's zip archive read member by member, within budgets, trusting nothing it claims.

`zipfile` parses the central directory; member data is read here, from the local header
on: the local header must agree with the directory, a member's data must not overlap
another's, decompression stops at the size the directory declares (so a lying directory
cannot make a small member inflate without bound), and the CRC is checked. A member that
fails any of this raises `MemberError`, which makes that member `unreadable` (the
package's verdict `unknown` with the reason); an archive whose directory cannot be read
raises `InputError` naming the file.
"""

from __future__ import annotations

import bz2
import lzma
import os
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ftaudit.errors import InputError

MAX_MEMBER_BYTES = 512 * 1024 * 1024
MAX_RATIO = 200  # uncompressed/compressed beyond this (for large members) is a zip bomb
MAX_MEMBERS = 200_000
MAX_DIRECTORY_BYTES = 64 * 1024 * 1024  # a central directory this large lists too many
_CHUNK = 64 * 1024
_STREAM_CHUNK = 4 * 1024 * 1024  # bytes `find` holds at a time, in and out
_LOCAL = struct.Struct("<4s5H3I2H")  # local file header, 30 bytes
_LOCAL_MAGIC = b"PK\x03\x04"
_METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "LZMA"}
# What zipfile raises on a central directory it cannot parse.
_DIRECTORY_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    NotImplementedError,  # "zip file version 7.7"
    UnicodeDecodeError,  # a name flagged UTF-8 that is not
    ValueError,
    struct.error,
    OverflowError,
)
# What decompressing corrupt data raises.
_DATA_ERRORS = (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError)


class MemberError(InputError):
    """One member cannot be read; the rest of the archive can."""


class Archive:
    """An open wheel: its members' directory entries and a bounded reader for each."""

    def __init__(self, source: Path | BinaryIO, name: str, size: int | None = None) -> None:
        """`source` is a path, or an open seekable file of `size` bytes (a remote wheel
        read by ranges); the archive closes it."""
        self.name = name
        if isinstance(source, Path):
            try:
                self._fh: BinaryIO = open(source, "rb")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise InputError(f"{name}: {exc.strerror or exc}") from exc
        else:
            self._fh = source
        try:
            self.size = size if size is not None else os.fstat(self._fh.fileno()).st_size
            _check_directory_size(self._fh, name)
            self._zf = zipfile.ZipFile(self._fh)
            self.infos = self._zf.infolist()
        except InputError:
            self._fh.close()
            raise
        except _DIRECTORY_ERRORS as exc:
            self._fh.close()
            raise InputError(f"{name}: not a readable wheel ({_describe(exc)})") from exc
        if len(self.infos) > MAX_MEMBERS:
            self.close()
            raise InputError(f"{name}: {len(self.infos)} members is more than a wheel holds")
        counts = Counter(info.filename for info in self.infos)
        self._duplicates = {n for n, c in counts.items() if c > 1}
        offsets = Counter(info.header_offset for info in self.infos)
        self._shared = {o for o, c in offsets.items() if c > 1}
        self._verified: set[int] = set()  # members `find` read through: size and CRC hold
        # Where each member's data must end: the next local header or the directory.
        starts = sorted(offsets)
        directory = min(int(getattr(self._zf, "start_dir", self.size)), self.size)
        self._limit = {
            start: (starts[i + 1] if i + 1 < len(starts) else directory)
            for i, start in enumerate(starts)
        }

    def close(self) -> None:
        self._zf.close()
        self._fh.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, info: zipfile.ZipInfo, cap: int = MAX_MEMBER_BYTES) -> bytes:
        """The member's bytes; MemberError saying why when they cannot be trusted."""
        method = self._check(info, cap)
        try:
            raw = self._raw(info)
        except OSError as exc:
            raise MemberError(f"cannot read the member ({exc.strerror or exc})") from exc
        if method == "deflate" and info.header_offset in self._verified:
            # `find` inflated it whole once, so its size is known to be the directory's:
            # inflated into one buffer of that size, it is never held twice.
            try:
                data = zlib.decompress(raw, -15, max(info.file_size, 1))
            except _DATA_ERRORS as exc:
                raise MemberError(f"corrupt member (deflate: {_describe(exc)})") from exc
        else:
            data = _inflate(method, raw, info.file_size)
        del raw
        if len(data) != info.file_size:
            raise MemberError("member size does not match the zip directory")
        if zlib.crc32(data) != info.CRC:
            raise MemberError("corrupt member (CRC mismatch)")
        return data

    def find(self, info: zipfile.ZipInfo, needles: tuple[bytes, ...]) -> tuple[bool, bytes] | None:
        """Whether any of `needles` occurs in the member, and its first bytes, read chunk
        by chunk so that a member of hundreds of megabytes is never held whole (with the
        same checks as `read`, CRC included). None for a method it cannot stream."""
        method = self._check(info, MAX_MEMBER_BYTES)
        if method not in ("stored", "deflate"):
            return None
        try:
            start = self._data_start(info)
        except OSError as exc:
            raise MemberError(f"cannot read the member ({exc.strerror or exc})") from exc
        inflater = zlib.decompressobj(-15) if method == "deflate" else None
        search = _Search(needles, info.file_size)
        left = info.compress_size
        self._fh.seek(start)
        while left or (inflater is not None and inflater.unconsumed_tail):
            if inflater is not None and inflater.unconsumed_tail:
                raw = inflater.unconsumed_tail
            else:
                raw = self._fh.read(min(_STREAM_CHUNK, left))
                if not raw:
                    raise MemberError("member data lies past the end of the archive")
                left -= len(raw)
            try:
                search.feed(inflater.decompress(raw, _STREAM_CHUNK) if inflater else raw)
            except _DATA_ERRORS as exc:
                raise MemberError(f"corrupt member ({method}: {_describe(exc)})") from exc
        if inflater is not None:
            search.feed(inflater.flush())
        if search.size != info.file_size:
            raise MemberError("member size does not match the zip directory")
        if search.crc != info.CRC:
            raise MemberError("corrupt member (CRC mismatch)")
        self._verified.add(info.header_offset)
        return search.found, search.head

    def _check(self, info: zipfile.ZipInfo, cap: int) -> str:
        """The member's compression method, once its directory entry is believable."""
        if info.filename in self._duplicates:
            raise MemberError("the archive holds two members of this name")
        if info.header_offset in self._shared:
            raise MemberError("member data overlaps another member (a zip bomb's trick)")
        if info.flag_bits & 0x1:
            raise MemberError("encrypted member")
        method = _METHODS.get(info.compress_type)
        if method is None:
            raise MemberError(f"unsupported compression method {info.compress_type}")
        if info.file_size > cap:
            raise MemberError(f"member of {info.file_size} bytes is larger than ftaudit reads")
        if info.file_size > 16 * 1024 * 1024 and info.file_size > MAX_RATIO * max(
            info.compress_size, 1
        ):
            raise MemberError("member compresses more than any real binary: refusing a zip bomb")
        return method

    def _raw(self, info: zipfile.ZipInfo) -> bytes:
        """The member's compressed bytes, after a local header that agrees with the
        directory, ending before the next member begins."""
        start = self._data_start(info)
        self._fh.seek(start)
        raw = self._fh.read(info.compress_size)
        if len(raw) != info.compress_size:
            raise MemberError("member data lies past the end of the archive")
        return raw

    def _data_start(self, info: zipfile.ZipInfo) -> int:
        """Where the member's compressed bytes start, once its local header agrees with
        the directory and its data ends before the next member begins."""
        if not 0 <= info.header_offset < self.size:
            raise MemberError("local header lies outside the archive")
        self._fh.seek(info.header_offset)
        head = self._fh.read(_LOCAL.size)
        if len(head) != _LOCAL.size:
            raise MemberError("local header lies past the end of the archive")
        magic, *_fields, name_len, extra_len = _LOCAL.unpack(head)
        if magic != _LOCAL_MAGIC:
            raise MemberError("no local header where the zip directory says")
        name = self._fh.read(name_len)
        if name != _encoded_name(info):
            raise MemberError("local header names another file than the zip directory")
        start: int = info.header_offset + _LOCAL.size + name_len + extra_len
        end = start + info.compress_size
        if end > self._limit.get(info.header_offset, self.size):
            raise MemberError("member data overlaps another member or the zip directory")
        return start


class _Search:
    """Needles looked for in bytes that arrive in chunks, which a needle may straddle."""

    def __init__(self, needles: tuple[bytes, ...], cap: int) -> None:
        self.needles, self.cap = needles, cap
        self._keep = max(len(n) for n in needles) - 1
        self.found, self.head, self.crc, self.size = False, b"", 0, 0
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise MemberError("member size does not match the zip directory")
        self.crc = zlib.crc32(chunk, self.crc)
        if len(self.head) < 4:
            self.head = (self.head + chunk)[:4]
        window = self._tail + chunk
        self.found = self.found or any(n in window for n in self.needles)
        self._tail = window[-self._keep :] if self._keep else b""


def _encoded_name(info: zipfile.ZipInfo) -> bytes:
    if info.flag_bits & 0x800:
        return info.orig_filename.encode("utf-8")
    try:
        return info.orig_filename.encode("cp437")
    except UnicodeEncodeError:
        return info.orig_filename.encode("utf-8")


def _check_directory_size(fh: BinaryIO, name: str) -> None:
    """Refuse, before zipfile builds an object per entry, a directory of millions."""
    end_record: Callable[[BinaryIO], list[int] | None] | None = getattr(
        zipfile, "_EndRecData", None
    )
    if end_record is None:
        return
    record = end_record(fh)
    if record is None:
        raise InputError(f"{name}: not a readable wheel (no zip end-of-directory record)")
    if record[5] > MAX_DIRECTORY_BYTES:  # _ECD_SIZE
        raise InputError(f"{name}: a zip directory of {record[5]} bytes lists too many members")
    fh.seek(0)


def _inflate(method: str, raw: bytes, size: int) -> bytes:
    """Decompress at most `size` + 1 bytes: one byte more than declared is proof enough
    that the directory lies."""
    limit = size + 1
    try:
        if method == "stored":
            return raw
        if method == "deflate":
            inflater = zlib.decompressobj(-15)
            return inflater.decompress(raw, limit)
        if method == "bzip2":
            return bz2.BZ2Decompressor().decompress(raw, limit)
        return _unlzma(raw, limit)
    except _DATA_ERRORS as exc:
        raise MemberError(f"corrupt member ({method}: {_describe(exc)})") from exc


def _unlzma(raw: bytes, limit: int) -> bytes:
    """Zip's LZMA: a 4-byte header (version, properties size), the properties, then a raw
    LZMA1 stream."""
    if len(raw) < 4:
        raise ValueError("truncated LZMA header")
    (psize,) = struct.unpack_from("<H", raw, 2)
    decode: Callable[[int, bytes], dict[str, object]] = getattr(lzma, "_decode_filter_properties")  # noqa: B009
    props = decode(lzma.FILTER_LZMA1, raw[4 : 4 + psize])
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[props]).decompress(
        raw[4 + psize :], limit
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "a member name is not valid UTF-8"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
