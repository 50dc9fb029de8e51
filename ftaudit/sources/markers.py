"""Environment markers evaluated for a target and platform, not for the running interpreter.

A lock or requirements file describes many environments; which of its packages a
free-threaded 3.14 on Windows installs is decided by evaluating every marker against
*that* interpreter's marker environment, built here from the target and platform names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.utils import canonicalize_name

from ftaudit.errors import first_line
from ftaudit.model import Target

# What sys.platform, platform.system(), os.name and platform.machine() say on each platform.
_PLATFORM_VALUES = {
    "linux": ("linux", "Linux", "posix"),
    "macos": ("darwin", "Darwin", "posix"),
    "windows": ("win32", "Windows", "nt"),
}
_MACHINE = {
    "windows-amd64": "AMD64",
    "windows-arm64": "ARM64",
}


@cache
def marker_environment(target: Target, platform: str) -> Mapping[str, str]:
    """PEP 508 marker values of the free-threaded CPython `target` on `platform`.

    The patch level is taken as .0, the first release an installer can meet; markers on
    platform_release/platform_version (kernel versions) evaluate against empty strings,
    as they do for uv's universal resolution.
    """
    os_name, _, arch = platform.partition("-")
    sys_platform, system, os_kind = _PLATFORM_VALUES.get(os_name, (os_name, os_name, "posix"))
    version = f"{target.major}.{target.minor}"
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{version}.0",
        "os_name": os_kind,
        "platform_machine": _MACHINE.get(platform, arch),
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": f"{version}.0",
        "python_version": version,
        "sys_platform": sys_platform,
    }


@cache
def parse_marker(text: str) -> Marker:
    return Marker(text)


def valid_marker(text: str) -> str | None:
    """The reason a marker is invalid, or None."""
    try:
        parse_marker(text)
    except InvalidMarker as exc:
        return first_line(exc)
    return None


def holds(marker: str | Marker | None, env: Mapping[str, str], extras: Iterable[str] = ()) -> bool:
    """Whether a marker holds in `env` with any of the `extras` asked for.

    A marker that names a variable this environment has no value for is kept (True):
    dropping a package on a guess could hide a problem, keeping it cannot.
    """
    if marker is None or marker == "":
        return True
    parsed = parse_marker(marker) if isinstance(marker, str) else marker
    asked = list(extras) or [""]
    try:
        return any(parsed.evaluate({**env, "extra": extra}) for extra in asked)
    except (UndefinedComparison, UndefinedEnvironmentName):
        return True


_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def extras_named(marker: str | Marker | None) -> list[str]:
    """The extras a marker asks about (`extra == "x"`): for edges of a lock that already
    decided which extras are installed."""
    return _EXTRA.findall(str(marker)) if marker else []


_EXTRA_TEST = re.compile(
    r"""\bextra\s*(==|!=)\s*(["'])([^"']*)\2|(["'])([^"']*)\4\s*(==|!=)\s*extra\b"""
)


def _as_membership(match: re.Match[str]) -> str:
    op = match[1] or match[6]
    value = canonicalize_name(match[3] if match[1] else match[5])
    return f"'{value}' {'in' if op == '==' else 'not in'} extras"


@cache
def _lock_marker(text: str) -> Marker:
    return Marker(_EXTRA_TEST.sub(_as_membership, text))


def lock_holds(
    marker: str | None,
    env: Mapping[str, str],
    extras: Iterable[str] = (),
    groups: Iterable[str] = (),
) -> bool:
    """Whether a lock's marker holds in `env` when exactly `extras` and `groups` are chosen.

    A lock's markers speak of the whole selection at once: uv's conflict markers
    (``extra == 'extra-7-project-cpu' and extra != 'group-7-project-dev'``) and PEP 751's
    ``'x' in extras`` are tests on sets, so ``extra == X`` is read as "X is chosen" and
    ``extra != X`` as "X is not", never as one value of a variable. As `holds`, a marker
    naming a variable the environment lacks is kept.
    """
    if not marker:
        return True
    values: dict[str, str | frozenset[str]] = {
        **env,
        "extras": frozenset(canonicalize_name(e) for e in extras),
        "dependency_groups": frozenset(canonicalize_name(g) for g in groups),
    }
    try:
        return _lock_marker(marker).evaluate(values, context="lock_file")
    except (UndefinedComparison, UndefinedEnvironmentName):
        return True
