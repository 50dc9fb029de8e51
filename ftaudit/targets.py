"""Targets (free-threaded interpreters) and platforms, and the wheel tags each accepts.

The tag lists are the ones an installer on that interpreter and platform would accept,
best first (packaging's own generators), so choosing a wheel is "lowest index wins".
"""

from __future__ import annotations

import platform as _platform
import re
import sys
from collections.abc import Sequence
from functools import cache

from packaging import tags
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ftaudit.errors import UsageError
from ftaudit.model import Target

KNOWN_TARGETS = (Target(major=3, minor=13), Target(major=3, minor=14), Target(major=3, minor=15))
# Free-threaded releases still in pre-release: a --target may name them, "all" and the
# defaults do not.
PRERELEASE_TARGETS = (Target(major=3, minor=16),)
PLATFORMS = ("linux-x86_64", "linux-aarch64", "macos-arm64", "macos-x86_64", "windows-amd64")
# Newest glibc and macOS versions a wheel may name; older ones follow down to the oldest.
_NEWEST_GLIBC_MINOR = 42
_NEWEST_MACOS = (26, 0)
_TARGET = re.compile(r"^(?:cp)?(\d)\.?(\d{1,2})(t?)$")


def _known_names() -> str:
    return ", ".join(
        [t.name for t in KNOWN_TARGETS] + [f"{t.name} (pre-release)" for t in PRERELEASE_TARGETS]
    )


def known_target(major: int, minor: int) -> Target | None:
    """The free-threaded target of that version, if such a release exists."""
    wanted = Target(major=major, minor=minor)
    return wanted if wanted in (*KNOWN_TARGETS, *PRERELEASE_TARGETS) else None


def parse_target(text: str) -> Target:
    """A free-threaded CPython release that exists, e.g. ``3.14t`` or ``cp314t``.

    A GIL version (``3.14``) is refused with a hint rather than taken as its free-threaded
    twin: the two are different interpreters, and a typo must not change what is audited.
    """
    raw = text.strip().lower()
    m = _TARGET.match(raw)
    if m is None:
        raise UsageError(
            f"invalid target {text!r}: expected a free-threaded version like 3.14t "
            f"(known: {_known_names()})"
        )
    major, minor, suffix = int(m[1]), int(m[2]), m[3]
    twin = f"{major}.{minor}t"
    if (major, minor) < (3, 13):
        raise UsageError(f"invalid target {text!r}: free-threaded CPython starts at 3.13t")
    target = known_target(major, minor)
    if target is None:
        raise UsageError(
            f"invalid target {text!r}: there is no free-threaded CPython {major}.{minor} "
            f"(known: {_known_names()})"
        )
    if not suffix:
        raise UsageError(
            f"invalid target {text!r}: {major}.{minor} is the GIL interpreter, and ftaudit "
            f"audits free-threaded ones: did you mean {twin}?"
        )
    return target


def parse_targets(text: str | Sequence[str]) -> tuple[Target, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[Target] = []
    for item in items:
        if item.strip().lower() == "all":
            out.extend(KNOWN_TARGETS)
        elif item.strip():
            out.append(parse_target(item))
    if not out:
        raise UsageError("no target given: expected e.g. --target 3.13t,3.14t")
    return tuple(sorted(set(out), key=lambda t: t.version))


@cache
def python_allows(requires_python: str | None, target: Target) -> bool:
    """Whether a Requires-Python admits the target (an unparsable one admits everything,
    as installers treat it)."""
    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(
            f"{target.major}.{target.minor}.0", prereleases=True
        )
    except InvalidSpecifier:
        return True


def targets_for_requires_python(requires_python: str | None) -> tuple[Target, ...]:
    allowed = tuple(t for t in KNOWN_TARGETS if python_allows(requires_python, t))
    return allowed or KNOWN_TARGETS


def this_platform() -> str:
    machine = _platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform.startswith("linux"):
        return f"linux-{arch}"
    if sys.platform == "darwin":
        return "macos-arm64" if arch in ("arm64", "aarch64") else "macos-x86_64"
    if sys.platform == "win32":
        return "windows-arm64" if arch == "aarch64" else "windows-amd64"
    return f"{sys.platform}-{arch}"


def parse_platforms(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in text.split(","):
        name = item.strip().lower()
        if not name:
            continue
        if name == "all":
            out.extend(PLATFORMS)
        elif name in ("this", "native"):
            out.append(this_platform())
        elif name in (*PLATFORMS, "windows-arm64", "linux-i686"):
            out.append(name)
        else:
            raise UsageError(
                f"invalid platform {name!r}: expected one of {', '.join(PLATFORMS)} or all"
            )
    return tuple(dict.fromkeys(out))


@cache
def platform_tags(platform: str) -> tuple[str, ...]:
    """Platform tags for a platform name, best first."""
    if platform == this_platform() and sys.platform.startswith("linux"):
        # The running machine's own glibc decides which manylinux tags it accepts.
        return tuple(tags.platform_tags())
    os_name, _, arch = platform.partition("-")
    if os_name == "linux":
        out = [f"linux_{arch}"]
        for minor in range(_NEWEST_GLIBC_MINOR, 4, -1):
            out.append(f"manylinux_2_{minor}_{arch}")
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(minor)
            if legacy and (minor != 12 or arch in ("x86_64", "i686")):
                out.append(f"{legacy}_{arch}")
        return tuple(out)
    if os_name == "macos":
        return tuple(tags.mac_platforms(_NEWEST_MACOS, "arm64" if arch == "arm64" else "x86_64"))
    if os_name == "windows":
        return ("win_arm64",) if arch == "arm64" else ("win_amd64",)
    raise UsageError(f"unknown platform {platform!r}")


@cache
def supported_tags(target: Target, platform: str) -> tuple[str, ...]:
    """Every wheel tag the free-threaded interpreter `target` installs on `platform`."""
    plats = list(platform_tags(platform))
    version = target.version
    found = [
        *tags.cpython_tags(version, abis=[target.abi], platforms=plats),
        *tags.compatible_tags(
            version, interpreter=f"cp{target.major}{target.minor}", platforms=plats
        ),
    ]
    return tuple(dict.fromkeys(str(t) for t in found))


@cache
def tag_priority(target: Target, platform: str) -> dict[str, int]:
    return {tag: i for i, tag in enumerate(supported_tags(target, platform))}


def best_tag_rank(wheel_tags: Sequence[str], target: Target, platform: str) -> int | None:
    """The rank of a wheel's best tag for the target (lower is better); None if none fit."""
    ranks = tag_priority(target, platform)
    found = [ranks[t] for t in wheel_tags if t in ranks]
    return min(found) if found else None


_CPYTHON_SUFFIX = re.compile(r"\.(?:cpython-|cp)(\d)(\d+)(t?)d?-[^./]+\.(?:so|pyd)$")


def extension_loadable(path: str, target: Target) -> bool:
    """Whether the target interpreter would load an extension file of this name.

    What its import system accepts (importlib.machinery.EXTENSION_SUFFIXES): the suffix
    tagged with its own version and ``t``, from 3.15 ``.abi3t.so``, and an untagged
    ``.so``/``.pyd``. A wheel may carry builds for other interpreters beside it (some
    bundle one file per CPython version); those are never imported by this one.
    """
    name = path.rsplit("/", 1)[-1].lower()
    m = _CPYTHON_SUFFIX.search(name)
    if m:
        return (int(m[1]), int(m[2])) == target.version and m[3] == "t"
    if name.endswith((".abi3.so", ".abi3.pyd")):
        return False  # free-threaded builds do not load the GIL stable ABI
    if ".abi3t." in name:
        return target.version >= (3, 15)
    return True
