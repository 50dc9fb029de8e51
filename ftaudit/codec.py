"""Model records to and from plain JSON values (for the cache and the reports)."""

from __future__ import annotations

from typing import Any

from ftaudit.model import ArtifactFacts, BinaryFormat, Evidence, Extension, Gil, Init, Library


def extension_to_dict(e: Extension) -> dict[str, Any]:
    return {
        "path": e.path,
        "module": e.module,
        "gil": e.gil.value,
        "init": e.init.value,
        "format": e.format.value,
        "free_threaded_build": e.free_threaded_build,
        "detail": e.detail,
        "evidence": e.evidence.value,
        "handed_to": list(e.handed_to),
    }


def extension_from_dict(d: dict[str, Any]) -> Extension:
    return Extension(
        path=d["path"],
        module=d["module"],
        gil=Gil(d["gil"]),
        init=Init(d["init"]),
        format=BinaryFormat(d["format"]),
        free_threaded_build=d["free_threaded_build"],
        detail=d["detail"],
        evidence=Evidence(d["evidence"]),
        handed_to=tuple(d.get("handed_to", ())),
    )


def library_to_dict(lib: Library) -> dict[str, Any]:
    return {"path": lib.path, "why": lib.why}


def facts_to_dict(f: ArtifactFacts) -> dict[str, Any]:
    return {
        "artifact": f.artifact,
        "tags": list(f.tags),
        "extensions": [extension_to_dict(e) for e in f.extensions],
        "libraries": [library_to_dict(lib) for lib in f.libraries],
        "unreadable": [{"path": p, "why": w} for p, w in f.unreadable],
        "classifiers": list(f.classifiers),
        "import_names": list(f.import_names),
    }


def facts_from_dict(d: dict[str, Any]) -> ArtifactFacts:
    return ArtifactFacts(
        artifact=d["artifact"],
        tags=tuple(d["tags"]),
        extensions=tuple(extension_from_dict(e) for e in d["extensions"]),
        libraries=tuple(Library(path=x["path"], why=x["why"]) for x in d["libraries"]),
        unreadable=tuple((x["path"], x["why"]) for x in d["unreadable"]),
        classifiers=tuple(d["classifiers"]),
        import_names=tuple(d.get("import_names", ())),
    )
