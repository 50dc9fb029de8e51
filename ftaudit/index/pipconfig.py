"""Which package index to ask: pip's configuration, read by ftaudit the way pip reads it.

The files and their order are pip's (its ``configuration.py`` and ``utils/appdirs.py``):
global (``$XDG_CONFIG_DIRS/pip`` or ``/etc/xdg/pip``, then ``/etc``), user (the legacy
``~/.pip``, then ``$XDG_CONFIG_HOME/pip`` or ``~/.config/pip``; skipped when
``PIP_CONFIG_FILE`` names a file that exists), site (the scanned environment's prefix),
then ``PIP_CONFIG_FILE`` (``os.devnull`` turns every file off), then the ``PIP_*``
variables. A later file wins within a section; ``[install]`` beats ``[global]`` and the
variables beat both, as for ``pip install``. Nothing is imported from the scanned
environment and no process is started.

When nothing is configured the index is pip's own default, read from the pip installed
beside ftaudit (its interpreter, never the scanned one), so that no index is named here.
"""

from __future__ import annotations

import configparser
import importlib
import locale
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ftaudit.errors import InputError, UsageError, first_line
from ftaudit.sources.environment import environment_prefix

# pip reads these sections for `pip install`, in rising precedence.
_SECTIONS = ("global", "install", ":env:")
# pip's ENV_NAMES_IGNORED: PIP_VERSION and PIP_HELP are not options.
_IGNORED = ("version", "help")


@dataclass(frozen=True, slots=True)
class IndexConfig:
    index_url: str
    extra_index_urls: tuple[str, ...]
    cert: str | None

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.index_url, *self.extra_index_urls)


@dataclass(frozen=True, slots=True)
class Setting:
    value: str
    origin: str  # the file, or the PIP_* variable, it came from


def _windows() -> bool:
    return sys.platform == "win32"


def _basename() -> str:
    return "pip.ini" if _windows() else "pip.conf"


def _global_dirs(prefix: Path) -> list[Path]:
    """appdirs.site_config_dirs("pip")."""
    env = os.environ
    if _windows():
        return [Path(env.get("ALLUSERSPROFILE") or "C:/ProgramData") / "pip"]
    if sys.platform == "darwin":
        xdg = env.get("XDG_DATA_DIRS", "").strip()
        if xdg:
            return [Path(p) / "pip" for p in xdg.split(os.pathsep) if p.strip()]
        # platformdirs on macOS: Homebrew's share/ first, when pip's Python is Homebrew's.
        brew = str(prefix).split("/opt/python")[0] if "/opt/python" in str(prefix) else None
        dirs = [Path(f"{brew}/share/pip")] if brew is not None else []
        return [*dirs, Path("/Library/Application Support/pip")]
    xdg = env.get("XDG_CONFIG_DIRS", "").strip()
    dirs = [Path(p) / "pip" for p in xdg.split(os.pathsep) if p.strip()] if xdg else []
    return [*(dirs or [Path("/etc/xdg/pip")]), Path("/etc")]


def _user_dir() -> Path:
    """appdirs.user_config_dir("pip")."""
    env = os.environ
    if _windows():
        return Path(env.get("APPDATA") or Path("~/AppData/Roaming").expanduser()) / "pip"
    if sys.platform == "darwin":
        data = env.get("XDG_DATA_HOME", "").strip()
        support = Path(data) if data else Path("~/Library/Application Support").expanduser()
        if (support / "pip").is_dir():
            return support / "pip"
        return Path("~/.config/pip").expanduser()
    xdg = env.get("XDG_CONFIG_HOME", "").strip()
    return (Path(xdg) if xdg else Path("~/.config").expanduser()) / "pip"


def config_files(prefix: Path) -> list[Path]:
    """The files pip reads, in its order of precedence (the last one wins)."""
    name = _basename()
    env_file = os.environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    files = [d / name for d in _global_dirs(prefix)]
    if not (env_file and Path(env_file).exists()):
        legacy = Path("~").expanduser() / ("pip" if _windows() else ".pip") / name
        files += [legacy, _user_dir() / name]
    files.append(prefix / name)
    if env_file is not None:
        files.append(Path(env_file))
    return files


def _encoding() -> str:
    if sys.version_info >= (3, 11):
        return locale.getencoding()
    return locale.getpreferredencoding(False)


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").removeprefix("--")


def _read(path: Path) -> Iterator[tuple[str, str, str]]:
    """(section, name, value) of one file; a file that is not there gives nothing."""
    if not path.exists():
        return
    parser = configparser.RawConfigParser()
    encoding = _encoding()
    try:
        parser.read(path, encoding=encoding)
    except UnicodeDecodeError:
        raise InputError(f"{path}: contains invalid {encoding} characters") from None
    except configparser.Error as exc:
        raise InputError(
            f"{path}: not a valid pip configuration file ({first_line(exc)})"
        ) from None
    for section in parser.sections():
        for name, value in parser.items(section):
            yield section, _normalize(name), value


def pip_settings(prefix: Path) -> dict[str, Setting]:
    """What `pip install` in the environment at `prefix` would take from its configuration:
    option name (``index-url``, ...) to value and where it came from."""
    by_section: dict[str, dict[str, Setting]] = {s: {} for s in _SECTIONS}
    for path in config_files(prefix):
        for section, name, value in _read(path):
            if section in by_section:
                by_section[section][name] = Setting(value, str(path))
    for key, value in os.environ.items():
        if key.startswith("PIP_") and key[4:].lower() not in _IGNORED:
            by_section[":env:"][_normalize(key[4:])] = Setting(value, key)
    merged: dict[str, Setting] = {}
    for section in _SECTIONS:
        # pip drops empty values after merging files, so an empty one hides lower ones.
        merged.update({k: v for k, v in by_section[section].items() if v.value})
    return merged


def _flag(setting: Setting | None, name: str) -> bool:
    """pip's strtobool, for a store_true option such as no-index."""
    if setting is None:
        return False
    value = setting.value.lower()
    if value in ("y", "yes", "t", "true", "on", "1"):
        return True
    if value in ("n", "no", "f", "false", "off", "0"):
        return False
    raise UsageError(
        f"{setting.origin}: {setting.value!r} is not a valid value for {name} "
        "(yes/no, true/false or 1/0)"
    )


@cache
def pips_default_index() -> str | None:
    """pip's default index, from the pip beside ftaudit: its own interpreter's, in this
    process (the scanned environment's pip is never imported)."""
    try:
        module = importlib.import_module("pip._internal.models.index")
    except ImportError:
        return None
    url = getattr(getattr(module, "PyPI", None), "simple_url", None)
    return url if isinstance(url, str) and url else None


def pip_index_config(
    python: str | None,
    index_url: str | None = None,
    extra_index_urls: tuple[str, ...] = (),
    *,
    prefix: str | None = None,
) -> IndexConfig:
    """The index URLs to use: the caller's first, then pip's configuration as `pip install`
    in the scanned environment (`prefix`, else the one `python` belongs to, else ftaudit's
    own) would read it, then pip's default."""
    where = Path(prefix) if prefix else environment_prefix(python) if python else Path(sys.prefix)
    settings = pip_settings(where)
    no_index = _flag(settings.get("no-index"), "no-index")
    if no_index:
        settings = {k: v for k, v in settings.items() if k not in ("index-url", "extra-index-url")}
    configured = settings.get("index-url")
    chosen = index_url or (configured.value if configured else None)
    if not chosen and no_index:
        raise UsageError(
            f"pip's configuration sets no-index ({settings['no-index'].origin}), which leaves "
            "no package index to look in: pass --index-url URL"
        )
    chosen = chosen or pips_default_index()
    if not chosen:
        raise UsageError(
            "no package index configured, and no pip installed beside ftaudit to say its "
            "default: pass --index-url URL"
        )
    extras = extra_index_urls
    if not extras and "extra-index-url" in settings:
        extras = tuple(settings["extra-index-url"].value.split())
    cert = settings.get("cert")
    return IndexConfig(
        index_url=chosen,
        extra_index_urls=tuple(dict.fromkeys(u for u in extras if u != chosen)),
        cert=cert.value if cert else None,
    )
