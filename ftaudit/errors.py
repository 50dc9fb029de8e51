"""Errors that end a run, each with the exit code it maps to (caught once, in the CLI)."""

from __future__ import annotations


class FtauditError(Exception):
    """A failure the user can act on: printed as one line, no traceback unless --verbose."""

    exit_code = 2


class UsageError(FtauditError):
    """Bad command-line input."""


class InputError(FtauditError):
    """An input file, environment or artifact that cannot be read."""


class PackageIndexError(FtauditError):
    """The package index could not be reached or answered nonsense."""


class BinaryFormatError(Exception):
    """A binary could not be parsed; inside a scan this becomes a per-package 'unknown'."""


class HashMismatch(PackageIndexError):
    """An artifact is not the one a lock or a --hash pins."""


def first_line(exc: BaseException) -> str:
    """packaging's parse errors draw a caret under the input on extra lines; a one-line
    message keeps the first."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
