"""What a project's pyproject.toml asks for: PEP 621 dependencies and extras, PEP 735
dependency groups, Poetry's tool tables, and its Python range.

Everything the project declares is audited (extras and groups too): a pre-migration
assessment must not miss the test runner's compiled plugin because it sits in a group.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from ftaudit.errors import InputError, first_line
from ftaudit.model import Requested
from ftaudit.sources.markers import valid_marker
from ftaudit.sources.textfile import read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

MAX_TOML_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    path: Path
    name: str | None
    requires_python: str | None
    direct: frozenset[str]  # canonical names of every declared dependency
    requested: tuple[Requested, ...]
    tool: dict[str, Any]  # [tool.ftaudit]


def load_toml(path: Path) -> dict[str, Any]:
    text = read_text(path, limit=MAX_TOML_BYTES, what="a project or lock file")
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML ({exc})") from None
    return data


def _table(value: object, path: Path, where: str) -> dict[str, Any]:
    """A TOML table that may be absent ({}), named in the error when it is not a table."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{path}: in '{where}': expected a table, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return {str: "a string", list: "an array", dict: "a table", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def tool_table(data: dict[str, Any], path: Path, name: str) -> dict[str, Any] | None:
    """``[tool.<name>]`` of a parsed pyproject.toml (None when absent); a `tool` or a
    `tool.<name>` that is not a table is an error naming the file and the key."""
    tool = _table(data.get("tool"), path, "tool")
    if name not in tool:
        return None
    return _table(tool[name], path, f"tool.{name}")


def read_project(project_dir: Path) -> ProjectInfo | None:
    path = project_dir / "pyproject.toml"
    if not path.is_file():
        return None
    data = load_toml(path)
    project = _table(data.get("project"), path, "project")
    requested: list[Requested] = []

    def add(line: object, origin: str) -> None:
        if not isinstance(line, str):
            raise InputError(f"{path}: {origin}: expected a requirement string, got {line!r}")
        requested.append(_requested(line, f"{path.name}: {origin}", path))

    deps = project.get("dependencies") or []
    if not isinstance(deps, list):
        raise InputError(f"{path}: project.dependencies must be an array")
    for line in deps:
        add(line, "project.dependencies")
    optional = _table(project.get("optional-dependencies"), path, "project.optional-dependencies")
    for extra, lines in optional.items():
        if not isinstance(lines, list):
            raise InputError(
                f"{path}: in 'project.optional-dependencies.{extra}': expected an array, "
                f"got {_kind(lines)}"
            )
        for line in lines:
            add(line, f"project.optional-dependencies.{extra}")
    groups = _table(data.get("dependency-groups"), path, "dependency-groups")
    for group in groups:
        for line in _group_lines(groups, group, path, ()):
            add(line, f"dependency-groups.{group}")
    requested.extend(_poetry_requested(data, path))
    # A group included by another is listed once per including group: keep the first.
    unique = list({(r.name, r.requirement): r for r in reversed(requested)}.values())[::-1]
    tool = tool_table(data, path, "ftaudit") or {}
    requires_python = project.get("requires-python")
    if requires_python is not None and not isinstance(requires_python, str):
        raise InputError(
            f"{path}: in 'project.requires-python': expected a string, got {_kind(requires_python)}"
        )
    if requires_python is None:
        poetry = tool_table(data, path, "poetry") or {}
        poetry_python = _table(poetry.get("dependencies"), path, "tool.poetry.dependencies")
        python = poetry_python.get("python")
        requires_python = poetry_specifier(python) if isinstance(python, str) else None
    return ProjectInfo(
        path=path,
        name=project.get("name") if isinstance(project.get("name"), str) else None,
        requires_python=requires_python or None,
        direct=frozenset(r.name for r in unique),
        requested=tuple(unique),
        tool=tool,
    )


def _requested(line: str, origin: str, path: Path) -> Requested:
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        raise InputError(
            f"{path}: invalid requirement {line!r} in {origin}: {first_line(exc)}"
        ) from None
    return Requested(requirement=str(req), name=canonicalize_name(req.name), origin=origin)


def _group_lines(
    groups: dict[str, Any], group: str, path: Path, stack: tuple[str, ...]
) -> list[str]:
    """A PEP 735 group's requirement strings, with {include-group = ...} expanded."""
    wanted = canonicalize_name(group)
    names = {canonicalize_name(g): g for g in groups}
    if wanted not in names:
        raise InputError(f"{path}: dependency group {group!r} is included but not defined")
    if wanted in stack:
        raise InputError(f"{path}: dependency groups include each other: {' -> '.join(stack)}")
    entries = groups[names[wanted]]
    if not isinstance(entries, list):
        raise InputError(f"{path}: dependency-groups.{group} must be an array")
    out: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            out.extend(_group_lines(groups, entry["include-group"], path, (*stack, wanted)))
        else:
            raise InputError(f"{path}: dependency-groups.{group}: unexpected entry {entry!r}")
    return out


# --- Poetry's [tool.poetry.*dependencies] tables ------------------------------------------


def _poetry_requested(data: dict[str, Any], path: Path) -> list[Requested]:
    poetry = tool_table(data, path, "poetry") or {}
    tables: list[tuple[str, dict[str, Any]]] = [
        (key, _table(poetry.get(key.rsplit(".", 1)[1]), path, key))
        for key in ("tool.poetry.dependencies", "tool.poetry.dev-dependencies")
    ]
    for group, body in _table(poetry.get("group"), path, "tool.poetry.group").items():
        where = f"tool.poetry.group.{group}"
        deps = _table(body, path, where).get("dependencies")
        tables.append((f"{where}.dependencies", _table(deps, path, f"{where}.dependencies")))
    out = []
    for origin, table in tables:
        for name, spec in table.items():
            if canonicalize_name(name) == "python":
                continue
            for line in _poetry_lines(name, spec, f"{path}: {origin}.{name}"):
                out.append(_requested(line, f"{path.name}: {origin}", path))
    return out


def _poetry_lines(name: str, spec: object, where: str) -> list[str]:
    """PEP 508 lines for one Poetry dependency (a list of tables: one per marker case)."""
    if isinstance(spec, list):
        return [line for item in spec for line in _poetry_lines(name, item, where)]
    if isinstance(spec, str):
        return [f"{name}{poetry_specifier(spec, where)}"]
    if not isinstance(spec, dict):
        raise InputError(f"{where}: unexpected value {spec!r}")
    extras = spec.get("extras") or []
    if not isinstance(extras, list) or not all(isinstance(e, str) for e in extras):
        raise InputError(f"{where}.extras: expected an array of strings")
    for key in ("version", "url", "git", "rev"):
        if key in spec and not isinstance(spec[key], str):
            raise InputError(f"{where}.{key}: expected a string, got {_kind(spec[key])}")
    head = name + (f"[{','.join(extras)}]" if extras else "")
    if "version" in spec:
        head += poetry_specifier(spec["version"], where)
    elif "url" in spec:
        head += f" @ {spec['url']}"
    elif "git" in spec:
        head += f" @ git+{spec['git']}" + (f"@{spec['rev']}" if spec.get("rev") else "")
    markers = []
    if isinstance(spec.get("markers"), str):
        markers.append(f"({spec['markers']})")
    if isinstance(spec.get("python"), str):
        python = poetry_specifier(spec["python"], where)
        markers.extend(
            f'python_full_version {s.operator} "{s.version}"' for s in SpecifierSet(python)
        )
    if isinstance(spec.get("platform"), str):
        markers.append(f'sys_platform == "{spec["platform"]}"')
    marker = " and ".join(markers)
    if marker and (reason := valid_marker(marker)):
        raise InputError(f"{where}: invalid markers: {reason}")
    return [head + (f" ; {marker}" if marker else "")]


_CARET = re.compile(r"^\^\s*(\d+(?:\.\d+)*)")
_TILDE = re.compile(r"^~(?!=)\s*(\d+(?:\.\d+)*)")


def _bump(parts: list[int], index: int) -> str:
    upper = [*parts[:index], parts[index] + 1]
    return ".".join(map(str, upper))


def _poetry_one(text: str) -> str:
    text = text.strip()
    if text in ("*", ""):
        return ""
    if m := _CARET.match(text):
        parts = [int(p) for p in m[1].split(".")]
        first_nonzero = next((i for i, p in enumerate(parts) if p), len(parts) - 1)
        return f">={m[1]},<{_bump(parts, first_nonzero)}"
    if m := _TILDE.match(text):
        parts = [int(p) for p in m[1].split(".")]
        return f">={m[1]},<{_bump(parts, 1 if len(parts) > 1 else 0)}"
    if text[0].isdigit():
        return f"=={text}"
    return text.replace(" ", "")


def poetry_specifier(text: str, where: str = "") -> str:
    """A Poetry version constraint as a PEP 440 specifier set ("" for any version).

    Alternatives (``a || b``) cannot be written as one specifier set: they become "any
    version", which can only make ftaudit look at more releases, never fewer.
    """
    if "||" in text:
        return ""
    parts = [p for p in re.split(r"\s*,\s*|\s+(?=[<>=!~^])", text.strip()) if p]
    spec = ",".join(filter(None, (_poetry_one(p) for p in parts)))
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        raise InputError(
            f"{where or 'pyproject.toml'}: invalid version constraint {text!r}"
        ) from None
    return spec
