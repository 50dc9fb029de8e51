"""poetry.lock, lock-version 2.0 and 2.1.

2.1 records for each package the marker under which it is installed (per group), so a
package is in when that holds. 2.0 does not: its packages are reached from the project's
own requirements (pyproject.toml) through the lock's dependency edges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ftaudit.model import Edge, LockedPackage, LockGraph, Requested
from ftaudit.sources.lockfile import (
    Entry,
    checked_marker,
    checked_url,
    checked_version,
    parse_hash,
    pinned,
    requirement_edge,
)
from ftaudit.sources.pyproject import load_toml, poetry_specifier

SUPPORTED = ("2.0", "2.1")


def read_poetry_lock(path: Path, requested: tuple[Requested, ...] = ()) -> LockGraph:
    root = Entry(path, "poetry.lock", load_toml(path))
    version = root.child("metadata").opt_text("lock-version")
    if version not in SUPPORTED:
        raise root.error(
            f"lock-version {version!r} is not supported (this ftaudit reads "
            f"{' and '.join(SUPPORTED)}); regenerate it with Poetry 1.5 or later"
        )
    with_markers = version != "2.0"
    packages = [_package(e, with_markers) for e in root.entries("package")]
    roots = None
    if not with_markers:
        roots = tuple(requirement_edge(r.requirement, root) for r in requested if not r.constraint)
    sources = tuple(dict.fromkeys(p.index for p in packages if p.index))
    return LockGraph(
        kind="poetry.lock",
        path=str(path),
        packages=tuple(packages),
        roots=roots,
        direct=frozenset(r.name for r in requested),
        index_urls=sources,
    )


def _package(e: Entry, with_markers: bool) -> LockedPackage:
    name = e.text("name")
    source = e.mapping("source")
    index = source.get("url") if source.get("type") == "legacy" else None
    if isinstance(index, str):
        checked_url(index, e, "source.url")
    reference = None
    if source and source.get("type") not in ("legacy", None):
        reference = f"{source.get('type')}: {source.get('url')}"
    files = tuple(
        pinned(f, url=None, filename=f.text("file"), hashes=(parse_hash(f.text("hash"), f),))
        for f in e.entries("files")
    )
    marker = None
    if with_markers:
        raw = e.data.get("markers")
        if isinstance(raw, dict):
            # Per group: installed when any group's marker holds.
            parts = [checked_marker(m, e) for m in raw.values() if isinstance(m, str)]
            marker = " or ".join(f"({p})" for p in parts if p) or None
        elif isinstance(raw, str):
            marker = checked_marker(raw, e)
    return LockedPackage(
        name=canonicalize_name(name),
        display_name=name,
        version=checked_version(e.text("version"), e),
        marker=marker,
        requires_python=_python(e.opt_text("python-versions")),
        files=files,
        dependencies=_dependencies(e),
        index=index if isinstance(index, str) else None,
        direct_reference=reference,
    )


def _python(text: str | None) -> str | None:
    if not text or text.strip() == "*":
        return None
    return poetry_specifier(text) or None


def _dependencies(e: Entry) -> tuple[Edge, ...]:
    out: list[Edge] = []
    for dep_name, spec in e.mapping("dependencies").items():
        specs: list[Any] = spec if isinstance(spec, list) else [spec]
        for item in specs:
            where = Entry(
                e.path,
                f"{e.where}.dependencies.{dep_name}",
                item if isinstance(item, dict) else {"version": item},
            )
            out.append(
                Edge(
                    name=canonicalize_name(dep_name),
                    marker=checked_marker(where.opt_text("markers"), where),
                    extras=tuple(
                        canonicalize_name(x) for x in where.array("extras") if isinstance(x, str)
                    ),
                    specifier=poetry_specifier(str(where.data.get("version") or "*")),
                )
            )
    return tuple(out)
