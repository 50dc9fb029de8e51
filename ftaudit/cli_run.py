"""``ftaudit run -- CMD``: run a command with the guard in every Python process it starts.

The guard is a ``sitecustomize`` in a temporary directory put first on ``PYTHONPATH``
(it runs the environment's own sitecustomize, if any, then leaves ``sys.path`` as it was);
nothing of the user's is changed, and the directory is gone when the command ends. The
command's standard streams are its own and its exit code is kept; the report goes to
standard error, or to ``-o``, after it ends.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ftaudit import __version__
from ftaudit.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, UsageError
from ftaudit.guard import hook
from ftaudit.model import GuardedProcess, GuardReport, RunStatus

EPILOG = """\
examples:
  ftaudit run -- python app.py
  ftaudit run -- python -m pytest -q
  ftaudit run --format json -o guard.json -- python -m myservice --check
  ftaudit run --processes all -- python batch.py     every worker process gates too
  PYTHON_GIL=0 ftaudit run -- python app.py          binaries decide: nothing flips

exit codes: the command's own code when it failed; else 0 when the GIL stayed off in the
gating processes (or --allow-gil), 1 when one re-enabled it (or would have), 2 when ftaudit
could not tell (a module it could not judge, no guarded Python process, or a GIL
interpreter), 3 internal error
"""

FT_NAMES = ("python3.15t", "python3.14t", "python3.13t")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    run = sub.add_parser(
        "run",
        help="run a command and name every import that re-enables the GIL",
        description="Run CMD (a free-threaded Python program, module, console script or "
        "test run) and report every extension module its processes loaded that re-enabled "
        "the GIL or would have, with the chain of imports from the program's own code.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--format", choices=["text", "json"], default="text")
    run.add_argument(
        "-o", "--output", metavar="FILE", type=Path, help="write the report here (default: stderr)"
    )
    run.add_argument(
        "--allow-gil",
        action="store_true",
        help="report, but exit 0 when the GIL was re-enabled (the command's code still counts)",
    )
    run.add_argument(
        "--processes",
        choices=["main", "all"],
        default="main",
        help="which processes decide the exit code: the command's own (default; worker "
        "processes may keep packages that need the GIL), or every one",
    )
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    return run


def run(args: argparse.Namespace) -> int:
    # the static reader is loaded only for a run, not for every command's parser
    from ftaudit.guard.collect import judge_run, read_records
    from ftaudit.guard.report import render_json, render_text

    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("give the command to run after --, e.g. ftaudit run -- python app.py")
    interpreter = _interpreter_of(command)
    if interpreter is not None and interpreter[1] is False:
        print(_needs_free_threaded(interpreter[0]), file=sys.stderr)
        return EXIT_INCOMPLETE
    with tempfile.TemporaryDirectory(prefix="ftaudit-run-") as tmp:
        root = Path(tmp)
        records = root / "records"
        records.mkdir()
        guard_dir = root / "guard"
        guard_dir.mkdir()
        shutil.copyfile(hook.__file__, guard_dir / "sitecustomize.py")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(guard_dir), os.environ.get("PYTHONPATH", "")) if p
        )
        env[hook.RECORDS_ENV] = str(records)
        code = _run_command(command, env)
        processes = judge_run(read_records(records))
    report = build_report(command, code, processes, gate=args.processes, allow_gil=args.allow_gil)
    text = render_json(report) if args.format == "json" else render_text(report)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stderr.write(text)
        sys.stderr.flush()
    return report.exit_code


def _run_command(command: Sequence[str], env: dict[str, str]) -> int:
    try:
        proc = subprocess.Popen(list(command), env=env)
    except OSError as exc:
        raise UsageError(f"cannot run {command[0]}: {exc.strerror or exc}") from exc
    # The terminal's Ctrl-C reaches the command too: let it decide, and report after.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    forward = signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum))
    try:
        code = proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, forward)
    return 128 - code if code < 0 else code


def build_report(
    command: Sequence[str],
    command_exit: int,
    processes: Sequence[GuardedProcess],
    *,
    gate: str,
    allow_gil: bool,
) -> GuardReport:
    gating = [p for p in processes if p.main or gate == "all"]
    notes: list[str] = []
    order = list(RunStatus)
    status = max((p.status for p in gating), key=order.index, default=RunStatus.UNKNOWN)
    if not gating:
        notes.append(
            "no Python process ran under the guard (the command started none, or started it "
            "with -I, -E or -S, which skip PYTHONPATH or site)"
        )
    elif status is RunStatus.NOT_FREE_THREADED:
        gil_python = next(p.executable for p in gating if not p.free_threaded)
        notes.append(_needs_free_threaded(gil_python))
    elif gate == "main":
        children = [p for p in processes if not p.main and p.status is not RunStatus.FREE]
        if children:
            notes.append(
                f"{len(children)} child process(es) need the GIL or could not be judged; only "
                "the main process decides the exit code (--processes all to gate on them)"
            )
    if command_exit != 0:
        exit_code = command_exit
        notes.append(f"the command exited with {command_exit}")
    elif status is RunStatus.FREE or (allow_gil and status is RunStatus.GIL):
        exit_code = EXIT_OK
    elif status is RunStatus.GIL:
        exit_code = EXIT_FINDINGS
        notes.append("exit 1: the GIL was re-enabled (--allow-gil to report it without failing)")
    elif allow_gil and status is RunStatus.UNKNOWN and gating:
        exit_code = EXIT_OK
    else:
        exit_code = EXIT_INCOMPLETE
    return GuardReport(
        tool_version=__version__,
        command=tuple(command),
        command_exit=command_exit,
        exit_code=exit_code,
        gate=gate,
        allow_gil=allow_gil,
        status=status,
        processes=tuple(processes),
        notes=tuple(notes),
    )


# --- which interpreter ------------------------------------------------------------------------


def _interpreter_of(command: Sequence[str]) -> tuple[str, bool | None] | None:
    """(interpreter, is it free-threaded) when the command is a Python interpreter or a
    script of one; None when that cannot be told before running it."""
    exe = shutil.which(command[0])
    if exe is None:
        return None
    name = Path(exe).name
    candidate: str | None = exe if name.startswith("python") else _shebang(Path(exe))
    if candidate is None:
        return None
    return candidate, probe(candidate)


def _shebang(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            first = fh.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    parts = first[2:].decode("utf-8", "replace").split()
    if parts and Path(parts[0]).name == "env" and len(parts) > 1:
        parts = [shutil.which(parts[1]) or parts[1]]
    if parts and Path(parts[0]).name.startswith("python"):
        return parts[0]
    return None


def probe(python: str) -> bool | None:
    """Whether `python` is a free-threaded build (None: it did not say)."""
    try:
        proc = subprocess.run(
            [
                python,
                "-I",
                "-c",
                "import sysconfig; print(int(bool(sysconfig.get_config_var('Py_GIL_DISABLED'))))",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip()
    return None if proc.returncode != 0 or out not in ("0", "1") else out == "1"


def free_threaded_on_path() -> list[str]:
    found = []
    for name in FT_NAMES:
        exe = shutil.which(name)
        if exe is not None and probe(exe):
            found.append(exe)
    return found


def _needs_free_threaded(python: str) -> str:
    found = free_threaded_on_path()
    where = (
        "free-threaded interpreters on PATH: " + ", ".join(found)
        if found
        else "no free-threaded interpreter on PATH (python3.13t, python3.14t, python3.15t)"
    )
    return (
        f"ftaudit run: {python} is not a free-threaded interpreter: the guard needs one "
        f"(a CPython built with --disable-gil); {where}"
    )
