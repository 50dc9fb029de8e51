"""What an environment's files say about it, read without running anything in it.

A venv is described by its ``pyvenv.cfg`` (``home``, ``version``/``version_info``,
``include-system-site-packages``) and its ``lib/python3.X[t]`` directory (the ``t`` marks a
free-threaded build), a conda environment by its ``conda-meta/*.json`` records, a system
prefix by its standard library directory. The site directories are those ``site`` would
add, in its order, with Debian's patched ``site`` (``dist-packages``) mirrored when the
standard library in use is Debian's. Marker values that the files cannot give (machine,
operating system) are the host's: a scan reads environments of the machine it runs on.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ftaudit.errors import InputError

_LIB_DIR = re.compile(r"^python(\d+)\.(\d+)(t?)$")
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_FT_EXE = re.compile(r"^python3\.\d+t(?:\.exe)?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class VenvConfig:
    """The keys of a ``pyvenv.cfg`` that say where the base interpreter is and what it is."""

    home: str | None
    version: tuple[int, int, int] | None
    system_site: bool
    base_executable: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """One environment as its files describe it."""

    kind: str  # venv, conda, system
    prefix: Path
    version: tuple[int, int, int]
    exact_version: bool  # False when the patch level was not in any file
    free_threaded: bool
    site_dirs: tuple[Path, ...]


def read_pyvenv_cfg(path: Path) -> VenvConfig:
    """Parsed as `site.venv` parses it: ``key = value`` lines, keys case-insensitive."""
    try:
        text = path.read_text("utf-8", "replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    keys: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            keys[key.strip().lower()] = value.strip()
    version = None
    m = _VERSION.match(keys.get("version") or keys.get("version_info") or "")
    if m:
        version = (int(m[1]), int(m[2]), int(m[3] or 0))
    return VenvConfig(
        home=keys.get("home") or None,
        version=version,
        # site.venv: anything but "true" (any case) leaves the base's directories out.
        system_site=keys.get("include-system-site-packages", "false").lower() == "true",
        base_executable=keys.get("executable") or None,
    )


def venv_config_beside(exe: Path) -> Path | None:
    """The ``pyvenv.cfg`` the interpreter at `exe` would read: in its directory or the one
    above, found from the path as given (a venv's ``bin/python`` is a link to its base)."""
    for d in (exe.parent, exe.parent.parent):
        if (d / "pyvenv.cfg").is_file():
            return d / "pyvenv.cfg"
    return None


LibDir = tuple[tuple[int, int], bool, Path]  # version, free-threaded, the directory


def _is_windows_prefix(prefix: Path) -> bool:
    return (prefix / "Lib").is_dir() and not (prefix / "lib").is_dir()


def lib_dirs(prefix: Path) -> list[LibDir]:
    """``lib/python3.X[t]`` (and ``lib64/``) directories under `prefix`: version, whether
    free-threaded, path."""
    found = []
    for lib in (prefix / "lib", prefix / "lib64"):
        try:
            children = sorted(lib.iterdir())
        except OSError:
            continue
        for child in children:
            m = _LIB_DIR.match(child.name)
            if m and child.is_dir():
                found.append(((int(m[1]), int(m[2])), m[3] == "t", child))
    return found


def _stdlib(
    prefix: Path, want: tuple[int, int] | None
) -> tuple[tuple[int, int], bool, Path] | None:
    """The standard library directory of the interpreter installed at `prefix`."""
    if _is_windows_prefix(prefix):
        return None
    candidates = [c for c in lib_dirs(prefix) if (c[2] / "os.py").is_file()]
    if want is not None:
        candidates = [c for c in candidates if c[0] == want] or candidates
    return max(candidates, key=lambda c: (c[0], c[1])) if candidates else None


def _patchlevel(prefix: Path, lib_name: str) -> tuple[int, int, int] | None:
    """PY_VERSION from the installed headers, when they are there."""
    header = prefix / "include" / lib_name / "patchlevel.h"
    try:
        text = header.read_text("utf-8", "replace")
    except OSError:
        return None
    m = re.search(r'#define\s+PY_VERSION\s+"(\d+)\.(\d+)\.(\d+)', text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def _is_debian_site(stdlib: Path) -> bool:
    """Debian's ``site.py`` is patched to look in ``dist-packages``; CPython's never does."""
    try:
        return "dist-packages" in (stdlib / "site.py").read_text("utf-8", "replace")
    except OSError:
        return False


def prefix_site_dirs(
    prefix: Path, lib_name: str, *, in_venv: bool, debian: bool, windows: bool
) -> list[Path]:
    """`site.getsitepackages` for one prefix: CPython's rule, or Debian's.

    Debian's (its site.py): inside a venv ``lib/python3.X/site-packages`` first, then
    ``local/lib/python3.X/dist-packages``, ``lib/python3/dist-packages`` and
    ``lib/python3.X/dist-packages``, for the venv's prefix and the base's alike.
    """
    if windows:
        return [prefix / "Lib" / "site-packages"]
    if debian:
        own = [prefix / "lib" / lib_name / "site-packages"] if in_venv else []
        return [
            *own,
            prefix / "local" / "lib" / lib_name / "dist-packages",
            prefix / "lib" / "python3" / "dist-packages",
            prefix / "lib" / lib_name / "dist-packages",
        ]
    # sys.platlibdir is lib64 on some distributions; site looks there, then in lib.
    return [prefix / libdir / lib_name / "site-packages" for libdir in ("lib64", "lib")]


def user_site(version: tuple[int, int], free_threaded: bool, *, windows: bool) -> Path | None:
    """`site.getusersitepackages` for that interpreter, from the environment variables."""
    if os.environ.get("PYTHONNOUSERSITE"):
        return None
    suffix = "t" if free_threaded else ""
    if windows:
        appdata = os.environ.get("APPDATA")
        base = Path(appdata) / "Python" if appdata else Path("~").expanduser() / "Python"
        if os.environ.get("PYTHONUSERBASE"):
            base = Path(os.environ["PYTHONUSERBASE"])
        return base / f"Python{version[0]}{version[1]}{suffix}" / "site-packages"
    base = Path(os.environ.get("PYTHONUSERBASE") or Path("~/.local").expanduser())
    return base / "lib" / f"python{version[0]}.{version[1]}{suffix}" / "site-packages"


def _existing(dirs: list[Path]) -> tuple[Path, ...]:
    """Those that exist, each once (``lib64`` is often a link to ``lib``)."""
    out: dict[Path, Path] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        key = d.resolve()
        seen = out.get(key)
        # The same directory through the lib64 link and through lib: name it by lib.
        if seen is None or (seen.parent.parent.is_symlink() and not d.parent.parent.is_symlink()):
            out[key] = d
    return tuple(out.values())


def base_prefix_of(cfg: VenvConfig, want: tuple[int, int] | None) -> Path | None:
    """The base interpreter's prefix, from ``home`` (the directory its executable is in)
    and, where written, its ``executable``: the directory beside it that holds a standard
    library. Links are followed as getpath follows them; nothing is run."""
    candidates: list[Path] = []
    if cfg.base_executable:
        real = Path(cfg.base_executable).resolve()
        candidates += [real.parent.parent, real.parent]
    if cfg.home:
        home = Path(cfg.home)
        candidates += [home.parent, home, home.resolve().parent, home.resolve()]
    for c in dict.fromkeys(candidates):
        if _stdlib(c, want) is not None:
            return c
        if (c / "Lib" / "os.py").is_file():
            return c
    return None


def venv_layout(prefix: Path, cfg: VenvConfig) -> Layout:
    windows = _is_windows_prefix(prefix)
    want = cfg.version[:2] if cfg.version else None
    if windows:
        if cfg.version is None:
            raise InputError(f"{prefix}: a Windows environment whose Python version is unknown")
        version = cfg.version[:2]
        ft = _windows_free_threaded(prefix, cfg)
        lib_name = ""
    else:
        libs = [c for c in lib_dirs(prefix) if (c[2] / "site-packages").is_dir()]
        if want is not None:
            libs = [c for c in libs if c[0] == want] or libs
        if not libs:
            raise InputError(f"{prefix}: a venv with no lib/python3.X/site-packages")
        version, ft, lib = max(libs, key=lambda c: (c[0], c[1]))
        lib_name = lib.name
    full = cfg.version if cfg.version and cfg.version[:2] == version else (*version, 0)
    base = base_prefix_of(cfg, version)
    base_lib = _stdlib(base, version) if base is not None else None
    debian = base_lib is not None and _is_debian_site(base_lib[2])
    dirs = prefix_site_dirs(prefix, lib_name, in_venv=True, debian=debian, windows=windows)
    if cfg.system_site:
        # As site orders them: the venv's own, the user's, then the base's.
        user = user_site(version, ft, windows=windows)
        dirs += [user] if user else []
        if base is not None:
            name = base_lib[2].name if base_lib else lib_name
            dirs += prefix_site_dirs(base, name, in_venv=True, debian=debian, windows=windows)
    return Layout(
        kind="venv",
        prefix=prefix,
        version=(full[0], full[1], full[2]),
        exact_version=cfg.version is not None and cfg.version[:2] == version,
        free_threaded=ft,
        site_dirs=_existing(dirs),
    )


def _windows_free_threaded(prefix: Path, cfg: VenvConfig) -> bool:
    names = [p.name for p in (prefix / "Scripts").glob("python3*t.exe")]
    if cfg.base_executable:
        names.append(Path(cfg.base_executable.replace("\\", "/")).name)
    return any(_FT_EXE.match(n.lower()) for n in names)


@dataclass(frozen=True, slots=True)
class CondaPython:
    version: tuple[int, int, int] | None
    free_threaded: bool


def conda_python(prefix: Path) -> CondaPython:
    """The python package conda installed here, from its ``conda-meta`` record.

    Records are named ``name-version-build.json``; a free-threaded Python is the
    ``python-freethreading`` package or a build tagged ``cp3XXt``. A record's JSON says the
    same, and is read when it can be; the file name serves when it cannot.
    """
    version = None
    ft = False
    for entry in sorted((prefix / "conda-meta").glob("python*.json")):
        name, ver, build = _conda_record(entry)
        if name == "python-freethreading":
            ft = True
        elif name == "python":
            m = _VERSION.match(ver)
            if m:
                version = (int(m[1]), int(m[2]), int(m[3] or 0))
            ft = ft or bool(re.search(r"(?:^|_)cp3\d+t(?:_|$)", build))
        elif name == "python_abi" and re.search(r"(?:^|_)cp3\d+t(?:_|$)", build):
            ft = True
    return CondaPython(version, ft)


def _conda_record(entry: Path) -> tuple[str, str, str]:
    parts = entry.name.removesuffix(".json").rsplit("-", 2)
    name, ver, build = (parts[0], parts[1], parts[2]) if len(parts) == 3 else (parts[0], "", "")
    try:
        record = json.loads(entry.read_text("utf-8"))
    except (OSError, ValueError):
        record = None
    if isinstance(record, dict):
        name = str(record.get("name") or name)
        ver = str(record.get("version") or ver)
        build = str(record.get("build") or build)
    return name, ver, build


def prefix_layout(prefix: Path, want: tuple[int, int, int] | None = None) -> Layout | None:
    """A conda environment or an installed interpreter's prefix, or None when `prefix`
    holds no Python at all."""
    conda = conda_python(prefix) if (prefix / "conda-meta").is_dir() else None
    if want is None and conda is not None:
        want = conda.version
    windows = _is_windows_prefix(prefix)
    if windows:
        if want is None:
            return None
        version, lib_name, debian, exact = want[:2], "", False, True
        ft = bool(conda and conda.free_threaded) or any(
            _FT_EXE.match(p.name.lower()) for p in prefix.glob("python3*t.exe")
        )
    else:
        found = _stdlib(prefix, want[:2] if want else None)
        if found is None:
            # conda on Linux and macOS: lib/python3.X[t]/site-packages, stdlib or not.
            found = next((c for c in lib_dirs(prefix) if (c[2] / "site-packages").is_dir()), None)
        if found is None:
            return None
        version, ft, stdlib = found
        lib_name = stdlib.name
        debian = _is_debian_site(stdlib)
        ft = ft or bool(conda and conda.free_threaded)
        if want is None or want[:2] != version:
            want = _patchlevel(prefix, lib_name)
        exact = want is not None and want[:2] == version
    full = want if exact and want is not None else (*version, 0)
    user = user_site(version, ft, windows=windows)
    dirs = ([user] if user else []) + prefix_site_dirs(
        prefix, lib_name, in_venv=False, debian=debian, windows=windows
    )
    return Layout(
        kind="conda" if conda is not None else "system",
        prefix=prefix,
        version=(full[0], full[1], full[2]),
        exact_version=exact,
        free_threaded=ft,
        site_dirs=_existing(dirs),
    )


def host_markers(version: tuple[int, int, int]) -> tuple[tuple[str, str], ...]:
    """PEP 508 marker values of a CPython of `version` on this host. The version is the
    environment's (from its files); machine and operating system are the host's."""
    full = ".".join(map(str, version))
    values = {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": "CPython",
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": full,
        "python_version": f"{version[0]}.{version[1]}",
        "sys_platform": sys.platform,
    }
    return tuple(sorted(values.items()))
