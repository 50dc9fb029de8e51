"""pylock.toml (PEP 751), validated with packaging.pylock; each package carries its own
marker, and its wheels and sdist with URLs and hashes.

Markers are evaluated for the lock's `default-groups` and no extras (what an installer
installs by default), unless others are chosen; the rest is listed as left out. The
project itself (a `directory` entry for the lock's own folder) is not a dependency.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from packaging.pylock import Pylock, PylockUnsupportedVersionError, PylockValidationError
from packaging.utils import canonicalize_name

from ftaudit.errors import InputError
from ftaudit.model import Edge, LeftOut, LockedPackage, LockGraph, PinnedFile, Selection
from ftaudit.sources.lockfile import filename_of, split_hash, url_problem
from ftaudit.sources.pyproject import load_toml


def read_pylock(
    path: Path, direct: frozenset[str] = frozenset(), selection: Selection | None = None
) -> LockGraph:
    selection = selection or Selection()
    data = load_toml(path)
    try:
        lock = Pylock.from_dict(data)
    except PylockUnsupportedVersionError as exc:
        raise InputError(f"{path}: {exc}") from None
    except PylockValidationError as exc:
        raise InputError(f"{path}: {exc}") from None
    extras = [str(canonicalize_name(x)) for x in lock.extras or ()]
    groups = [str(canonicalize_name(g)) for g in lock.dependency_groups or ()]
    defaults = {str(canonicalize_name(g)) for g in lock.default_groups or ()}
    for kind, asked, offered in (
        ("extra", selection.extras, extras),
        ("group", selection.groups, groups),
    ):
        missing = sorted(set(asked) - set(offered))
        if missing:
            raise InputError(
                f"{path}: no {kind} {', '.join(map(repr, missing))} in the lock (its "
                f"{kind}s: {', '.join(offered) or 'none'})"
            )
    chosen_extras = frozenset(x for x in extras if selection.wants_extra(x))
    chosen_groups = frozenset(g for g in groups if g in defaults or selection.wants_group(g))
    packages = []
    for i, pkg in enumerate(lock.packages):
        if pkg.directory is not None and _is_here(path, pkg.directory.path):
            continue  # the project itself
        files: list[PinnedFile] = []
        for j, w in enumerate(pkg.wheels or ()):
            files.append(_file(path, f"packages[{i}].wheels[{j}]", w.name, w.url, w.hashes, w.size))
        if pkg.sdist is not None:
            s = pkg.sdist
            files.append(_file(path, f"packages[{i}].sdist", s.name, s.url, s.hashes, s.size))
        reference = None
        if pkg.vcs is not None:
            reference = f"vcs: {pkg.vcs.url or pkg.vcs.path}"
        elif pkg.directory is not None:
            reference = f"directory: {pkg.directory.path}"
        elif pkg.archive is not None:
            reference = f"archive: {pkg.archive.url or pkg.archive.path}"
        if pkg.index is not None and (problem := url_problem(pkg.index)):
            raise InputError(
                f"{path}: in 'packages[{i}].index': invalid URL {pkg.index!r} ({problem})"
            )
        edges = tuple(
            Edge(name=canonicalize_name(str(d["name"])))
            for d in (pkg.dependencies or ())
            if isinstance(d, dict) and isinstance(d.get("name"), str)
        )
        packages.append(
            LockedPackage(
                name=canonicalize_name(pkg.name),
                display_name=str(pkg.name),
                version=str(pkg.version) if pkg.version is not None else None,
                marker=str(pkg.marker) if pkg.marker is not None else None,
                requires_python=str(pkg.requires_python) if pkg.requires_python else None,
                files=tuple(files),
                dependencies=edges,
                index=pkg.index,
                direct_reference=reference,
            )
        )
    left_out = [
        LeftOut(kind="extra", name=x, include=f"--extra {x}")
        for x in extras
        if x not in chosen_extras
    ] + [
        LeftOut(kind="group", name=g, include=f"--group {g}")
        for g in groups
        if g not in chosen_groups
    ]
    return LockGraph(
        kind="pylock.toml",
        path=str(path),
        packages=tuple(packages),
        roots=None,
        direct=direct,
        index_urls=tuple(dict.fromkeys(p.index for p in packages if p.index)),
        extras=chosen_extras,
        groups=chosen_groups,
        selected=tuple(
            [f"group {g}" for g in sorted(chosen_groups)]
            + [f"extra {x}" for x in sorted(chosen_extras)]
        )
        or ("default",),
        left_out=tuple(left_out),
        requires_python=str(lock.requires_python) if lock.requires_python else None,
    )


def _is_here(lock: Path, directory: str) -> bool:
    """Whether a `directory` entry is the folder the lock is in: the project itself."""
    try:
        return (lock.parent / directory).resolve() == lock.parent.resolve()
    except (OSError, ValueError):
        return directory in (".", "./", "")


def _file(
    path: Path, where: str, name: str | None, url: str | None, hashes: object, size: object
) -> PinnedFile:
    """packaging.pylock has checked the types; what it leaves to us is that the URL parses
    and the digests are digests (a sha256 also names a cache file)."""
    try:
        from_url = filename_of(url) if url else ""
        _ = urlsplit(url).port if url else None  # a port that is not a number raises here
    except ValueError as exc:
        raise InputError(f"{path}: in '{where}.url': invalid URL {url!r} ({exc})") from None
    name = name or from_url
    pairs = []
    for algo, digest in dict(hashes or {}).items():  # type: ignore[call-overload]
        found = None
        if isinstance(algo, str) and isinstance(digest, str):
            found = split_hash(f"{algo}:{digest}", strict=True)
        if found is None:
            raise InputError(f"{path}: in '{where}.hashes': invalid {algo} hash {digest!r}")
        pairs.append(found)
    return PinnedFile(
        filename=name, url=url, hashes=tuple(pairs), size=size if isinstance(size, int) else None
    )
