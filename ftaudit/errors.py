"""Errors that end a run, each with the exit code it maps to (caught once, in the CLI).

Exit codes: 0 nothing at or above --fail-on; 1 findings; 2 a usage or input error, or a
scan that could not check every package (network, index, cache, integrity); 3 an internal
error (a bug in ftaudit: never to be read as findings).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INCOMPLETE = 2  # also usage and input errors: the run says nothing reliable
EXIT_INTERNAL = 3


class FtauditError(Exception):
    """A failure the user can act on: printed as one line, no traceback unless --verbose."""

    exit_code = EXIT_INCOMPLETE


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


class IndexIntegrityError(PackageIndexError):
    """An index listed a file with a digest or a name that cannot be what it claims."""


class CacheError(FtauditError):
    """The cache could not give back what it holds (damaged, or unusable)."""


def first_line(exc: BaseException) -> str:
    """packaging's parse errors draw a caret under the input on extra lines; a one-line
    message keeps the first."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
