"""What every subcommand's output shares: where it goes, its width and colour, messages."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TextIO

from ftaudit.errors import InputError


def is_tty(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def color_for(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or is_tty(stream)


def width() -> int:
    return max(80, shutil.get_terminal_size((120, 24)).columns)


def emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{output}: cannot write ({exc.strerror or exc})") from None


def say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"ftaudit: {message}", file=sys.stderr)


def warn(message: str) -> None:
    print(f"ftaudit: warning: {message}", file=sys.stderr)
