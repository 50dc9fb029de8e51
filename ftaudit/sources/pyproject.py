"""What a project's pyproject.toml says about itself: its direct dependencies and Python."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ftaudit.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    path: Path
    name: str | None
    requires_python: str | None
    direct: frozenset[str]  # canonical names of every declared dependency
    tool: dict[str, Any]  # [tool.ftaudit]


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML ({exc})") from None
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None


def read_project(project_dir: Path) -> ProjectInfo | None:
    path = project_dir / "pyproject.toml"
    if not path.is_file():
        return None
    data = load_toml(path)
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    assert isinstance(project, dict)
    names: set[str] = set()
    lines: list[object] = list(project.get("dependencies") or [])
    for group in (project.get("optional-dependencies") or {}).values():
        lines.extend(group if isinstance(group, list) else [])
    for group in (data.get("dependency-groups") or {}).values():
        lines.extend(g for g in (group if isinstance(group, list) else []) if isinstance(g, str))
    for line in lines:
        if not isinstance(line, str):
            continue
        try:
            names.add(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            raise InputError(f"{path}: invalid requirement {line!r}") from None
    tool = data.get("tool", {}).get("ftaudit", {}) if isinstance(data.get("tool"), dict) else {}
    requires_python = project.get("requires-python")
    return ProjectInfo(
        path=path,
        name=project.get("name") if isinstance(project.get("name"), str) else None,
        requires_python=requires_python if isinstance(requires_python, str) else None,
        direct=frozenset(names),
        tool=tool if isinstance(tool, dict) else {},
    )
