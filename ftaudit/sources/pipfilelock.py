"""Pipfile.lock (pipfile-spec 6): pinned versions, accepted hashes and markers per package,
in categories ("default", "develop" and any custom one); no dependency edges, so
who-requires-whom is not known.

What is read is what `pipenv install` installs by default: the "default" category. The
others ("develop": `pipenv install --dev`; a custom one: `--categories NAME`) are listed
as left out, with the packages only they hold.
"""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name

from ftaudit.errors import InputError
from ftaudit.model import LeftOut, LockedPackage, LockGraph, PinnedFile, Selection
from ftaudit.sources.lockfile import Entry, checked_marker, checked_url, load_json, parse_hash

SUPPORTED_SPEC = 6


DEFAULT = "default"
# Pipfile's table for each category of the lock: its sections besides these are categories.
_PIPFILE_SECTION = {"default": "packages", "develop": "dev-packages"}


def read_pipfile_lock(path: Path, selection: Selection | None = None) -> LockGraph:
    selection = selection or Selection()
    root = Entry(path, "Pipfile.lock", load_json(path))
    meta = root.child("_meta")
    spec = meta.data.get("pipfile-spec")
    if spec != SUPPORTED_SPEC:
        raise root.error(f"pipfile-spec {spec!r} is not supported (this ftaudit reads 6)")
    sources = {
        s.text("name"): checked_url(s.text("url"), s) or ""
        for s in meta.entries("sources")
        if s.opt_text("name")
    }
    categories = [k for k in root.data if k != "_meta"]
    for name in categories:
        root.mapping(name)  # each category is a table
    missing = sorted(set(selection.groups) - {canonicalize_name(c) for c in categories})
    if missing:
        raise InputError(
            f"{path}: no category {', '.join(map(repr, missing))} in the lock (its "
            f"categories: {', '.join(categories)})"
        )
    chosen = [c for c in categories if c == DEFAULT or selection.wants_group(canonicalize_name(c))]
    packages: dict[str, LockedPackage] = {}
    for section in chosen:
        for name, body in root.mapping(section).items():
            e = Entry(path, f"{section}.{name}", body)
            pkg = _package(name, e, sources)
            packages.setdefault(pkg.name, pkg)
    left_out = tuple(
        LeftOut(
            kind="category",
            name=c,
            packages=tuple(sorted({canonicalize_name(n) for n in root.mapping(c)} - set(packages))),
            include=f"--group {c}",
        )
        for c in categories
        if c not in chosen
    )
    direct = _pipfile_names(path.parent / "Pipfile", chosen)
    return LockGraph(
        kind="Pipfile.lock",
        path=str(path),
        packages=tuple(packages.values()),
        roots=None,
        direct=direct,
        index_urls=tuple(dict.fromkeys(sources.values())),
        selected=tuple(f"category {c}" for c in chosen),
        left_out=left_out,
    )


def _package(name: str, e: Entry, sources: dict[str, str]) -> LockedPackage:
    raw = e.opt_text("version") or ""
    version = raw[2:] if raw.startswith("==") else None
    hashes = tuple(parse_hash(h, e) for h in e.array("hashes") if isinstance(h, str))
    reference = None
    for kind in ("git", "file", "path"):
        if e.opt_text(kind):
            reference = f"{kind}: {e.opt_text(kind)}"
    # Pipfile.lock names no files, only the hashes any accepted file must have.
    files = (PinnedFile(filename="", url=None, hashes=hashes),) if hashes else ()
    index = sources.get(e.opt_text("index") or "") or (next(iter(sources.values()), None))
    return LockedPackage(
        name=canonicalize_name(name),
        display_name=name,
        version=version,
        marker=checked_marker(e.opt_text("markers"), e),
        files=files,
        index=index,
        direct_reference=reference,
    )


def _pipfile_names(pipfile: Path, categories: list[str]) -> frozenset[str]:
    from ftaudit.sources.pyproject import load_toml

    if not pipfile.is_file():
        return frozenset()
    data = load_toml(pipfile)
    names: set[str] = set()
    for category in categories:
        body = data.get(_PIPFILE_SECTION.get(category, category))
        if isinstance(body, dict):
            names.update(canonicalize_name(n) for n in body)
    return frozenset(names)
