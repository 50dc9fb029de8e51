"""Reading a project's text inputs (TOML, JSON, requirements): one place for the size
bound, the OS error and the encoding error, each a one-line message naming the file."""

from __future__ import annotations

from pathlib import Path

from ftaudit.errors import InputError


def read_text(path: Path, *, limit: int, what: str, encoding: str = "utf-8") -> str:
    """The file's text; a file over `limit` bytes is refused before it is read."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise InputError(f"{path}: {size} bytes is too large for {what}")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
