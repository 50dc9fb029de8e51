"""What to scan in a project directory, and saying which source was chosen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftaudit.errors import InputError
from ftaudit.model import Environment
from ftaudit.sources.environment import (
    default_python_environment,
    environment_from_dir,
    query_interpreter,
)
from ftaudit.sources.pyproject import ProjectInfo, read_project


@dataclass(frozen=True, slots=True)
class Detected:
    environment: Environment
    project: ProjectInfo | None
    label: str  # what the user sees as the source


def detect(path: Path, *, python: str | None = None, env_dir: Path | None = None) -> Detected:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    project_dir = path if path.is_dir() else path.parent
    project = read_project(project_dir)
    if python:
        env = query_interpreter(python)
        return Detected(env, project, python)
    if env_dir is not None:
        return Detected(environment_from_dir(env_dir), project, str(env_dir))
    if not path.is_dir():
        raise InputError(
            f"{path}: reading lockfiles and requirements files is not supported by this "
            "version; scan an environment with --python or --env"
        )
    if (path / "pyvenv.cfg").is_file() or (path / "conda-meta").is_dir():
        return Detected(environment_from_dir(path), project, str(path))
    found = default_python_environment(path)
    if found is not None:
        return Detected(found, project, str(Path(found.prefix)))
    raise InputError(f"{path}: no .venv or venv here to scan: pass --python PY or --env DIR")
