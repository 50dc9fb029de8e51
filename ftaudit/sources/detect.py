"""What to scan: the source a user names, or the best one found in a project directory.

In a directory the order is: a lockfile (what the project will install), an installed
`.venv`/`venv` (what it has now), requirements files, then pyproject.toml. Two lockfiles
are an error unless one is chosen: guessing could audit the wrong dependency set.

The project a source belongs to (whose code is searched for import sites) is the source's
own directory: the lockfile's, the requirements file's, or, for an environment, the
directory holding it when that is a project; never merely the working directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftaudit.errors import InputError
from ftaudit.model import Environment, LockGraph, RequirementSet, Selection
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
    root: Path | None = None  # the project directory (import sites); None: no project


_PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")


def is_lockfile(path: Path) -> bool:
    name = path.name
    return name in LOCKFILES or (name.startswith("pylock.") and name.endswith(".toml"))


def read_lockfile(
    path: Path, project: ProjectInfo | None, selection: Selection | None = None
) -> LockGraph:
    """A lockfile read for what its tool installs by default, plus `selection`."""
    selection = selection or Selection()
    if not path.is_file():
        raise InputError(f"{path}: no such lockfile")
    requested = project.requested if project else ()
    direct = project.direct if project else frozenset()
    name = path.name
    if name == "uv.lock":
        return read_uv_lock(path, selection)
    if name == "poetry.lock":
        return read_poetry_lock(path, requested, selection)
    if name == "pdm.lock":
        return read_pdm_lock(path, requested, selection)
    if name == "Pipfile.lock":
        return read_pipfile_lock(path, selection)
    if name.startswith("pylock.") and name.endswith(".toml"):
        return read_pylock(path, direct, selection)
    raise InputError(
        f"{path}: not a lockfile ftaudit reads (expected one of {', '.join(LOCKFILES)}, "
        "or pylock.<name>.toml)"
    )


def environment_project(prefix: str | Path) -> Path | None:
    """The project an environment belongs to: the directory holding it, when that
    directory is a project (a `.venv` inside it); None for a system or shared one."""
    parent = Path(prefix).parent
    if any((parent / name).is_file() for name in _PROJECT_FILES):
        return parent
    return None


def detect(
    path: Path,
    *,
    python: str | None = None,
    env_dir: Path | None = None,
    lockfile: Path | None = None,
    requirements: tuple[Path, ...] = (),
    selection: Selection | None = None,
    explicit: bool = True,
) -> Detected:
    """What to scan. `explicit`: PATH was named on the command line (not the default
    "."), so it is the project even for an environment given by --python or --env."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    project_dir = path if path.is_dir() else path.parent
    environment = None
    if python:
        environment, label = query_interpreter(python), python
    elif env_dir is not None:
        environment, label = environment_from_dir(env_dir), str(env_dir)
    if environment is not None:
        root = project_dir if explicit else environment_project(environment.prefix)
        project = read_project(root) if root is not None else None
        return Detected("environment", label, project, environment=environment, root=root)
    project = read_project(project_dir)
    if lockfile is not None:
        lock = read_lockfile(lockfile, project, selection)
        return Detected("lock", str(lockfile), project, lock=lock, root=lockfile.parent)
    if requirements:
        reqs = read_requirements(list(requirements))
        label = ", ".join(reqs.files)
        return Detected(
            "requirements", label, project, requirements=reqs, root=requirements[0].parent
        )
    if path.is_file():
        return _from_file(path, project, selection)
    if (path / "pyvenv.cfg").is_file() or (path / "conda-meta").is_dir():
        env = environment_from_dir(path)
        return Detected("environment", str(path), project, env, root=environment_project(path))
    locks = sorted(p for p in path.iterdir() if p.is_file() and is_lockfile(p))
    if len(locks) > 1:
        raise InputError(
            f"{path}: several lockfiles ({', '.join(p.name for p in locks)}): choose one "
            "with --lockfile FILE"
        )
    if locks:
        lock = read_lockfile(locks[0], project, selection)
        return Detected("lock", str(locks[0]), project, lock=lock, root=path)
    found = default_python_environment(path)
    if found is not None:
        return Detected("environment", str(Path(found.prefix)), project, found, root=path)
    req_files = sorted(path.glob("requirements*.txt"))
    if req_files:
        reqs = read_requirements(req_files)
        return Detected(
            "requirements", ", ".join(reqs.files), project, requirements=reqs, root=path
        )
    if project is not None and project.requested:
        return Detected("pyproject", str(project.path), project, root=path)
    raise InputError(
        f"{path}: nothing to scan here (no lockfile, .venv, requirements*.txt or "
        "pyproject.toml dependencies): pass --python PY, --env DIR, --lockfile FILE or -r FILE"
    )


def _from_file(path: Path, project: ProjectInfo | None, selection: Selection | None) -> Detected:
    root = path.parent
    if is_lockfile(path):
        lock = read_lockfile(path, project, selection)
        return Detected("lock", str(path), project, lock=lock, root=root)
    if path.name == "pyproject.toml":
        if project is None or not project.requested:
            raise InputError(f"{path}: declares no dependencies")
        return Detected("pyproject", str(path), project, root=root)
    if path.suffix in (".txt", ".in"):
        reqs = read_requirements([path])
        label = ", ".join(reqs.files)
        return Detected("requirements", label, project, requirements=reqs, root=root)
    raise InputError(
        f"{path}: not a lockfile, requirements file or pyproject.toml (give a project "
        "directory, or say what it is with --lockfile or -r)"
    )
