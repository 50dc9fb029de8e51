"""``--verify``: import each extension module in a real free-threaded interpreter.

The artifacts the scan judged are installed into a temporary virtual environment of that
interpreter (from the cache, no index), and each extension module is imported in its own
isolated subprocess (``-I -B``, ``PYTHON_GIL`` removed) with a timeout; the child reports
whether the interpreter re-enabled the GIL. Installed files of the scanned environment are
reached through a ``.pth`` file, read-only: the scanned environment is never modified. The
temporary environment and every child process are gone when this returns.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from ftaudit.errors import InputError, UsageError
from ftaudit.model import Evidence, PackageReport, Report, Status, Target, Verdict
from ftaudit.targets import extension_loadable

# Run in the child: import one module, then say whether the GIL is on.
_CHILD = """\
import importlib, json, sys, warnings
warnings.simplefilter("always")
name = sys.argv[1]
with warnings.catch_warnings(record=True) as caught:
    try:
        importlib.import_module(name)
        error = None
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
print("FTAUDIT-VERIFY " + json.dumps({
    "error": error,
    "gil": sys._is_gil_enabled(),
    "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
}))
"""

REENABLED = "reenabled"
NOT_USED = "not_used"
IMPORT_ERROR = "import_error"
CRASHED = "crashed"
TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Interpreter:
    executable: str
    target: Target


@dataclass(frozen=True, slots=True)
class Outcome:
    module: str
    result: str  # one of the constants above
    detail: str = ""


def find_interpreter(explicit: str | None, candidates: Sequence[str] = ()) -> Interpreter:
    """The free-threaded interpreter to verify with: `explicit`, else the first
    free-threaded one on PATH."""
    names = (
        [explicit]
        if explicit
        else list(candidates)
        or [
            "python3.15t",
            "python3.14t",
            "python3.13t",
            "python3",
        ]
    )
    problems = []
    for name in names:
        found = _which(name)
        if found is None:
            problems.append(f"{name}: not found")
            continue
        try:
            proc = subprocess.run(
                [
                    found,
                    "-I",
                    "-c",
                    "import sys, sysconfig; "
                    "print(sysconfig.get_config_var('Py_GIL_DISABLED'), *sys.version_info[:2])",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{name}: {exc}")
            continue
        parts = proc.stdout.split()
        if proc.returncode != 0 or len(parts) != 3:
            problems.append(f"{name}: did not run")
            continue
        if parts[0] != "1":
            problems.append(f"{name}: not a free-threaded build")
            continue
        return Interpreter(found, Target(major=int(parts[1]), minor=int(parts[2])))
    if explicit:
        raise UsageError(f"--ft-python {problems[0]}")
    raise UsageError(
        "--verify needs a free-threaded interpreter: none on PATH ("
        + "; ".join(problems)
        + "); name one with --ft-python"
    )


def _which(name: str) -> str | None:
    if os.sep in name or (os.altsep and os.altsep in name):
        return name if os.access(name, os.X_OK) else None
    return shutil.which(name)


def verify(
    report: Report,
    interpreter: Interpreter,
    platform: str,
    wheels: Mapping[str, Path],
    site_dirs: Sequence[str],
    *,
    timeout: float = 60.0,
    jobs: int = 4,
    progress: Callable[[str, int, int], None] | None = None,
) -> Report:
    """The report with the verdicts for the interpreter's own target and platform checked
    by importing what they judged."""
    target = interpreter.target
    work: dict[str, tuple[PackageReport, Verdict, list[str]]] = {}
    for pkg in report.packages:
        for v in pkg.verdicts:
            if v.target != target or v.platform != platform or v.artifact is None:
                continue
            # An `unknown` the reader could not prove is what --verify is for; one the run
            # failed to check (incomplete) has no artifact judged to import.
            unproven = v.status is Status.UNKNOWN and v.incomplete is None
            if v.status not in (Status.READY, Status.GIL) and not unproven:
                continue
            judged = v.extensions or pkg.extensions  # another release's, when it was judged
            modules = [e.module for e in judged if extension_loadable(e.path, target)]
            installed = v.artifact.endswith("(installed)")
            if modules and ((installed and site_dirs) or v.artifact in wheels):
                work[pkg.dependency.name] = (pkg, v, modules)
    if not work:
        return replace(
            report,
            notes=(*report.notes, f"--verify: nothing to import for {target.name} on {platform}"),
        )
    outcomes: dict[str, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="ftaudit-verify-") as tmp:
        python = _environment(
            interpreter.executable,
            Path(tmp),
            [
                wheels[v.artifact]
                for _p, v, _m in work.values()
                if v.artifact and v.artifact in wheels
            ],
            site_dirs,
        )
        jobs_list = [(name, m) for name, (_p, _v, mods) in work.items() for m in mods]
        done = 0
        lock = threading.Lock()

        def run(job: tuple[str, str]) -> tuple[str, Outcome]:
            nonlocal done
            outcome = import_in_subprocess(python, job[1], Path(tmp), timeout)
            with lock:
                done += 1
                if progress is not None:
                    progress(job[1], done, len(jobs_list))
            return job[0], outcome

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for name, outcome in pool.map(run, jobs_list):
                outcomes.setdefault(name, []).append(outcome)
    return apply_outcomes(report, outcomes, target, platform, interpreter.executable)


def _environment(python: str, root: Path, wheels: Sequence[Path], site_dirs: Sequence[str]) -> str:
    venv = root / "venv"
    env = _clean_env()
    proc = subprocess.run(
        [python, "-m", "venv", str(venv)], capture_output=True, text=True, env=env, timeout=300
    )
    if proc.returncode != 0:
        raise InputError(f"--verify: cannot create a virtual environment: {proc.stderr.strip()}")
    bindir = "Scripts" if sys.platform == "win32" else "bin"
    vpython = next(
        str(p) for p in ((venv / bindir / "python.exe"), (venv / bindir / "python")) if p.exists()
    )
    if wheels:
        proc = subprocess.run(
            [
                vpython,
                "-m",
                "pip",
                "install",
                "--no-index",
                "--no-deps",
                "--no-compile",
                "-q",
                *map(str, dict.fromkeys(wheels)),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["pip failed"]
            raise InputError(f"--verify: installing the judged wheels failed: {tail[0]}")
    if site_dirs:
        purelib = subprocess.run(
            [vpython, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        # The scanned environment's files, importable but never written to (-B).
        Path(purelib, "ftaudit-scanned.pth").write_text("\n".join(site_dirs) + "\n")
    return vpython


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)
    return env


def import_in_subprocess(python: str, module: str, cwd: Path, timeout: float) -> Outcome:
    """Import `module` alone in a fresh interpreter: did it keep the GIL off?"""
    try:
        proc = subprocess.Popen(
            [python, "-I", "-B", "-c", _CHILD, module],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=_clean_env(),
            start_new_session=sys.platform != "win32",
        )
    except OSError as exc:
        return Outcome(module, CRASHED, f"could not start the interpreter: {exc}")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        return Outcome(module, TIMEOUT, f"still importing after {timeout:g} s")
    line = next((x for x in out.splitlines() if x.startswith("FTAUDIT-VERIFY ")), None)
    if proc.returncode != 0 or line is None:
        how = (
            f"killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exit code {proc.returncode}"
        )
        last = err.strip().splitlines()[-1:] or [""]
        return Outcome(module, CRASHED, f"{how}{': ' + last[0] if last[0] else ''}")
    data = json.loads(line.split(" ", 1)[1])
    if data["error"]:
        return Outcome(module, IMPORT_ERROR, str(data["error"]))
    if data["gil"]:
        warning = next((w for w in data["warnings"] if "GIL" in w), "")
        return Outcome(module, REENABLED, warning)
    return Outcome(module, NOT_USED)


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        if sys.platform != "win32":
            os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it started
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        proc.kill()


def apply_outcomes(
    report: Report,
    outcomes: Mapping[str, Sequence[Outcome]],
    target: Target,
    platform: str,
    python: str,
) -> Report:
    """Verdicts rewritten from what the interpreter did (pure); disagreements with the
    static reading are called out in the reason and in the report's notes."""
    notes = list(report.notes)
    packages = []
    for pkg in report.packages:
        found = outcomes.get(pkg.dependency.name)
        if not found:
            packages.append(pkg)
            continue
        verdicts = []
        for v in pkg.verdicts:
            if v.target != target or v.platform != platform:
                verdicts.append(v)
                continue
            new = _verified(v, found, python)
            if new.status is not v.status and v.status in (Status.READY, Status.GIL):
                notes.append(
                    f"--verify DISAGREES for {pkg.dependency.display_name} on {target.name}: "
                    f"the static reading said {v.status.value}, the interpreter says "
                    f"{new.status.value}"
                )
            verdicts.append(new)
        packages.append(replace(pkg, verdicts=tuple(verdicts)))
    return replace(report, packages=tuple(packages), notes=tuple(notes))


def _verified(v: Verdict, outcomes: Sequence[Outcome], python: str) -> Verdict:
    by = {o.result: [x for x in outcomes if x.result == o.result] for o in outcomes}
    if REENABLED in by:
        names = ", ".join(o.module for o in by[REENABLED])
        reason = f"verified with {python}: importing {names} re-enabled the GIL"
        if v.status is not Status.GIL:
            reason += f" (the static reading said {v.status.value}: {v.reason})"
        # Unproven, with a newer release confirmed ready beside it: now proven not ready.
        status = Status.UPGRADE if v.status is Status.UNKNOWN and v.use_version else Status.GIL
        return replace(v, status=status, evidence=Evidence.VERIFIED, reason=reason)
    failed = [o for o in outcomes if o.result in (CRASHED, TIMEOUT)]
    if failed:
        what = "; ".join(
            f"{o.module} {'crashed' if o.result == CRASHED else 'timed out'} ({o.detail})"
            for o in failed
        )
        return replace(
            v,
            status=Status.UNKNOWN,
            evidence=Evidence.VERIFIED,
            reason=f"verified with {python}: {what}; the static reading said "
            f"{v.status.value}: {v.reason}",
        )
    if IMPORT_ERROR in by:
        errors = "; ".join(f"{o.module}: {o.detail}" for o in by[IMPORT_ERROR])
        return replace(v, reason=f"{v.reason}; --verify could not import it ({errors})")
    reason = f"verified with {python}: {len(outcomes)} module(s) imported, the GIL stayed off"
    if v.status is not Status.READY:
        reason += f" (the static reading said {v.status.value}: {v.reason})"
    return replace(
        v,
        status=Status.READY,
        evidence=Evidence.VERIFIED,
        reason=reason,
        # Ready as it is: the newer release an unproven verdict offered is not needed.
        use_version=None,
        use_version_date=None,
        first_ready=None,
    )
