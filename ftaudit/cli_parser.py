"""The command line's shape: subcommands, grouped options, and FTAUDIT_* defaults.

Every option of ``scan`` also takes its default from an environment variable named after
it (``--fail-on`` from ``FTAUDIT_FAIL_ON``), as pip-audit does with ``PIP_AUDIT_*``: a CI
job sets its policy once in the environment. A flag on the command line wins.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ftaudit import __version__
from ftaudit.errors import UsageError
from ftaudit.model import Status
from ftaudit.report import OutputFormat

EPILOG_SCAN = """\
examples:
  ftaudit scan                          the project here: its lockfile, else its .venv,
                                        else requirements*.txt, else pyproject.toml
  ftaudit scan uv.lock --target 3.14t --platform linux-x86_64,windows-amd64
  ftaudit scan -r requirements.txt -r requirements-dev.txt
  ftaudit scan --python .venv/bin/python --target 3.14t
  ftaudit scan --env /opt/conda/envs/ml -f json -o report.json
  ftaudit scan --target 3.13t,3.14t --fail-on gil,blocked,unknown
  ftaudit scan --ignore greenlet:"runs in worker processes"
  ftaudit scan --why numpy              who pulls numpy in
  ftaudit scan -f markdown -o assessment.md
  ftaudit scan -f github                annotations (and the step summary) in GitHub Actions
  ftaudit scan -f sarif -o ftaudit.sarif
                                        for code scanning
  ftaudit scan --verify --ft-python python3.13t
                                        also import each module in that interpreter

environment: every option above also takes its default from FTAUDIT_<OPTION>
(FTAUDIT_FORMAT=json, FTAUDIT_FAIL_ON=gil,blocked, FTAUDIT_OFFLINE=1; repeatable options
take a space-separated list); the command line wins.

policy: [tool.ftaudit] in pyproject.toml sets targets, platforms, fail-on, index-url,
extra-index-url, allow-incomplete and ignore = [{package, reason, expires}]; flags win.

exit codes: 0 nothing at or above --fail-on, 1 findings, 2 usage or input error, or an
incomplete scan (a package not checked: network, index, cache; see --allow-incomplete),
3 internal error (a bug in ftaudit), 130 interrupted
"""

EPILOG_INSPECT = """\
examples:
  ftaudit inspect numpy-2.4.6-cp313-cp313t-manylinux_2_27_x86_64.whl
  ftaudit inspect build/lib/mymod.cpython-313t-x86_64-linux-gnu.so --format json
  ftaudit inspect https://files.example/simple/pkg/pkg-1.0-cp314-cp314t-linux_x86_64.whl
"""

STATUS_NAMES = ", ".join(s.value for s in Status)
ENV_PREFIX = "FTAUDIT_"
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", ""})
# What the source is: one of these, never one from the command line and one from the
# environment (that would scan something nobody asked for).
SOURCE_OPTIONS = ("lockfile", "requirement", "python", "env")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftaudit",
        description="Free-threaded Python readiness auditor: which dependencies run without "
        "the GIL, which turn it back on, which have no build for the free-threaded "
        "interpreter, and what to do about each.",
    )
    parser.add_argument("--version", action="version", version=f"ftaudit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _scan_parser(sub)

    inspect = sub.add_parser(
        "inspect",
        help="show what each extension module in an artifact declares",
        description="Read every compiled module of a wheel, a single binary or a wheel URL "
        "(without executing it) and show what it declares about the GIL.",
        epilog=EPILOG_INSPECT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("artifact", metavar="WHEEL|BINARY|URL")
    inspect.add_argument("-f", "--format", choices=["table", "json"], default="table")
    inspect.add_argument("-o", "--output", metavar="FILE", type=Path)
    inspect.add_argument("--cache-dir", metavar="DIR", type=Path)
    _common(inspect)

    from ftaudit import cli_run

    _common(cli_run.add_parser(sub))

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the scan report (ftaudit-report/1) or of the run "
        "report (ftaudit-run/1)",
        description="Print the JSON Schema (draft 2020-12) that every `ftaudit scan "
        "--format json` document (or, with `run`, every `ftaudit run --format json` "
        "document) validates against.",
    )
    schema.add_argument("which", nargs="?", choices=["scan", "run"], default="scan")
    schema.add_argument("-o", "--output", metavar="FILE", type=Path)
    _common(schema)

    cache = sub.add_parser("cache", help="show or clear the cache")
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--cache-dir", metavar="DIR", type=Path)
    _common(cache)
    return parser


def _scan_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scan = sub.add_parser(
        "scan",
        help="audit a project's dependencies",
        description="Audit what a project installs (its lockfile, environment, requirements "
        "or pyproject.toml) for free-threaded targets: which packages re-enable the GIL, "
        "which have nothing to install, and what to do about each.",
        epilog=EPILOG_SCAN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = scan.add_argument_group("what to scan (one of)")
    source.add_argument(
        "path",
        nargs="?",
        default=None,
        metavar="PATH",
        help="project directory (default: .), an environment directory, a lockfile, a "
        "requirements file or a pyproject.toml",
    )
    where = source.add_mutually_exclusive_group()
    where.add_argument(
        "--lockfile",
        metavar="FILE",
        type=Path,
        help="read this lockfile (uv.lock, poetry.lock, pylock.toml, pdm.lock, Pipfile.lock)",
    )
    where.add_argument(
        "-r",
        "--requirement",
        metavar="FILE",
        type=Path,
        action="append",
        default=[],
        help="read this requirements file (repeatable)",
    )
    where.add_argument("--python", metavar="PY", help="scan the environment of this interpreter")
    where.add_argument(
        "--env", metavar="DIR", type=Path, help="scan this environment directory (venv or conda)"
    )

    parts = scan.add_argument_group(
        "lock parts",
        "A lock is audited for what its tool installs by default (uv sync: the default "
        "groups, no extras; poetry install: the non-optional groups; pdm install: the "
        "locked groups; pipenv install: the default category); what is left out is listed.",
    )
    parts.add_argument(
        "--extra",
        metavar="NAME",
        action="append",
        default=[],
        help="also audit this extra of the project (repeatable)",
    )
    parts.add_argument(
        "--group",
        metavar="NAME",
        action="append",
        default=[],
        help="also audit this dependency group (a Pipfile.lock category too; repeatable)",
    )
    parts.add_argument("--all-extras", action="store_true", help="audit every extra")
    parts.add_argument("--all-groups", action="store_true", help="audit every group")
    targets = scan.add_argument_group("targets")
    targets.add_argument(
        "--target",
        metavar="T[,T]",
        help="free-threaded targets, e.g. 3.13t,3.14t or all (default: the "
        "free-threaded twin of the scanned interpreter, else every target the "
        "project's requires-python allows)",
    )
    targets.add_argument(
        "--platform",
        metavar="P[,P]",
        help="linux-x86_64, linux-aarch64, macos-arm64, macos-x86_64, "
        "windows-amd64 or all (default: this machine's)",
    )

    index = scan.add_argument_group("package index")
    index.add_argument("--index-url", metavar="URL", help="package index (default: pip's)")
    index.add_argument(
        "--extra-index-url",
        metavar="URL",
        action="append",
        default=[],
        help="additional package index (repeatable)",
    )
    index.add_argument(
        "--offline",
        action="store_true",
        help="use only installed files and the cache; never touch the network",
    )
    index.add_argument("--cache-dir", metavar="DIR", type=Path, help="cache directory")
    index.add_argument(
        "-j",
        "--jobs",
        metavar="N",
        type=int,
        default=8,
        help="parallel downloads and inspections (default: 8)",
    )

    checks = scan.add_argument_group("how packages are checked")
    checks.add_argument(
        "--no-inspect", action="store_true", help="judge by wheel tags only; do not read binaries"
    )
    checks.add_argument(
        "--verify",
        action="store_true",
        help="also import each judged extension module in a real free-threaded interpreter "
        "(a temporary venv, one subprocess per module, with a timeout)",
    )
    checks.add_argument(
        "--ft-python",
        metavar="PY",
        help="the free-threaded interpreter for --verify (default: python3.15t, "
        "python3.14t, python3.13t or python3 on PATH, whichever is free-threaded)",
    )
    checks.add_argument(
        "--verify-timeout",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="how long one import may take under --verify (default: 60)",
    )

    output = scan.add_argument_group("report")
    output.add_argument(
        "-f",
        "--format",
        choices=[f.value for f in OutputFormat],
        default="table",
        help="table (terminal), json (CI, schema: `ftaudit schema`), markdown "
        "(assessment report), html (one self-contained page), github (workflow "
        "annotations and step summary), sarif (SARIF 2.1.0 for code scanning)",
    )
    output.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=Path,
        help="write the report here instead of standard output",
    )
    output.add_argument(
        "--why",
        metavar="NAME",
        help="show the chains of requirements that pull NAME in, then the report",
    )

    gate = scan.add_argument_group("exit code")
    gate.add_argument(
        "--fail-on",
        metavar="S[,S]",
        help=f"statuses that make the exit code 1 ({STATUS_NAMES}, or none; default: "
        "[tool.ftaudit] fail-on, else blocked,gil)",
    )
    gate.add_argument(
        "--allow-incomplete",
        action="store_true",
        default=None,
        help="exit by --fail-on even when some packages could not be checked (network, "
        "index, cache or integrity failures; default: [tool.ftaudit] allow-incomplete, "
        "else such a run exits 2)",
    )
    gate.add_argument(
        "--ignore",
        metavar="NAME[:REASON]",
        action="append",
        default=[],
        help="accept the findings of this package for this run (repeatable; added to "
        "[tool.ftaudit] ignore)",
    )
    _common(scan, scan.add_argument_group("messages"))
    for action in scan._actions:
        if action.option_strings and action.dest != "help":
            action.help = f"{action.help or ''} [env: {env_name(action)}]".strip()


def _common(p: argparse.ArgumentParser, group: argparse._ArgumentGroup | None = None) -> None:
    into = group or p
    into.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress; the table lists only packages that are not ready",
    )
    into.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="more detail on standard error; tracebacks on errors",
    )


def env_name(action: argparse.Action) -> str:
    long = next((o for o in action.option_strings if o.startswith("--")), action.dest)
    return ENV_PREFIX + long.lstrip("-").replace("-", "_").upper()


def parse(
    argv: Sequence[str] | None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Parse the command line; options of `scan` it leaves unset take FTAUDIT_* values."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    scan = _subparser(parser, "scan")
    errors: list[UsageError] = []
    sources: dict[str, object] = {}
    for action in scan._actions:
        name = env_name(action)
        if not action.option_strings or action.dest == "help" or name not in environ:
            continue
        try:
            value = _convert(action, name, environ[name])
        except UsageError as exc:
            errors.append(exc)
            continue
        if action.dest in SOURCE_OPTIONS:
            sources[action.dest] = value  # applied below, when no source is given
        else:
            action.default = value  # the command line still wins
    args = parser.parse_args(argv)
    if args.command != "scan":
        return args
    if errors:
        raise errors[0]
    if sources and not any(getattr(args, d) not in (None, []) for d in SOURCE_OPTIONS):
        if len(sources) > 1:
            names = " and ".join(ENV_PREFIX + d.upper() for d in sources)
            raise UsageError(f"{names} are both set: they name different things to scan")
        for dest, value in sources.items():
            setattr(args, dest, value)
    return args


def _convert(action: argparse.Action, name: str, raw: str) -> object:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if (word := raw.strip().lower()) in TRUE or word in FALSE:
            truth = word in TRUE
            return truth if isinstance(action, argparse._StoreTrueAction) else not truth
        raise UsageError(f"{name}={raw!r}: expected 1/true/yes or 0/false/no")
    items = raw.split() if isinstance(action, argparse._AppendAction) else [raw]
    out: list[object] = []
    for item in items:
        try:
            value: object = action.type(item) if callable(action.type) else item
        except (TypeError, ValueError):
            raise UsageError(f"{name}={raw!r}: invalid value") from None
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(str, action.choices))
            raise UsageError(f"{name}={raw!r}: expected one of {choices}")
        out.append(value)
    return out if isinstance(action, argparse._AppendAction) else out[0]


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise LookupError(name)
