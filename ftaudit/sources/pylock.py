"""pylock.toml (PEP 751), validated with packaging.pylock; each package carries its own
marker, and its wheels and sdist with URLs and hashes."""

from __future__ import annotations

from pathlib import Path

from packaging.pylock import Pylock, PylockUnsupportedVersionError, PylockValidationError
from packaging.utils import canonicalize_name

from ftaudit.errors import InputError
from ftaudit.model import Edge, LockedPackage, LockGraph, PinnedFile
from ftaudit.sources.lockfile import filename_of
from ftaudit.sources.pyproject import load_toml


def read_pylock(path: Path, direct: frozenset[str] = frozenset()) -> LockGraph:
    data = load_toml(path)
    try:
        lock = Pylock.from_dict(data)
    except PylockUnsupportedVersionError as exc:
        raise InputError(f"{path}: {exc}") from None
    except PylockValidationError as exc:
        raise InputError(f"{path}: {exc}") from None
    packages = []
    for pkg in lock.packages:
        files: list[PinnedFile] = []
        for w in pkg.wheels or ():
            name = w.name or (filename_of(w.url) if w.url else "")
            files.append(_file(name, w.url, w.hashes, w.size))
        if pkg.sdist is not None:
            s = pkg.sdist
            name = s.name or (filename_of(s.url) if s.url else "")
            files.append(_file(name, s.url, s.hashes, s.size))
        reference = None
        if pkg.vcs is not None:
            reference = f"vcs: {pkg.vcs.url or pkg.vcs.path}"
        elif pkg.directory is not None:
            reference = f"directory: {pkg.directory.path}"
        elif pkg.archive is not None:
            reference = f"archive: {pkg.archive.url or pkg.archive.path}"
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
    return LockGraph(
        kind="pylock.toml",
        path=str(path),
        packages=tuple(packages),
        roots=None,
        direct=direct,
        index_urls=tuple(dict.fromkeys(p.index for p in packages if p.index)),
    )


def _file(name: str, url: str | None, hashes: object, size: object) -> PinnedFile:
    pairs = tuple((str(k).lower(), str(v).lower()) for k, v in dict(hashes or {}).items())  # type: ignore[call-overload]
    return PinnedFile(
        filename=name, url=url, hashes=pairs, size=size if isinstance(size, int) else None
    )
