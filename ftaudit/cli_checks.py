"""What the command line checks before a scan starts, so that a typo costs a second, not
a whole scan: the paths it was given, the output file's directory, --ignore entries."""

from __future__ import annotations

import argparse
from pathlib import Path

from packaging.utils import canonicalize_name

from ftaudit.errors import InputError, UsageError
from ftaudit.model import Ignore, Policy

LOCK_NAMES = ("uv.lock", "poetry.lock", "pylock.toml", "pdm.lock", "Pipfile.lock")


def check_paths(args: argparse.Namespace) -> None:
    if args.lockfile is not None:
        _input_file(args.lockfile, "--lockfile", "the lockfile itself")
    for path in args.requirement:
        _input_file(path, "-r", "a requirements file")
    if args.env is not None and not args.env.is_dir():
        what = "no such directory" if not args.env.exists() else "not a directory"
        raise InputError(f"{args.env}: {what} (--env takes an environment directory)")
    check_output(args.output)


def check_output(output: Path | None) -> None:
    if output is None:
        return
    parent = output.parent
    if output.is_dir():
        raise UsageError(f"-o {output}: is a directory: give a file name")
    if not parent.is_dir():
        raise UsageError(f"-o {output}: no such directory {str(parent)!r}: create it first")


def _input_file(path: Path, option: str, wanted: str) -> None:
    if path.is_dir():
        inside = [n for n in LOCK_NAMES if (path / n).is_file()]
        hint = f" (it holds {', '.join(inside)})" if inside and option == "--lockfile" else ""
        raise InputError(f"{path}: is a directory: {option} takes {wanted}{hint}")
    if not path.exists():
        raise InputError(f"{path}: no such file ({option})")


def parse_ignores(values: list[str]) -> tuple[Ignore, ...]:
    """``--ignore NAME[:REASON]``: accepted for this run; the reason defaults to saying so."""
    out = []
    for value in values:
        name, _, reason = value.partition(":")
        if not name.strip():
            raise UsageError(f"--ignore {value!r}: expected NAME or NAME:REASON")
        out.append(
            Ignore(
                package=canonicalize_name(name.strip()),
                reason=reason.strip() or "ignored with --ignore on the command line",
            )
        )
    return tuple(out)


def policy_line(policy: Policy, args: argparse.Namespace) -> str | None:
    """One line saying what [tool.ftaudit] changes in this run (nothing is applied
    silently), or None when it sets nothing the command line did not override."""
    if policy.path is None:
        return None
    parts = []
    if policy.targets and not args.target:
        parts.append(f"targets {policy.targets}")
    if policy.platforms and not args.platform:
        parts.append(f"platforms {policy.platforms}")
    if policy.fail_on is not None and args.fail_on is None:
        parts.append(f"fail-on {','.join(sorted(s.value for s in policy.fail_on)) or 'none'}")
    if policy.index_url and not args.index_url:
        parts.append("index-url")
    if policy.extra_index_urls and not args.extra_index_url:
        parts.append("extra-index-url")
    if policy.allow_incomplete is not None and args.allow_incomplete is None:
        parts.append(f"allow-incomplete {str(policy.allow_incomplete).lower()}")
    if policy.ignore:
        parts.append(f"{len(policy.ignore)} ignore{'s' if len(policy.ignore) != 1 else ''}")
    if not parts:
        return None
    return f"using [tool.ftaudit] from {policy.path}: {', '.join(parts)}"
