"""What to scan: the source a user names, or the best one found in a project directory.

In a directory the order is: a lockfile (what the project will install), an installed
`.venv`/`venv` (what it has now), requirements files, then pyproject.toml. Two lockfiles
are an error unless one is chosen: guessing could audit the wrong dependency set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftaudit.errors import InputError
from ftaudit.model import Environment, LockGraph, RequirementSet
from ftaudit.sources.environment import (
    default_python_environment,
    environment_from_dir,
    query_interpreter,
)
from ftaudit.sources.pdmlock import read_pdm_lock
from ftaudit.sources.pipfilelock import read_pipfile_lock
from ftaudit.sources.poetrylock import read_poetry_lock
from ftaudit.sources.pylock import read_pylock
from ftaudit.sources.pyproject import ProjectInfo, read_project
from ftaudit.sources.requirements import read_requirements
from ftaudit.sources.uvlock import read_uv_lock

LOCKFILES = ("uv.lock", "poetry.lock", "pylock.toml", "pdm.lock", "Pipfile.lock")


@dataclass(frozen=True, slots=True)
class Detected:
    kind: str  # environment, lock, requirements, pyproject
    label: str  # what the user sees as the source
    project: ProjectInfo | None
    environment: Environment | None = None
    lock: LockGraph | None = None
    requirements: RequirementSet | None = None


def is_lockfile(path: Path) -> bool:
    name = path.name
    return name in LOCKFILES or (name.startswith("pylock.") and name.endswith(".toml"))


def read_lockfile(path: Path, project: ProjectInfo | None) -> LockGraph:
    if not path.is_file():
        raise InputError(f"{path}: no such lockfile")
    requested = project.requested if project else ()
    direct = project.direct if project else frozenset()
    name = path.name
    if name == "uv.lock":
        return read_uv_lock(path)
    if name == "poetry.lock":
        return read_poetry_lock(path, requested)
    if name == "pdm.lock":
        return read_pdm_lock(path, requested)
    if name == "Pipfile.lock":
        return read_pipfile_lock(path)
    if name.startswith("pylock.") and name.endswith(".toml"):
        return read_pylock(path, direct)
    raise InputError(
        f"{path}: not a lockfile ftaudit reads (expected one of {', '.join(LOCKFILES)}, "
        "or pylock.<name>.toml)"
    )


def detect(
    path: Path,
    *,
    python: str | None = None,
    env_dir: Path | None = None,
    lockfile: Path | None = None,
    requirements: tuple[Path, ...] = (),
) -> Detected:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    project_dir = path if path.is_dir() else path.parent
    project = read_project(project_dir)
    if python:
        return Detected("environment", python, project, environment=query_interpreter(python))
    if env_dir is not None:
        return Detected("environment", str(env_dir), project, environment_from_dir(env_dir))
    if lockfile is not None:
        return Detected("lock", str(lockfile), project, lock=read_lockfile(lockfile, project))
    if requirements:
        reqs = read_requirements(list(requirements))
        return Detected("requirements", ", ".join(reqs.files), project, requirements=reqs)
    if path.is_file():
        return _from_file(path, project)
    if (path / "pyvenv.cfg").is_file() or (path / "conda-meta").is_dir():
        return Detected("environment", str(path), project, environment_from_dir(path))
    locks = sorted(p for p in path.iterdir() if p.is_file() and is_lockfile(p))
    if len(locks) > 1:
        raise InputError(
            f"{path}: several lockfiles ({', '.join(p.name for p in locks)}): choose one "
            "with --lockfile FILE"
        )
    if locks:
        return Detected("lock", str(locks[0]), project, lock=read_lockfile(locks[0], project))
    found = default_python_environment(path)
    if found is not None:
        return Detected("environment", str(Path(found.prefix)), project, environment=found)
    req_files = sorted(path.glob("requirements*.txt"))
    if req_files:
        reqs = read_requirements(req_files)
        return Detected("requirements", ", ".join(reqs.files), project, requirements=reqs)
    if project is not None and project.requested:
        return Detected("pyproject", str(project.path), project)
    raise InputError(
        f"{path}: nothing to scan here (no lockfile, .venv, requirements*.txt or "
        "pyproject.toml dependencies): pass --python PY, --env DIR, --lockfile FILE or -r FILE"
    )


def _from_file(path: Path, project: ProjectInfo | None) -> Detected:
    if is_lockfile(path):
        return Detected("lock", str(path), project, lock=read_lockfile(path, project))
    if path.name == "pyproject.toml":
        if project is None or not project.requested:
            raise InputError(f"{path}: declares no dependencies")
        return Detected("pyproject", str(path), project)
    if path.suffix in (".txt", ".in"):
        reqs = read_requirements([path])
        return Detected("requirements", ", ".join(reqs.files), project, requirements=reqs)
    raise InputError(
        f"{path}: not a lockfile, requirements file or pyproject.toml (give a project "
        "directory, or say what it is with --lockfile or -r)"
    )
