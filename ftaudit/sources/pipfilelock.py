"""Pipfile.lock (pipfile-spec 6): pinned versions, accepted hashes and markers per package,
in "default" and "develop"; no dependency edges, so who-requires-whom is not known."""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name

from ftaudit.model import LockedPackage, LockGraph, PinnedFile
from ftaudit.sources.lockfile import Entry, checked_marker, checked_url, load_json, parse_hash

SUPPORTED_SPEC = 6


def read_pipfile_lock(path: Path) -> LockGraph:
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
    packages: dict[str, LockedPackage] = {}
    for section in ("default", "develop"):
        for name, body in root.mapping(section).items():
            e = Entry(path, f"{section}.{name}", body)
            pkg = _package(name, e, sources)
            packages.setdefault(pkg.name, pkg)
    direct = _pipfile_names(path.parent / "Pipfile")
    return LockGraph(
        kind="Pipfile.lock",
        path=str(path),
        packages=tuple(packages.values()),
        roots=None,
        direct=direct,
        index_urls=tuple(dict.fromkeys(sources.values())),
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


def _pipfile_names(pipfile: Path) -> frozenset[str]:
    from ftaudit.sources.pyproject import load_toml

    if not pipfile.is_file():
        return frozenset()
    data = load_toml(pipfile)
    names: set[str] = set()
    for section in ("packages", "dev-packages"):
        body = data.get(section)
        if isinstance(body, dict):
            names.update(canonicalize_name(n) for n in body)
    return frozenset(names)
