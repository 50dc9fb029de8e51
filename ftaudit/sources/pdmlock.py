"""pdm.lock, lock_version 4.x, with the "inherit_metadata" strategy that writes each
package's marker (PDM's default since 2.11), with or without static URLs."""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name

from ftaudit.model import LockedPackage, LockGraph, Requested
from ftaudit.sources.lockfile import (
    Entry,
    checked_marker,
    checked_version,
    merge_variants,
    parse_hash,
    pinned,
    requirement_edge,
)
from ftaudit.sources.pyproject import load_toml, tool_table


def read_pdm_lock(path: Path, requested: tuple[Requested, ...] = ()) -> LockGraph:
    root = Entry(path, "pdm.lock", load_toml(path))
    meta = root.child("metadata")
    version = meta.opt_text("lock_version") or ""
    if not version.startswith("4."):
        raise root.error(
            f"lock_version {version!r} is not supported (this ftaudit reads 4.x); "
            "regenerate it with PDM 2.8 or later"
        )
    strategy = meta.array("strategy")
    if "inherit_metadata" not in strategy:
        raise root.error(
            "written without the inherit_metadata strategy, so it does not say which "
            "package each platform needs; run `pdm lock --strategy inherit_metadata`"
        )
    packages = merge_variants([_package(e) for e in root.entries("package")])
    return LockGraph(
        kind="pdm.lock",
        path=str(path),
        packages=tuple(packages),
        roots=None,
        direct=frozenset(r.name for r in requested),
        index_urls=_sources(path.parent / "pyproject.toml"),
    )


def _sources(pyproject: Path) -> tuple[str, ...]:
    """PDM keeps its index list in pyproject.toml, not in the lock."""
    if not pyproject.is_file():
        return ()
    pdm = tool_table(load_toml(pyproject), pyproject, "pdm") or {}
    sources = pdm.get("source")
    return tuple(
        s["url"] for s in (sources or []) if isinstance(s, dict) and isinstance(s.get("url"), str)
    )


def _package(e: Entry) -> LockedPackage:
    name = e.text("name")
    files = []
    for f in e.entries("files"):
        hashes = (parse_hash(h, f),) if (h := f.opt_text("hash")) else ()
        files.append(pinned(f, url=f.opt_text("url"), filename=f.opt_text("file"), hashes=hashes))
    dependencies = tuple(
        requirement_edge(d, e) for d in e.array("dependencies") if isinstance(d, str)
    )
    reference = None
    for kind in ("git", "url", "path"):
        if e.opt_text(kind):
            reference = f"{kind}: {e.opt_text(kind)}"
    return LockedPackage(
        name=canonicalize_name(name),
        display_name=name,
        version=checked_version(e.opt_text("version"), e),
        marker=checked_marker(e.opt_text("marker"), e),
        requires_python=e.opt_text("requires_python"),
        files=tuple(files),
        dependencies=tuple(d for d in dependencies if d.name != canonicalize_name(name)),
        direct_reference=reference,
    )
