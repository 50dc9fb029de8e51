"""Which file an installer would pick for a target: pure functions over index listings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from ftaudit.index.simple import IndexFile
from ftaudit.model import Target
from ftaudit.targets import best_tag_rank, platform_tags, python_allows


@dataclass(slots=True)
class Release:
    version: Version
    wheels: list[tuple[IndexFile, tuple[str, ...]]] = field(default_factory=list)
    sdists: list[IndexFile] = field(default_factory=list)


def group_releases(project: str, files: Iterable[IndexFile]) -> dict[Version, Release]:
    """Index files by release; names that are not this project's wheels/sdists are ignored."""
    name = canonicalize_name(project)
    out: dict[Version, Release] = {}
    for f in files:
        if f.filename.endswith(".whl"):
            try:
                wname, version, _build, tags = parse_wheel_filename(f.filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if wname != name:
                continue
            out.setdefault(version, Release(version)).wheels.append(
                (f, tuple(str(t) for t in tags))
            )
        elif f.filename.endswith((".tar.gz", ".zip")):
            try:
                sname, version = parse_sdist_filename(f.filename)
            except (InvalidSdistFilename, InvalidVersion):
                continue
            if sname == name:
                out.setdefault(version, Release(version)).sdists.append(f)
    return out


def _python_ok(f: IndexFile, target: Target) -> bool:
    return python_allows(f.requires_python, target)


def best_wheel(
    release: Release, target: Target, platform: str, *, allow_yanked: bool = False
) -> IndexFile | None:
    """The wheel the target interpreter would install from this release, if any."""
    best: tuple[int, IndexFile] | None = None
    for f, tags in release.wheels:
        if (f.yanked and not allow_yanked) or not _python_ok(f, target):
            continue
        rank = best_tag_rank(tags, target, platform)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, f)
    return best[1] if best else None


def sdist(release: Release, target: Target, *, allow_yanked: bool = False) -> IndexFile | None:
    for f in release.sdists:
        if (allow_yanked or not f.yanked) and _python_ok(f, target):
            return f
    return None


def later_releases(
    releases: dict[Version, Release], version: Version, *, pre: bool
) -> list[Release]:
    """Releases after `version`, newest first (pre-releases only if `pre`)."""
    return sorted(
        (r for v, r in releases.items() if v > version and (pre or not v.is_prerelease)),
        key=lambda r: r.version,
        reverse=True,
    )


def earlier_releases(
    releases: dict[Version, Release], version: Version, *, pre: bool
) -> list[Release]:
    return sorted(
        (r for v, r in releases.items() if v < version and (pre or not v.is_prerelease)),
        key=lambda r: r.version,
        reverse=True,
    )


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _specifier(text: str) -> SpecifierSet:
    """A specifier as the source wrote it; one that does not parse allows everything (the
    source's own reader has reported it)."""
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return SpecifierSet()


def matching(releases: dict[Version, Release], specifier: str) -> list[Release]:
    """Releases a specifier allows (pre-releases included), installable or not."""
    spec = _specifier(specifier)
    return [r for v, r in releases.items() if spec.contains(v, prereleases=True)]


def newest_installable(
    releases: dict[Version, Release], specifier: str, target: Target, platform: str
) -> Release | None:
    """The release an installer picks for an unpinned requirement on the target.

    The newest release the specifier allows that has a wheel for the target or an sdist
    it could build; pre-releases only when the specifier names one or nothing else fits,
    as pip and uv do.
    """
    spec = _specifier(specifier)
    ordered = sorted(releases.values(), key=lambda r: r.version, reverse=True)
    for pre in (False, True):
        for rel in ordered:
            if rel.version.is_prerelease and not (pre or spec.prereleases):
                continue
            if not spec.contains(rel.version, prereleases=True):
                continue
            if best_wheel(rel, target, platform) is not None or sdist(rel, target) is not None:
                return rel
    return None


def release_date(release: Release) -> str | None:
    """When a release was published: the earliest upload time of its files (PEP 700)."""
    times = [f.upload_time for f, _tags in release.wheels if f.upload_time]
    times += [f.upload_time for f in release.sdists if f.upload_time]
    return min(times) if times else None


def has_gil_stable_abi_wheel(release: Release, platform: str) -> bool:
    """Whether the release has an abi3 wheel for the platform: a wheel a GIL interpreter
    installs but no free-threaded one loads (PEP 803's abi3t is a different ABI)."""
    plats = set(platform_tags(platform))
    for _f, tags in release.wheels:
        for tag in tags:
            _interp, abi, plat = tag.split("-")
            if abi == "abi3" and plat in plats:
                return True
    return False
