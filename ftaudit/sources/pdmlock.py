"""pdm.lock, lock_version 4.x, with the "inherit_metadata" strategy that writes each
package's marker (PDM's default since 2.11), with or without static URLs.

What is read is what `pdm install` installs by default: every group the lock was made
for (its metadata's `groups`; `pdm lock` locks the default group and the dev groups). A
group pyproject.toml declares that the lock does not hold is listed as left out.
"""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name

from ftaudit.errors import InputError
from ftaudit.model import LeftOut, LockedPackage, LockGraph, Requested, Selection
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


def read_pdm_lock(
    path: Path, requested: tuple[Requested, ...] = (), selection: Selection | None = None
) -> LockGraph:
    selection = selection or Selection()
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
    locked = [str(canonicalize_name(g)) for g in meta.array("groups") if isinstance(g, str)]
    declared = _declared_groups(path.parent / "pyproject.toml")
    missing = sorted((set(selection.groups) | set(selection.extras)) - set(locked))
    if missing:
        raise InputError(
            f"{path}: the lock holds no group {', '.join(map(repr, missing))} (it locks "
            f"{', '.join(locked) or 'none'}); lock it with `pdm lock -G NAME` first"
        )
    packages = merge_variants([_package(e) for e in root.entries("package")])
    targets = meta.entries("targets")
    python = next((t.opt_text("requires_python") for t in targets), None)
    return LockGraph(
        kind="pdm.lock",
        path=str(path),
        packages=tuple(packages),
        roots=None,
        direct=frozenset(r.name for r in requested),
        index_urls=_sources(path.parent / "pyproject.toml"),
        selected=tuple(f"group {g}" for g in locked),
        left_out=tuple(
            LeftOut(kind="group", name=g, include=f"not locked: `pdm lock -G {g}`")
            for g in declared
            if g not in locked
        ),
        requires_python=python or meta.opt_text("requires_python"),
    )


def _declared_groups(pyproject: Path) -> list[str]:
    """Every group pyproject.toml declares: extras, PEP 735 groups, PDM's dev groups."""
    if not pyproject.is_file():
        return []
    data = load_toml(pyproject)
    project = data.get("project")
    tables = [
        project.get("optional-dependencies") if isinstance(project, dict) else None,
        data.get("dependency-groups"),
        (tool_table(data, pyproject, "pdm") or {}).get("dev-dependencies"),
    ]
    names = [str(canonicalize_name(g)) for t in tables if isinstance(t, dict) for g in t]
    return sorted(set(names))


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
