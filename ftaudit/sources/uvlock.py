"""uv.lock (version 1, any revision): a universal lock, read as a graph from the project.

uv writes no per-package "needed when" marker: a package is installed when it can be
reached from the project through dependency edges whose markers hold. Where uv forked the
resolution (two versions of one package for different Pythons), each edge names the
version it means.
"""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name

from ftaudit.model import Edge, LockedPackage, LockGraph, PinnedFile
from ftaudit.sources.lockfile import (
    Entry,
    checked_marker,
    checked_url,
    checked_version,
    parse_hash,
    pinned,
)
from ftaudit.sources.pyproject import load_toml

SUPPORTED_VERSION = 1


def read_uv_lock(path: Path) -> LockGraph:
    root = Entry(path, "uv.lock", load_toml(path))
    version = root.data.get("version")
    if version != SUPPORTED_VERSION:
        raise root.error(
            f"lock version {version!r} is not supported (this ftaudit reads version "
            f"{SUPPORTED_VERSION}); regenerate it with a current uv or upgrade ftaudit"
        )
    packages = [_package(e) for e in root.entries("package")]
    if not packages:
        raise root.error("no [[package]] entries")
    members = {
        canonicalize_name(m) for m in root.child("manifest").array("members") if isinstance(m, str)
    }
    projects = [p for p in packages if p.is_project or p.name in members]
    roots: list[Edge] = []
    for project in projects:
        roots.extend(project.dependencies)
        for _extra, edges in project.optional:
            roots.extend(edges)
    project_names = {p.name for p in projects}
    roots = [r for r in roots if r.name not in project_names]
    registries = tuple(dict.fromkeys(p.index for p in packages if p.index))
    return LockGraph(
        kind="uv.lock",
        path=str(path),
        packages=tuple(p for p in packages if p.name not in project_names),
        roots=tuple(roots),
        direct=frozenset(r.name for r in roots),
        index_urls=registries,
    )


def _edges(entries: list[Entry]) -> tuple[Edge, ...]:
    out = []
    for e in entries:
        extras = e.array("extra")
        if not all(isinstance(x, str) for x in extras):
            raise e.error("'extra' should be an array of strings")
        out.append(
            Edge(
                name=canonicalize_name(e.text("name")),
                marker=checked_marker(e.opt_text("marker"), e),
                extras=tuple(canonicalize_name(x) for x in extras),
                version=checked_version(e.opt_text("version"), e),
            )
        )
    return tuple(out)


def _package(e: Entry) -> LockedPackage:
    name = e.text("name")
    source = e.mapping("source")
    registry = source.get("registry")
    if isinstance(registry, str):
        checked_url(registry, e, "source.registry")
    is_project = any(k in source for k in ("virtual", "editable")) or (
        source.get("directory") == "."
    )
    reference = None
    if not registry and not is_project:
        kind = next(
            (k for k in ("git", "url", "path", "directory", "editable") if k in source), None
        )
        reference = f"{kind}: {source.get(kind)}" if kind else None
    files: list[PinnedFile] = []
    for w in e.entries("wheels"):
        files.append(_file(w))
    sdist = e.data.get("sdist")
    if sdist is not None:
        files.append(_file(Entry(e.path, f"{e.where}.sdist", sdist)))
    optional = tuple(
        (canonicalize_name(extra), _edges(e.entries_in(f"optional-dependencies.{extra}", v)))
        for extra, v in e.mapping("optional-dependencies").items()
    )
    groups = tuple(
        (f"group:{group}", _edges(e.entries_in(f"dev-dependencies.{group}", v)))
        for group, v in e.mapping("dev-dependencies").items()
    )
    specs = _metadata_specifiers(e)
    return LockedPackage(
        name=canonicalize_name(name),
        display_name=name,
        version=checked_version(e.opt_text("version"), e),
        files=tuple(files),
        dependencies=_specified(_edges(e.entries("dependencies")), specs),
        optional=tuple(
            (extra, _specified(edges, specs))
            for extra, edges in optional + (groups if is_project else ())
        ),
        index=registry if isinstance(registry, str) else None,
        direct_reference=reference,
        is_project=is_project,
        requires_python=None,
    )


def _metadata_specifiers(e: Entry) -> dict[str, str]:
    """What a local package (the project, a workspace member) asks of each dependency:
    uv records it under ``[package.metadata]`` only, not on the edges."""
    out: dict[str, list[str]] = {}
    metadata = e.child("metadata") if "metadata" in e.data else None
    if metadata is None:
        return {}
    entries = metadata.entries("requires-dist")
    for group in metadata.mapping("requires-dev").values():
        entries += metadata.entries_in("requires-dev", group)
    for item in entries:
        spec = item.opt_text("specifier")
        if spec:
            out.setdefault(canonicalize_name(item.text("name")), []).append(spec)
    # Two entries for one name are for different markers (a fork): neither is the edge's.
    return {name: specs[0] for name, specs in out.items() if len(set(specs)) == 1}


def _specified(edges: tuple[Edge, ...], specs: dict[str, str]) -> tuple[Edge, ...]:
    return tuple(
        Edge(
            name=edge.name,
            marker=edge.marker,
            extras=edge.extras,
            specifier=edge.specifier or specs.get(edge.name, ""),
            version=edge.version,
        )
        for edge in edges
    )


def _file(w: Entry) -> PinnedFile:
    url = w.opt_text("url")
    hashes = (parse_hash(h, w),) if (h := w.opt_text("hash")) else ()
    filename = w.opt_text("filename") or (Path(p).name if (p := w.opt_text("path")) else None)
    return pinned(w, url=url, filename=filename, hashes=hashes, size=w.data.get("size"))
