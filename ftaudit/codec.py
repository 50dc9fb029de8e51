"""Model records to and from plain JSON values (for the cache and the reports)."""

from __future__ import annotations

import json
from typing import Any

from ftaudit.errors import CacheError
from ftaudit.model import ArtifactFacts, BinaryFormat, Evidence, Extension, Gil, Init, Library


class DecodeError(CacheError):
    """A stored record that is not one this ftaudit wrote (a damaged cache row)."""


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
        "read": f.read,
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
        read=d.get("read", "whole"),
    )


def facts_to_json(f: ArtifactFacts) -> str:
    return json.dumps(facts_to_dict(f))


def decode_facts(text: str) -> ArtifactFacts:
    """Facts from the cache's JSON text, every field checked; DecodeError otherwise (the
    caller drops the row and reads the artifact again)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"not JSON ({exc})") from None
    try:
        return _facts(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DecodeError(f"{type(exc).__name__}: {exc}") from None


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected an array, got {type(value).__name__}")
    return value


def _strs(value: object) -> tuple[str, ...]:
    return tuple(_str(v) for v in _list(value))


def _obj(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _extension(value: object) -> Extension:
    d = _obj(value)
    ft = d["free_threaded_build"]
    if ft is not None and not isinstance(ft, bool):
        raise TypeError("free_threaded_build: expected a boolean or null")
    return Extension(
        path=_str(d["path"]),
        module=_str(d["module"]),
        gil=Gil(_str(d["gil"])),
        init=Init(_str(d["init"])),
        format=BinaryFormat(_str(d["format"])),
        free_threaded_build=ft,
        detail=_str(d["detail"]),
        evidence=Evidence(_str(d["evidence"])),
        handed_to=_strs(d.get("handed_to", [])),
    )


def _facts(value: object) -> ArtifactFacts:
    d = _obj(value)
    libraries = []
    for item in _list(d["libraries"]):
        lib = _obj(item)
        libraries.append(Library(path=_str(lib["path"]), why=_str(lib["why"])))
    unreadable = []
    for item in _list(d["unreadable"]):
        entry = _obj(item)
        unreadable.append((_str(entry["path"]), _str(entry["why"])))
    return ArtifactFacts(
        artifact=_str(d["artifact"]),
        tags=_strs(d["tags"]),
        extensions=tuple(_extension(e) for e in _list(d["extensions"])),
        libraries=tuple(libraries),
        unreadable=tuple(unreadable),
        classifiers=_strs(d["classifiers"]),
        import_names=_strs(d.get("import_names", [])),
        read=_str(d.get("read", "whole")),
    )
