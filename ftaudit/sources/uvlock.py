"""uv.lock (version 1, any revision): a universal lock, read as a graph from the project.

uv writes no per-package "needed when" marker: a package is installed when it can be
reached from the project through dependency edges whose markers hold. Where uv forked the
resolution (two versions of one package for different Pythons, or for extras declared as
conflicting), each edge names the version it means, and its marker tests which extras and
groups are chosen (``extra == 'extra-3-app-cpu'``: uv's name for app's extra cpu).

What is read is what `uv sync` installs by default: the root project (every member when
the workspace root is not a project), its default groups (`dev` unless
``[tool.uv] default-groups`` says otherwise) and no extras; members nothing requires are
not installed. The rest is listed as left out, with the packages only it would add.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from pathlib import Path

from packaging.utils import canonicalize_name

from ftaudit.errors import InputError
from ftaudit.model import Edge, LeftOut, LockedPackage, LockGraph, PinnedFile, Selection
from ftaudit.sources.lockfile import (
    Entry,
    checked_marker,
    checked_url,
    checked_version,
    parse_hash,
    pinned,
)
from ftaudit.sources.pyproject import load_toml, tool_table

SUPPORTED_VERSION = 1


def read_uv_lock(path: Path, selection: Selection | None = None) -> LockGraph:
    selection = selection or Selection()
    root = Entry(path, "uv.lock", load_toml(path))
    version = root.data.get("version")
    if version != SUPPORTED_VERSION:
        raise root.error(
            f"lock version {version!r} is not supported (this ftaudit reads version "
            f"{SUPPORTED_VERSION}); regenerate it with a current uv or upgrade ftaudit"
        )
    entries = root.entries("package")
    packages = [_package(e) for e in entries]
    if not packages:
        raise root.error("no [[package]] entries")
    members = {
        canonicalize_name(m) for m in root.child("manifest").array("members") if isinstance(m, str)
    }
    projects = {p.name: p for p in packages if p.is_project or p.name in members}
    at_root = [
        p for p, e in zip(packages, entries, strict=True) if p.name in projects and _at_root(e)
    ]
    defaults = {
        p.name: _default_groups(e, p, path.parent)
        for p, e in zip(packages, entries, strict=True)
        if p in at_root
    }
    tops = at_root
    if not at_root:
        # A workspace whose root is no project: `uv sync` there installs every member,
        # and the root's own dependency groups (the lock's manifest keeps them).
        manifest = root.child("manifest")
        groups = manifest.mapping("dependency-groups")
        virtual = LockedPackage(
            name="",
            display_name="the workspace root",
            version=None,
            optional=tuple(
                (
                    f"group:{canonicalize_name(g)}",
                    _edges(manifest.entries_in(f"dependency-groups.{g}", v)),
                )
                for g, v in groups.items()
            ),
            is_project=True,
        )
        tops = [*projects.values(), virtual]
        defaults = {p.name: set() for p in tops}
        defaults[""] = _default_groups(manifest, virtual, path.parent)
    chosen = _choose(path, tops, defaults, selection)
    # An extra of a member asked for by another package's edge (`lib[x]`) is not among
    # these names: uv declares conflicts between the root's own extras and groups.
    active = frozenset(_conflict_name(owner, kind, name) for owner, kind, name in chosen)
    _check_conflicts(root, chosen)

    roots: list[Edge] = []
    left_out: list[tuple[LeftOut, tuple[Edge, ...]]] = []
    for project in tops:
        roots.extend(project.dependencies)
        for key, edges in project.optional:
            kind, name = _part(key)
            if (project.name, kind, name) in chosen:
                roots.extend(edges)
            else:
                option = "--extra" if kind == "extra" else "--group"
                item = LeftOut(
                    kind=kind, name=name, owner=project.display_name, include=f"{option} {name}"
                )
                left_out.append((item, edges))
    reached = _names_reached(roots, packages)
    for name in sorted(set(projects) - reached - {p.name for p in tops}):
        member = projects[name]
        left_out.append(
            (
                # `uv sync` here does not install it; only its own directory's scan would.
                LeftOut(kind="member", name=member.display_name),
                member.dependencies,
            )
        )
    described = [
        LeftOut(
            kind=item.kind,
            name=item.name,
            owner=item.owner,
            include=item.include,
            packages=tuple(sorted(_names_reached(edges, packages) - reached - set(projects))),
        )
        for item, edges in left_out
    ]
    registries = tuple(dict.fromkeys(p.index for p in packages if p.index))
    return LockGraph(
        kind="uv.lock",
        path=str(path),
        packages=tuple(packages),
        roots=tuple(roots),
        direct=frozenset(r.name for r in roots if r.name not in projects),
        index_urls=registries,
        extras=active,
        selected=_describe(chosen, tops),
        left_out=tuple(described),
        requires_python=root.opt_text("requires-python"),
    )


def _at_root(e: Entry) -> bool:
    source = e.mapping("source")
    return any(source.get(k) == "." for k in ("virtual", "editable", "directory"))


def _part(key: str) -> tuple[str, str]:
    """("group", name) or ("extra", name) from a project's optional key."""
    if key.startswith("group:"):
        return "group", key[len("group:") :]
    return "extra", key


def _default_groups(e: Entry, project: LockedPackage, directory: Path) -> set[str]:
    """The groups `uv sync` installs for a project: the lock's record of its
    ``default-groups`` (uv writes it since lock revision 3), else pyproject.toml's, else
    `dev`."""
    groups = {_part(k)[1] for k, _edges in project.optional if _part(k)[0] == "group"}
    declared: object = e.data.get("default-groups")
    if declared is None:
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            declared = (tool_table(load_toml(pyproject), pyproject, "uv") or {}).get(
                "default-groups"
            )
    if declared == "all":
        return groups
    if isinstance(declared, list):
        return {str(canonicalize_name(g)) for g in declared if isinstance(g, str)} & groups
    return {"dev"} & groups


Chosen = set[tuple[str, str, str]]  # (project, "extra" | "group", name)


def _choose(
    path: Path,
    tops: list[LockedPackage],
    defaults: dict[str, set[str]],
    selection: Selection,
) -> Chosen:
    chosen: Chosen = set()
    offered: dict[str, set[str]] = {"extra": set(), "group": set()}
    for project in tops:
        for key, _edges in project.optional:
            kind, name = _part(key)
            offered[kind].add(name)
            wanted = (
                selection.wants_extra(name)
                if kind == "extra"
                else name in defaults[project.name] or selection.wants_group(name)
            )
            if wanted:
                chosen.add((project.name, kind, name))
    for kind, asked in (("extra", selection.extras), ("group", selection.groups)):
        missing = sorted(set(asked) - offered[kind])
        if missing:
            have = ", ".join(sorted(offered[kind])) or "none"
            raise InputError(
                f"{path}: no {kind} {', '.join(map(repr, missing))} in the project "
                f"(its {kind}s: {have})"
            )
    return chosen


def _conflict_name(owner: str, kind: str, name: str) -> str:
    """uv's marker name of a project's extra or group, as its conflict markers test it."""
    return f"{kind}-{len(owner)}-{owner}-{name}"


def _check_conflicts(root: Entry, chosen: Chosen) -> None:
    """A selection uv would refuse (two parts declared as conflicting) is an error: no
    installable environment holds both."""
    for i, group in enumerate(root.array("conflicts")):
        items = root.entries_in(f"conflicts[{i}]", group)
        both = []
        for item in items:
            owner = canonicalize_name(item.opt_text("package") or "")
            for kind in ("extra", "group"):
                name = item.opt_text(kind)
                if name and (owner, kind, canonicalize_name(name)) in chosen:
                    both.append(f"{kind} {name!r} of {owner}")
        if len(both) > 1:
            raise root.error(
                f"{' and '.join(both)} are declared as conflicting ([tool.uv] conflicts): "
                "uv installs at most one of them; choose one"
            )


def _names_reached(edges: Iterable[Edge], packages: list[LockedPackage]) -> set[str]:
    """Names reachable through edges whatever their markers (any platform, any Python)."""
    by_name: dict[str, list[LockedPackage]] = {}
    for pkg in packages:
        by_name.setdefault(pkg.name, []).append(pkg)
    seen: set[tuple[str, tuple[str, ...]]] = set()
    names: set[str] = set()
    queue = deque(edges)
    while queue:
        edge = queue.popleft()
        key = (edge.name, edge.extras)
        if key in seen:
            continue
        seen.add(key)
        names.add(edge.name)
        for pkg in by_name.get(edge.name, []):
            queue.extend(pkg.dependencies)
            if not pkg.is_project:
                for extra, optional in pkg.optional:
                    if extra in edge.extras:
                        queue.extend(optional)
    return names


def _describe(chosen: Chosen, tops: list[LockedPackage]) -> tuple[str, ...]:
    out = []
    for project in tops:
        parts = [f"project {project.display_name}" if project.name else project.display_name]
        for kind in ("group", "extra"):
            names = sorted(n for owner, k, n in chosen if owner == project.name and k == kind)
            if names:
                parts.append(f"{kind}s {', '.join(names)}")
        out.append(" with ".join(parts))
    return tuple(out)


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
        (f"group:{canonicalize_name(group)}", _edges(e.entries_in(f"dev-dependencies.{group}", v)))
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
        fork_markers=tuple(
            checked_marker(m, e) or "" for m in e.array("resolution-markers") if isinstance(m, str)
        ),
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
