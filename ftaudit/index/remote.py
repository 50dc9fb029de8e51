"""A remote wheel read in place: HTTP range requests for the bytes a verdict needs.

A wheel's zip directory sits at its end, and every member can be read alone, so a verdict
needs the directory and the few members that can be extension modules, not the whole
file (a 700 MB torch wheel holds a few MB of them). `RemoteFile` is a read-only, seekable
file over `Http.get_range`: small reads (zip headers) are served from aligned blocks
fetched once; a large read (a member's data) is one request for exactly its bytes, never
kept. It never fetches more than the file's size in all.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass

from ftaudit.index.http import Http, NoRanges, RangeAnswer

BLOCK = 64 * 1024  # the unit small reads are fetched and kept in
TAIL = 256 * 1024  # the first request: the end record and most zip directories
KEEP_BLOCKS = 128  # 8 MiB of small-read blocks per open file at most
LARGE = 4 * BLOCK  # a read this long is fetched on its own, not through blocks
MIN_REMOTE_BYTES = 1024 * 1024  # below this a wheel is cheaper fetched whole


@dataclass
class Fetched:
    """What reading a remote file cost."""

    requests: int = 0
    bytes: int = 0


class RemoteFile(io.RawIOBase):
    """`url` as a seekable binary file. Raises NoRanges (the caller fetches the file
    whole) when the server does not serve ranges, and what `Http` raises otherwise."""

    def __init__(self, http: Http, url: str, size: int | None = None) -> None:
        super().__init__()
        self._http, self._url = http, url
        self.cost = Fetched()
        self._lock = threading.Lock()
        tail = self._get(None, min(TAIL, size) if size else TAIL)
        if size is not None and tail.total != size:
            raise NoRanges(f"{url}: the server says {tail.total} bytes, the index {size}")
        self.size = tail.total
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._tail = (tail.start, tail.body)  # kept: the zip directory is read from it

    def _get(self, start: int | None, end: int) -> RangeAnswer:
        answer = self._http.get_range(self._url, start, end)
        self.cost.requests += 1
        self.cost.bytes += len(answer.body)
        return answer

    # --- io.RawIOBase -------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read_at(self._pos, len(buffer))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self._pos
        data = self.read_at(self._pos, size)
        self._pos += len(data)
        return data

    # --- ranges -------------------------------------------------------------------------

    def read_at(self, offset: int, length: int) -> bytes:
        end = min(self.size, offset + max(0, length))
        if offset >= end:
            return b""
        with self._lock:
            tail_start, tail = self._tail
            if offset >= tail_start:
                return tail[offset - tail_start : end - tail_start]
            if end - offset >= LARGE:
                return self._get(offset, end - 1).body
            return self._through_blocks(offset, end)

    def _through_blocks(self, offset: int, end: int) -> bytes:
        first, last = offset // BLOCK, (end - 1) // BLOCK
        missing = [i for i in range(first, last + 1) if i not in self._blocks]
        if missing:
            lo, hi = missing[0], missing[-1]
            got = self._get(lo * BLOCK, min(self.size, (hi + 1) * BLOCK) - 1).body
            for index in range(lo, hi + 1):
                self._blocks[index] = got[(index - lo) * BLOCK : (index - lo + 1) * BLOCK]
        parts = []
        for index in range(first, last + 1):
            self._blocks.move_to_end(index)
            parts.append(self._blocks[index])
        while len(self._blocks) > KEEP_BLOCKS:
            self._blocks.popitem(last=False)
        joined = b"".join(parts)
        return joined[offset - first * BLOCK : end - first * BLOCK]
