"""Installed environments: venvs, conda environments and system interpreters.

An environment is read from its files (`ftaudit.sources.layout`): ``pyvenv.cfg``,
``conda-meta/``, the ``lib/python3.X[t]`` layout. Nothing in it runs, so neither a
checkout's ``.venv/bin/python3`` (which may be any script), nor a ``.pth`` line, nor a
``sitecustomize.py`` executes during a scan.

An interpreter the user names with ``--python`` is read from its files too whenever they
say everything (a venv, a conda environment, an installed prefix with its headers). Only
otherwise is it run, with ``-I -S`` and a script that imports nothing but the standard
library, to say its version, prefix and marker values; its site directories are then
worked out here, as for the others. Distributions are enumerated with `importlib.metadata`
over those directories: metadata files only, nothing imported, no pip.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from ftaudit.errors import InputError
from ftaudit.model import Environment, Installed
from ftaudit.sources.layout import (
    Layout,
    host_markers,
    prefix_layout,
    read_pyvenv_cfg,
    venv_config_beside,
    venv_layout,
)
from ftaudit.targets import this_platform

QUERY_TIMEOUT = 60

# Runs inside the named interpreter (any CPython 3.8+) under -I -S: no site directory is on
# sys.path, so these imports can only be the standard library's.
_QUERY = r"""
import json, os, platform, sys, sysconfig
print(json.dumps({
    "executable": sys.executable,
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "version": list(sys.version_info[:3]),
    "implementation": sys.implementation.name,
    "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "markers": {
        "implementation_name": sys.implementation.name,
        "implementation_version": platform.python_version(),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    },
}))
"""


def _environment(
    layout: Layout,
    executable: Path | None,
    markers: tuple[tuple[str, str], ...] | None = None,
) -> Environment:
    return Environment(
        executable=str(executable) if executable is not None else None,
        prefix=str(layout.prefix),
        version=layout.version,
        free_threaded=layout.free_threaded,
        platform=this_platform(),
        site_dirs=tuple(str(d) for d in layout.site_dirs),
        kind=layout.kind,
        marker_env=markers if markers is not None else host_markers(layout.version),
    )


def _path(python: str) -> Path:
    """`python` as the shell would find it: a path, or a name looked up on PATH."""
    if os.sep in python or (os.altsep and os.altsep in python):
        return Path(python)
    return Path(shutil.which(python) or python)


def environment_prefix(python: str) -> Path:
    """The prefix (sys.prefix) of the environment `python` belongs to, from the files."""
    exe = _path(python)
    cfg = venv_config_beside(exe)
    if cfg is not None:
        return cfg.parent
    real = exe.resolve()
    # Windows installs python.exe in the prefix itself, other systems in prefix/bin.
    return real.parent if (real.parent / "Lib").is_dir() else real.parent.parent


def _locate(python: str) -> Path:
    exe = _path(python)
    if not exe.exists():
        raise InputError(f"{python}: no such interpreter")
    if exe.is_dir() or not os.access(exe, os.X_OK):
        raise InputError(f"{python}: not executable")
    return exe.absolute()


def query_interpreter(python: str) -> Environment:
    """The interpreter named `python`: from its files when they say everything, else by
    running it with ``-I -S``. Raises InputError when neither describes it."""
    exe = _locate(python)
    cfg = venv_config_beside(exe)
    if cfg is not None:
        return _environment(venv_layout(cfg.parent, read_pyvenv_cfg(cfg)), exe)
    real = exe.resolve()
    layout = prefix_layout(real.parent.parent) or prefix_layout(real.parent)
    if layout is not None and layout.exact_version:
        return _environment(layout, exe)
    try:
        info = _ask(python, exe)
    except InputError:
        if layout is None:
            raise
        return _environment(layout, exe)  # e.g. built for another machine: the files say enough
    return _from_answer(python, exe, info)


def _ask(python: str, exe: Path) -> dict[str, object]:
    try:
        proc = subprocess.run(
            [str(exe), "-I", "-S", "-c", _QUERY],
            capture_output=True,
            text=True,
            timeout=QUERY_TIMEOUT,
            check=False,
        )
    except PermissionError:
        raise InputError(f"{python}: not executable") from None
    except OSError as exc:
        raise InputError(f"{python}: cannot run ({exc.strerror or exc})") from None
    except subprocess.TimeoutExpired:
        raise InputError(f"{python}: did not answer within {QUERY_TIMEOUT}s") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"{python}: could not describe itself ({last})")
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        info = None
    if not isinstance(info, dict):
        raise InputError(f"{python}: answered something that is not a description")
    return info


def _from_answer(python: str, exe: Path, info: dict[str, object]) -> Environment:
    raw_version, raw_markers = info.get("version"), info.get("markers")
    if not (
        isinstance(raw_version, list)
        and len(raw_version) == 3
        and all(isinstance(v, int) for v in raw_version)
        and isinstance(raw_markers, dict)
        and isinstance(info.get("prefix"), str)
    ):
        raise InputError(f"{python}: answered something that is not a description")
    implementation = str(info.get("implementation"))
    if implementation != "cpython":
        raise InputError(f"{python}: {implementation} is not CPython")
    version = (raw_version[0], raw_version[1], raw_version[2])
    prefix = Path(str(info["prefix"]))
    layout = prefix_layout(prefix, version)
    if layout is None:
        raise InputError(f"{python}: no standard library found under its prefix {prefix}")
    layout = dataclasses.replace(
        layout,
        version=version,
        free_threaded=bool(info.get("free_threaded")) or layout.free_threaded,
    )
    markers = tuple(sorted((str(k), str(v)) for k, v in raw_markers.items()))
    # Where it says it is (a launcher such as pyenv's may have handed over to it).
    real_exe = info.get("executable")
    return _environment(layout, Path(real_exe) if isinstance(real_exe, str) else exe, markers)


def interpreter_in(env_dir: Path) -> Path | None:
    """Where the environment's interpreter is (it is never run by a scan)."""
    for rel in ("bin/python3", "bin/python", "python.exe", "Scripts/python.exe"):
        candidate = env_dir / rel
        if candidate.exists() and os.access(candidate, os.X_OK):
            return candidate
    return None


def environment_from_dir(env_dir: Path) -> Environment:
    """An environment directory, read from its files alone."""
    if not env_dir.is_dir():
        raise InputError(f"{env_dir}: not a directory")
    cfg = env_dir / "pyvenv.cfg"
    layout = venv_layout(env_dir, read_pyvenv_cfg(cfg)) if cfg.is_file() else prefix_layout(env_dir)
    if layout is None:
        raise InputError(f"{env_dir}: no Python interpreter and no site-packages found")
    return _environment(layout, interpreter_in(env_dir))


def default_python_environment(project_dir: Path) -> Environment | None:
    """The project's own .venv (or venv), if it has one."""
    for name in (".venv", "venv"):
        candidate = project_dir / name
        if (candidate / "pyvenv.cfg").is_file() or (candidate / "conda-meta").is_dir():
            return environment_from_dir(candidate)
    return None


def installed_distributions(env: Environment) -> list[Installed]:
    """Every distribution in the environment, first on the path wins (as for imports)."""
    seen: dict[str, Installed] = {}
    for dist in _distributions(env.site_dirs):
        item = _installed(dist)
        if item is not None and item.name not in seen:
            seen[item.name] = item
    return sorted(seen.values(), key=lambda d: d.name)


def _distributions(site_dirs: tuple[str, ...]) -> Iterator[metadata.Distribution]:
    for site_dir in site_dirs:
        yield from metadata.distributions(path=[site_dir])


def _record_paths(dist: metadata.Distribution) -> tuple[str, ...]:
    """RECORD's paths as plain strings: `Distribution.files` builds a PackagePath per line,
    which is most of the cost of listing a large environment."""
    text = dist.read_text("RECORD")
    if text is None:
        # No RECORD (egg-info, some system packages): installed-files.txt, else nothing.
        legacy = dist.read_text("installed-files.txt")
        return tuple(line.strip() for line in (legacy or "").splitlines() if line.strip())
    return tuple(row[0].replace("\\", "/") for row in csv.reader(text.splitlines()) if row)


def _installed(dist: metadata.Distribution) -> Installed | None:
    meta = dist.metadata
    raw_name = meta["Name"] if meta is not None else None
    if not raw_name:
        return None  # a dist-info without METADATA: nothing to report on
    wheel = dist.read_text("WHEEL") or ""
    wheel_tags = tuple(
        line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")
    )
    return Installed(
        name=canonicalize_name(raw_name),
        display_name=raw_name,
        version=meta["Version"] or "",
        site_dir=str(dist.locate_file("")),
        files=_record_paths(dist),
        requires=tuple(meta.get_all("Requires-Dist") or ()),
        classifiers=tuple(meta.get_all("Classifier") or ()),
        wheel_tags=wheel_tags,
        installer=(dist.read_text("INSTALLER") or "").strip(),
    )


def current_environment() -> Environment:
    """The interpreter ftaudit itself runs in (used by its self-check)."""
    return query_interpreter(sys.executable)
