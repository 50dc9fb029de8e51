"""Installed environments: venvs, conda environments and system interpreters.

The scanned interpreter is asked once, in a subprocess started with ``-I -S`` so that no
``.pth`` file and no scanned package runs, to describe itself: version, whether it is a
free-threaded build, its platform and its site directories (which ``-S`` leaves to us,
so the script reads ``pyvenv.cfg`` the way ``site`` would). Distributions are then
enumerated here with `importlib.metadata` over those directories: metadata files only,
nothing imported, no pip.

When the interpreter cannot run (an environment from another machine), the layout on disk
says as much as it can: ``pyvenv.cfg``, ``conda-meta/`` and the ``lib/pythonX.Y[t]`` name.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from ftaudit.errors import InputError
from ftaudit.model import Environment, Installed
from ftaudit.targets import this_platform

QUERY_TIMEOUT = 60

# Runs inside the scanned interpreter (any CPython 3.8+): stdlib only, imports nothing else.
_QUERY = r"""
import json, os, platform, site, sys, sysconfig
exe_dir = os.path.dirname(os.path.abspath(sys.executable))
cfg = None
for d in (exe_dir, os.path.dirname(exe_dir)):
    if os.path.isfile(os.path.join(d, "pyvenv.cfg")):
        cfg = os.path.join(d, "pyvenv.cfg")
        break
system_site = True
prefix = sys.prefix
if cfg:
    prefix = os.path.dirname(cfg)
    system_site = False
    with open(cfg, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            key, _, value = line.partition("=")
            if key.strip().lower() == "include-system-site-packages":
                system_site = value.strip().lower() == "true"
    dirs = site.getsitepackages([prefix])
    if system_site:
        dirs += site.getsitepackages([sys.base_prefix])
else:
    dirs = site.getsitepackages()
    user = site.getusersitepackages()
    if user:
        dirs.append(user)
env = {
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
}
print(json.dumps({
    "executable": sys.executable,
    "prefix": prefix,
    "venv": bool(cfg),
    "conda": os.path.isdir(os.path.join(prefix, "conda-meta")),
    "version": list(sys.version_info[:3]),
    "implementation": sys.implementation.name,
    "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "site_dirs": [d for d in dict.fromkeys(dirs) if os.path.isdir(d)],
    "markers": env,
}))
"""


def query_interpreter(python: str) -> Environment:
    """Ask `python` to describe itself. Raises InputError when it does not answer."""
    try:
        proc = subprocess.run(
            [python, "-I", "-S", "-c", _QUERY],
            capture_output=True,
            text=True,
            timeout=QUERY_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise InputError(f"{python}: no such interpreter") from None
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
        raise InputError(f"{python}: answered something that is not a description") from None
    if info["implementation"] != "cpython":
        raise InputError(f"{python}: {info['implementation']} is not CPython")
    kind = "venv" if info["venv"] else "conda" if info["conda"] else "system"
    free_threaded = bool(info["free_threaded"]) or _conda_free_threaded(Path(info["prefix"]))
    return Environment(
        executable=info["executable"],
        prefix=info["prefix"],
        version=tuple(info["version"]),
        free_threaded=free_threaded,
        platform=this_platform(),
        site_dirs=tuple(info["site_dirs"]),
        kind=kind,
        marker_env=tuple(sorted(info["markers"].items())),
    )


def _conda_free_threaded(prefix: Path) -> bool:
    """conda-meta records a free-threaded Python as python-freethreading or a cp3XXt build."""
    meta = prefix / "conda-meta"
    if not meta.is_dir():
        return False
    for entry in meta.glob("python*.json"):
        if entry.name.startswith("python-freethreading-"):
            return True
        if entry.name.startswith("python-3") and re.search(r"_cp3\d+t\.json$", entry.name):
            return True
    return False


def interpreter_in(env_dir: Path) -> Path | None:
    for rel in ("bin/python3", "bin/python", "python.exe", "Scripts/python.exe"):
        candidate = env_dir / rel
        if candidate.exists() and os.access(candidate, os.X_OK):
            return candidate
    return None


def environment_from_dir(env_dir: Path) -> Environment:
    """An environment directory: ask its interpreter, else read its layout."""
    if not env_dir.is_dir():
        raise InputError(f"{env_dir}: not a directory")
    python = interpreter_in(env_dir)
    if python is not None:
        try:
            return query_interpreter(str(python))
        except InputError:
            pass  # e.g. an environment copied from another machine: read the layout
    return _static_environment(env_dir)


_LIB_DIR = re.compile(r"^python(\d+)\.(\d+)(t?)$")


def _static_environment(env_dir: Path) -> Environment:
    found: list[tuple[tuple[int, int], bool, Path]] = []
    for lib in (env_dir / "lib", env_dir / "lib64"):
        if lib.is_dir():
            for child in lib.iterdir():
                m = _LIB_DIR.match(child.name)
                if m and (child / "site-packages").is_dir():
                    found.append(((int(m[1]), int(m[2])), m[3] == "t", child / "site-packages"))
    win = env_dir / "Lib" / "site-packages"
    if not found and win.is_dir():
        version = _version_from_cfg(env_dir)
        if version is None:
            raise InputError(f"{env_dir}: a Windows environment whose Python version is unknown")
        found.append((version, False, win))
    if not found:
        raise InputError(f"{env_dir}: no Python interpreter and no site-packages found")
    version, ft, _ = max(found, key=lambda f: f[0])
    ft = ft or _conda_free_threaded(env_dir)
    return Environment(
        executable=None,
        prefix=str(env_dir),
        version=(version[0], version[1], 0),
        free_threaded=ft,
        platform=this_platform(),
        site_dirs=tuple(str(p) for v, _t, p in found if v == version),
        kind="conda" if (env_dir / "conda-meta").is_dir() else "venv",
    )


def _version_from_cfg(env_dir: Path) -> tuple[int, int] | None:
    cfg = env_dir / "pyvenv.cfg"
    if cfg.is_file():
        m = re.search(
            r"^version(?:_info)?\s*=\s*(\d+)\.(\d+)", cfg.read_text("utf-8", "replace"), re.M
        )
        if m:
            return int(m[1]), int(m[2])
    return None


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
