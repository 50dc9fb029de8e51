"""poetry.lock, lock-version 2.0 and 2.1.

2.1 records for each package its groups and the marker under which each group needs it
(a group with no marker needs it always), so a package is in when a chosen group needs it
here. 2.0 does not: its packages are reached from the project's own requirements
(pyproject.toml) through the lock's dependency edges.

What is read is what `poetry install` installs by default: `main` and every group
pyproject.toml does not mark ``optional = true``, and no extras; the rest is listed as
left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ftaudit.errors import InputError
from ftaudit.model import Edge, LeftOut, LockedPackage, LockGraph, Requested, Selection
from ftaudit.sources.lockfile import (
    Entry,
    checked_marker,
    checked_url,
    checked_version,
    parse_hash,
    pinned,
    requirement_edge,
)
from ftaudit.sources.pyproject import load_toml, poetry_specifier, tool_table

SUPPORTED = ("2.0", "2.1")


def read_poetry_lock(
    path: Path, requested: tuple[Requested, ...] = (), selection: Selection | None = None
) -> LockGraph:
    selection = selection or Selection()
    root = Entry(path, "poetry.lock", load_toml(path))
    version = root.child("metadata").opt_text("lock-version")
    if version not in SUPPORTED:
        raise root.error(
            f"lock-version {version!r} is not supported (this ftaudit reads "
            f"{' and '.join(SUPPORTED)}); regenerate it with Poetry 1.5 or later"
        )
    with_markers = version != "2.0"
    optional_groups = _optional_groups(path.parent / "pyproject.toml")
    entries = root.entries("package")
    lock_groups = {g for e in entries for g in _groups(e)} | {"main"}
    extras = {canonicalize_name(x): v for x, v in root.mapping("extras").items()}
    for kind, asked, offered in (
        ("group", selection.groups, lock_groups | optional_groups),
        ("extra", selection.extras, set(extras)),
    ):
        missing = sorted(set(asked) - offered)
        if missing:
            raise InputError(
                f"{path}: no {kind} {', '.join(map(repr, missing))} in the lock (its "
                f"{kind}s: {', '.join(sorted(offered)) or 'none'})"
            )
    groups = {g for g in lock_groups if g not in optional_groups or selection.wants_group(g)} | {
        "main"
    }
    chosen_extras = frozenset(x for x in extras if selection.wants_extra(x))
    packages = []
    only_in: dict[str, list[str]] = {}  # left-out group -> packages only it needs
    for e in entries:
        pkg_groups = _groups(e)
        if with_markers and pkg_groups and not pkg_groups & groups:
            for g in pkg_groups:
                only_in.setdefault(g, []).append(e.text("name"))
            continue
        packages.append(_package(e, with_markers, groups))
    roots = None
    if not with_markers:
        roots = tuple(
            requirement_edge(r.requirement, root)
            for r in requested
            if not r.constraint and _wanted(r.origin, groups, chosen_extras, optional_groups)
        )
    sources = tuple(dict.fromkeys(p.index for p in packages if p.index))
    left_out = [
        LeftOut(
            kind="group",
            name=g,
            packages=tuple(sorted(canonicalize_name(n) for n in only_in.get(g, ()))),
            include=f"--group {g}",
        )
        for g in sorted((lock_groups | optional_groups) - groups)
    ]
    left_out += [
        LeftOut(
            kind="extra",
            name=x,
            packages=tuple(sorted(canonicalize_name(_name_of(r)) for r in extras[x])),
            include=f"--extra {x}",
        )
        for x in sorted(set(extras) - chosen_extras)
    ]
    selected = [f"group {g}" for g in sorted(groups)] + [
        f"extra {x}" for x in sorted(chosen_extras)
    ]
    metadata = root.child("metadata")
    return LockGraph(
        kind="poetry.lock",
        path=str(path),
        packages=tuple(packages),
        roots=roots,
        direct=frozenset(r.name for r in requested),
        index_urls=sources,
        extras=chosen_extras,
        selected=tuple(selected),
        left_out=tuple(left_out),
        requires_python=_python(metadata.opt_text("python-versions")),
    )


def _groups(e: Entry) -> set[str]:
    return {str(canonicalize_name(g)) for g in e.array("groups") if isinstance(g, str)}


def _name_of(requirement: object) -> str:
    """The name in one of [extras]' "name (constraint)" strings."""
    return str(requirement).split("(")[0].split("[")[0].strip()


def _optional_groups(pyproject: Path) -> set[str]:
    """Groups pyproject.toml marks ``optional = true``: `poetry install` skips them."""
    if not pyproject.is_file():
        return set()
    poetry = tool_table(load_toml(pyproject), pyproject, "poetry") or {}
    declared = poetry.get("group")
    if not isinstance(declared, dict):
        return set()
    return {
        canonicalize_name(g)
        for g, body in declared.items()
        if isinstance(body, dict) and body.get("optional") is True
    }


def _wanted(
    origin: str, groups: set[str], extras: frozenset[str], optional_groups: set[str]
) -> bool:
    """Whether a requirement of pyproject.toml is part of the chosen install (2.0 locks,
    which record no groups)."""
    where = origin.split(": ", 1)[-1]
    if where.startswith("project.optional-dependencies."):
        return canonicalize_name(where.rsplit(".", 1)[1]) in extras
    if where.startswith("tool.poetry.group."):
        group = canonicalize_name(where.split(".")[3])
        return group in groups or group not in optional_groups
    return True


def _package(e: Entry, with_markers: bool, groups: set[str]) -> LockedPackage:
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
            # Per group: installed when a chosen group's marker holds; a chosen group
            # with no marker of its own needs it always.
            per_group = {str(canonicalize_name(g)): m for g, m in raw.items()}
            mine = sorted(_groups(e) & groups) or sorted(per_group)
            parts = [checked_marker(per_group.get(g), e) for g in mine]
            if all(parts):
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
