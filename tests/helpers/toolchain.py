"""The real parts tests need: interpreters and a C compiler, found or reported missing.

In CI (CI=true) a missing part fails the test run; on a developer machine it skips the
tests that need it, saying what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GILMOD = REPO / "fixtures" / "ext" / "gilmod.c"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    message = f"{what} (CI runs .ci/run, which provides it)"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _works(python: str, check: str) -> bool:
    try:
        proc = subprocess.run([python, "-I", "-c", check], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def ft_python() -> str:
    """A free-threaded CPython 3.13 (FT_PYTHON, else where scripts/cpython builds one)."""
    candidates = [os.environ.get("FT_PYTHON", "")]
    candidates.append(str(Path.home() / ".cache/ftaudit-python/3.13t/bin/python3.13t"))
    for c in candidates:
        if c and _works(c, "import sys; assert not sys._is_gil_enabled()"):
            return c
    missing("no free-threaded interpreter: set FT_PYTHON, or run `bash scripts/cpython ft`")
    raise AssertionError  # unreachable: missing() fails or skips


def gil_python() -> str:
    """A GIL CPython 3.13 (GIL_PYTHON, else python3.13 on PATH or under pyenv)."""
    candidates = [os.environ.get("GIL_PYTHON", "")]
    if sys.version_info[:2] == (3, 13):
        candidates.append(sys.executable)
    candidates.append(shutil.which("python3.13") or "")
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.13*/bin/python3.13"))
    check = (
        "import sys, sysconfig; assert sys.version_info[:2] == (3, 13); "
        "assert not sysconfig.get_config_var('Py_GIL_DISABLED')"
    )
    for c in candidates:
        if c and _works(c, check):
            return c
    missing("no GIL CPython 3.13: set GIL_PYTHON")
    raise AssertionError


def python_config(python: str) -> dict[str, str]:
    script = (
        "import json, sysconfig; print(json.dumps({'include': sysconfig.get_paths()"
        "['include'], 'suffix': sysconfig.get_config_var('EXT_SUFFIX')}))"
    )
    out = subprocess.run([python, "-I", "-c", script], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout))


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed")
    return str(path)


def compile_module(
    python: str,
    variant: int,
    modname: str,
    out: Path,
    *,
    cc: str = "gcc",
    flags: tuple[str, ...] = ("-O2",),
) -> Path:
    """Compile fixtures/ext/gilmod.c as module `modname`; `out` is the target directory."""
    cfg = python_config(python)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{modname}{cfg['suffix']}"
    cmd = [
        need_tool(cc),
        "-shared",
        "-fPIC",
        *flags,
        f"-DVARIANT={variant}",
        f"-DMODNAME={modname}",
        "-I",
        cfg["include"],
        str(GILMOD),
        "-o",
        str(target),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    return target


def clean_pip_env() -> dict[str, str]:
    """An environment in which pip reads no machine configuration and asks no index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INDEX"] = "1"
    return env


def make_venv(python: str, where: Path) -> Path:
    subprocess.run(
        [python, "-m", "venv", str(where)], check=True, capture_output=True, env=clean_pip_env()
    )
    return where / "bin" / "python"


def pip_install(venv_python: Path, *wheels: Path) -> None:
    subprocess.run(
        [
            str(venv_python),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "-q",
            *(str(w) for w in wheels),
        ],
        check=True,
        capture_output=True,
        env=clean_pip_env(),
    )


def gil_enabled_after_import(python: str, module: str, path: Path | None = None) -> bool:
    """Import `module` in a fresh free-threaded interpreter: did it re-enable the GIL?"""
    code = (
        "import sys, warnings\n"
        f"{'sys.path.insert(0, ' + repr(str(path)) + ')' if path else ''}\n"
        "warnings.simplefilter('ignore')\n"
        f"import {module}\n"
        "print(int(sys._is_gil_enabled()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().endswith("1")
