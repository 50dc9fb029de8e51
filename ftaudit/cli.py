"""Command line: parse, wire the stages together, map errors to exit codes. No logic here."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ftaudit.cli_common import color_for, emit, say, width
from ftaudit.cli_parser import parse
from ftaudit.cli_scan import scan_command
from ftaudit.errors import (
    EXIT_INTERNAL,
    FtauditError,
    InputError,
    first_line,
)

if TYPE_CHECKING:
    pass


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
    except SystemExit as exc:  # argparse has printed the usage error or the help
        return int(exc.code or 0)
    except FtauditError as exc:  # a FTAUDIT_* variable that does not parse
        print(f"ftaudit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    previous = _catch_interrupt()
    try:
        handler: Callable[[argparse.Namespace], int] = {
            "scan": scan_command,
            "inspect": _inspect,
            "schema": _schema,
            "run": _run,
            "cache": _cache,
        }[args.command]
        return handler(args)
    except FtauditError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"ftaudit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ftaudit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug must not exit 1, the code of findings
        if args.verbose:
            traceback.print_exc()
        print(
            f"ftaudit: internal error: {type(exc).__name__}: {first_line(exc)}; "
            "run with --verbose for the traceback",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _catch_interrupt() -> Any:
    """On Ctrl-C, first abandon every request in flight (worker threads are blocked in
    sockets, and the pool would wait for them), then interrupt the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupted(signum: int, frame: object) -> None:
        from ftaudit.index import http

        http.cancel()
        raise KeyboardInterrupt

    return signal.signal(signal.SIGINT, interrupted)


def entry() -> None:
    sys.exit(main())


# --- inspect ------------------------------------------------------------------------------


def _inspect(args: argparse.Namespace) -> int:
    from ftaudit.inspect.artifact import inspect_file, inspect_wheel, looks_like_wheel
    from ftaudit.report import json as json_format
    from ftaudit.report import terminal

    target = str(args.artifact)
    if urlsplit(target).scheme in ("http", "https", "file"):
        path = _download_for_inspect(args, target)
        facts = inspect_wheel(path, Path(urlsplit(target).path).name)
    else:
        path = Path(target)
        if not path.exists():
            raise InputError(f"{path}: no such file")
        if path.is_dir():
            raise InputError(f"{path}: is a directory (give a wheel or a binary)")
        if path.suffix == ".whl" or looks_like_wheel(path):
            facts = inspect_wheel(path)
        elif path.name.endswith((".tar.gz", ".zip", ".tar.bz2")):
            raise InputError(f"{path}: an sdist holds no binaries to inspect: build it first")
        else:
            facts = inspect_file(path)
    if args.format == "json":
        text = json_format.render_inspect(facts)
    else:
        color = args.output is None and color_for(sys.stdout)
        text = terminal.render_inspect(facts, width=width(), color=color)
    emit(text, args.output)
    return 0


def _download_for_inspect(args: argparse.Namespace, url: str) -> Path:
    from ftaudit.cache import Cache, default_cache_dir
    from ftaudit.index.http import Http, fetch_artifact

    base, _, fragment = url.partition("#")
    sha = fragment.split("=", 1)[1] if fragment.startswith("sha256=") else None
    filename = Path(urlsplit(base).path).name
    if not filename.endswith(".whl"):
        raise InputError(f"{url}: not a wheel URL")
    cache = Cache(args.cache_dir or default_cache_dir())
    try:
        if not cache.artifact_path(base, filename, sha).is_file():
            say(args, f"downloading {filename}")
        return fetch_artifact(Http(), cache, base, filename, sha)
    finally:
        cache.close()


# --- schema -------------------------------------------------------------------------------


def _schema(args: argparse.Namespace) -> int:
    from ftaudit.guard.report import run_schema
    from ftaudit.report.json import report_schema

    emit(run_schema() if args.which == "run" else report_schema(), args.output)
    return 0


def _run(args: argparse.Namespace) -> int:
    from ftaudit import cli_run

    return cli_run.run(args)


# --- cache --------------------------------------------------------------------------------


def _cache(args: argparse.Namespace) -> int:
    from ftaudit.cache import Cache, default_cache_dir

    cache = Cache(args.cache_dir or default_cache_dir())
    try:
        if args.action == "clear":
            cache.clear()
            print(f"cleared {cache.root}")
        else:
            for key, value in cache.info().items():
                print(f"{key}: {value}")
    finally:
        cache.close()
    return 0
