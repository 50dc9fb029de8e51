"""Rebuild the lock fixtures: one project, locked by uv, Poetry, PDM, Pipenv and uv's PEP 751
export, against the fixture index on 127.0.0.1:47391.

    python tests/data/locks/regenerate.py --tools /path/to/venv/bin --wheels
    python tests/data/locks/regenerate.py --tools /path/to/venv/bin
    python tests/data/locks/regenerate.py --tools /path/to/venv/bin --only uv-workspace

`--only` rebuilds the named fixture projects and leaves the others as they are. Besides the
one dependency set every tool locks, smaller projects each hold one construct of one tool
(groups, extras, declared conflicts, custom categories, a lock for another Python); next
to a lock whose tool is not a test dependency, the tool's own account of what it installs
by default (its export or dry run) is kept, made at the same time.

`--tools` is a directory holding uv, poetry, pdm and pipenv (e.g. a venv after
`pip install uv poetry pdm 'hishel[httpx2]<2' pipenv`). `--wheels` rebuilds the committed wheels in
`index/` first (from fixtures/ext/gilmod.c, with the free-threaded interpreter in
FT_PYTHON); without it the committed wheels are served as they are, so the hashes in the
existing locks stay valid. The tests serve `index/` on the same port, so every URL in the
locks resolves there and nowhere else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers.index_server import IndexServer  # noqa: E402
from tests.helpers.wheels import build_wheel  # noqa: E402

PORT = 47391
INDEX = f"http://127.0.0.1:{PORT}/simple/"
INDEX_DIR = HERE / "index"

# One dependency set, written in every tool's own terms. What each line tests:
DEPENDENCIES = [
    "ftlk-core",  # pure; pulls in ftlk-util (two releases: the lock takes the newest)
    "ftlk-fast>=1.0",  # compiled, declares Py_MOD_GIL_NOT_USED
    "ftlk-gil==1.0",  # compiled, declares Py_MOD_GIL_USED; 2.0 does not
    "ftlk-extras[speed]",  # the extra pulls in ftlk-speedup
    "ftlk-win ; sys_platform == 'win32'",  # only on Windows
    "ftlk-legacy ; python_version < '3.14'",  # not on 3.14 and later
]
REQUIRES_PYTHON = ">=3.10"

NOT_USED, USED = 1, 2  # variants of fixtures/ext/gilmod.c
PLATFORM_TAG = "manylinux_2_17_x86_64"


def build_index(ft_python: str) -> None:
    from tests.helpers import toolchain

    shutil.rmtree(INDEX_DIR, ignore_errors=True)
    INDEX_DIR.mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, version, variant in (
            ("ftlk-fast", "1.0", NOT_USED),
            ("ftlk-gil", "1.0", USED),
            ("ftlk-gil", "2.0", NOT_USED),
        ):
            pkg = name.replace("-", "_")
            so = toolchain.compile_module(ft_python, variant, "_core", work / f"{name}-{version}")
            data = so.read_bytes()
            # The same free-threaded build under each interpreter's file name (3.13t and
            # 3.14t share the PyModuleDef layout); abi3 is the GIL interpreters' wheel.
            for tag, suffix in (
                ("cp313-cp313t", ".cpython-313t-x86_64-linux-gnu.so"),
                ("cp314-cp314t", ".cpython-314t-x86_64-linux-gnu.so"),
                ("cp310-abi3", ".abi3.so"),
            ):
                files = {f"{pkg}/__init__.py": b"", f"{pkg}/_core{suffix}": data}
                build_wheel(INDEX_DIR, name, version, f"{tag}-{PLATFORM_TAG}", files)
    pure = {
        ("ftlk-core", "1.0"): ("ftlk-util>=1.0",),
        ("ftlk-util", "1.0"): (),
        ("ftlk-util", "1.1"): (),
        ("ftlk-speedup", "1.0"): (),
        ("ftlk-win", "1.0"): (),
        ("ftlk-legacy", "1.0"): (),
    }
    for (name, version), requires in pure.items():
        pkg = name.replace("-", "_")
        build_wheel(
            INDEX_DIR, name, version, "py3-none-any", {f"{pkg}/__init__.py": b""}, requires=requires
        )
    build_wheel(
        INDEX_DIR,
        "ftlk-extras",
        "1.0",
        "py3-none-any",
        {"ftlk_extras/__init__.py": b""},
        requires=('ftlk-speedup>=1.0 ; extra == "speed"',),
        provides_extra=("speed",),
    )


def pyproject(extra: str = "") -> str:
    deps = "".join(f"    {json.dumps(d)},\n" for d in DEPENDENCIES)
    return (
        "[project]\n"
        'name = "lockdemo"\n'
        'version = "0.1.0"\n'
        f'requires-python = "{REQUIRES_PYTHON}"\n'
        f"dependencies = [\n{deps}]\n" + extra
    )


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    print("+", " ".join(cmd), f"(in {cwd.name})", flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=Path, required=True)
    parser.add_argument("--wheels", action="store_true")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="fixture projects to rebuild")
    args = parser.parse_args()
    only = set(args.only or ())
    tools = args.tools.resolve()
    if args.wheels:
        ft_python = os.environ.get("FT_PYTHON")
        if not ft_python:
            parser.error("--wheels needs FT_PYTHON (a free-threaded 3.13 interpreter)")
        build_index(ft_python)

    with tempfile.TemporaryDirectory() as tmp, IndexServer(INDEX_DIR, port=PORT):
        home = Path(tmp)
        env = {
            "PATH": f"{tools}:{os.environ['PATH']}",
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / "cache"),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_INDEX_URL": INDEX,
            "UV_NO_CONFIG": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_CACHE_DIR": str(home / "uv-cache"),
            "POETRY_VIRTUALENVS_CREATE": "false",
            "PIPENV_VENV_IN_PROJECT": "0",
            "PIPENV_IGNORE_VIRTUALENVS": "1",
            "PDM_CHECK_UPDATE": "false",
            "PDM_USE_VENV": "false",
            "LANG": "C.UTF-8",
        }

        def project(name: str, text: str, filename: str = "pyproject.toml") -> Path | None:
            if only and name not in only:
                return None
            directory = HERE / name
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            (directory / filename).write_text(text)
            return directory

        construct_projects(tools, env, project)
        if only and not only & {"uv", "pylock", "poetry", "pdm", "pipenv", "requirements"}:
            return 0

        uv_lock = [str(tools / "uv"), "lock", "--default-index", INDEX]
        # The first set is rebuilt as a whole: its projects share one dependency set.
        only.clear()
        d = _made(project("uv", pyproject()))
        run(uv_lock, d, env)
        d = _made(project("pylock", pyproject()))
        run(uv_lock, d, env)
        run(
            [
                str(tools / "uv"),
                "export",
                "--frozen",
                "--format",
                "pylock.toml",
                "-o",
                "pylock.toml",
            ],
            d,
            env,
        )
        (d / "uv.lock").unlink()

        d = project(
            "poetry",
            pyproject(
                "\n[[tool.poetry.source]]\n"
                'name = "fixtures"\n'
                f'url = "{INDEX}"\n'
                'priority = "primary"\n'
                "\n[tool.poetry]\npackage-mode = false\n"
            ),
        )
        run([str(tools / "poetry"), "lock"], _made(d), env)

        d = project(
            "pdm",
            pyproject(
                "\n[[tool.pdm.source]]\n"
                'name = "pypi"\n'
                f'url = "{INDEX}"\n'
                "\n[tool.pdm]\ndistribution = false\n"
            ),
        )
        d = _made(d)
        run([str(tools / "pdm"), "lock", "--static-urls"], d, env)
        shutil.rmtree(d / ".venv", ignore_errors=True)
        (d / ".pdm-python").unlink(missing_ok=True)

        pipfile = (
            "[[source]]\n"
            f'url = "{INDEX}"\n'
            "verify_ssl = false\n"
            'name = "fixtures"\n\n'
            "[packages]\n"
            + "".join(_pipfile_line(d) for d in DEPENDENCIES)
            + '\n[requires]\npython_version = "3.11"\n'
        )
        d = _made(project("pipenv", pipfile, "Pipfile"))
        run([str(tools / "pipenv"), "lock"], d, env)

        d = _made(
            project("requirements", "".join(f"{x}\n" for x in DEPENDENCIES), "requirements.in")
        )
        run(
            [
                str(tools / "uv"),
                "pip",
                "compile",
                "--universal",
                "--generate-hashes",
                "--emit-index-url",
                "--python-version",
                "3.10",
                "--index-url",
                INDEX,
                "requirements.in",
                "-o",
                "requirements.txt",
            ],
            d,
            env,
        )
    return 0


def _made(directory: Path | None) -> Path:
    assert directory is not None
    return directory


ProjectMaker = Callable[[str, str, str], "Path | None"]

# A uv workspace: the root project `app`, a member it depends on (`lib`) and one it does
# not (`tool`); extras `cpu` and `gpu` declared as conflicting (each pins another ftlk-gil
# and cpu another ftlk-util, so the lock forks), and groups, two of them default.
UV_WORKSPACE = """\
[project]
name = "app"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["ftlk-fast", "lib"]

[project.optional-dependencies]
cpu = ["ftlk-gil==1.0", "ftlk-util==1.0"]
gpu = ["ftlk-gil==2.0"]

[dependency-groups]
dev = ["ftlk-speedup"]
lint = ["ftlk-legacy"]
docs = ["ftlk-extras"]

[tool.uv]
package = false
default-groups = ["dev", "lint"]
conflicts = [[{ extra = "cpu" }, { extra = "gpu" }]]

[tool.uv.sources]
lib = { workspace = true }

[tool.uv.workspace]
members = ["packages/*"]
"""

UV_MEMBER = """\
[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = [{deps}]

[build-system]
requires = ["uv_build>=0.8,<1"]
build-backend = "uv_build"
"""

# The same members under a workspace root that is no project, with groups of its own.
UV_VIRTUAL_ROOT = """\
[tool.uv.workspace]
members = ["packages/*"]

[dependency-groups]
dev = ["ftlk-speedup"]
lint = ["ftlk-legacy"]
"""

# Locked for one Python only: uv keeps no file of another Python's in the lock.
UV_PY312 = """\
[project]
name = "onlypy312"
version = "0.1.0"
requires-python = "==3.12.*"
dependencies = ["ftlk-fast", "ftlk-core"]

[tool.uv]
package = false
"""

# ftlk-util: in `main` only on Windows, in the non-optional `dev` group always (through
# ftlk-core), so Poetry writes a marker for `main` only; `docs` is optional and the extra
# `speed` is not asked for: neither is installed by default.
POETRY_GROUPS = """\
[project]
name = "poetrygroups"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["ftlk-util ; sys_platform == 'win32'"]

[project.optional-dependencies]
speed = ["ftlk-speedup"]

[tool.poetry]
package-mode = false

[tool.poetry.group.dev.dependencies]
ftlk-core = "*"

[tool.poetry.group.docs]
optional = true

[tool.poetry.group.docs.dependencies]
ftlk-extras = "*"

[[tool.poetry.source]]
name = "fixtures"
url = "{index}"
priority = "primary"
"""

# An optional-dependencies group (not locked by default) and two dev groups (locked).
PDM_GROUPS = """\
[project]
name = "pdmgroups"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["ftlk-core"]

[project.optional-dependencies]
speed = ["ftlk-speedup"]

[dependency-groups]
dev = ["ftlk-legacy"]
lint = ["ftlk-extras"]

[tool.pdm]
distribution = false

[[tool.pdm.source]]
name = "pypi"
url = "{index}"
"""

# A package-mode project: uv's PEP 751 export lists the project itself as a directory.
PYLOCK_PROJECT = """\
[project]
name = "pylockproject"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["ftlk-core"]

[project.optional-dependencies]
speed = ["ftlk-speedup"]

[dependency-groups]
dev = ["ftlk-legacy"]

[build-system]
requires = ["uv_build>=0.8,<1"]
build-backend = "uv_build"
"""

PIPFILE_CATEGORIES = """\
[[source]]
url = "{index}"
verify_ssl = false
name = "fixtures"

[packages]
ftlk-core = "*"

[dev-packages]
ftlk-legacy = "*"

[typing-dev]
ftlk-extras = "*"

[requires]
python_version = "3.11"
"""


def construct_projects(tools: Path, env: dict[str, str], project: ProjectMaker) -> None:
    """The projects that each hold one construct, locked by their own tool; what the tool
    itself installs by default is written beside the lock when the tests cannot ask it."""
    uv = str(tools / "uv")
    if d := project("uv-workspace", UV_WORKSPACE, "pyproject.toml"):
        _members(d)
        run([uv, "lock", "--default-index", INDEX], d, env)
    if d := project("uv-virtual-root", UV_VIRTUAL_ROOT, "pyproject.toml"):
        _members(d)
        run([uv, "lock", "--default-index", INDEX], d, env)
    if d := project("uv-py312", UV_PY312, "pyproject.toml"):
        # uv locks only with an interpreter the project admits: a 3.12 (PYTHON312).
        python312 = os.environ.get("PYTHON312") or shutil.which("python3.12")
        if not python312:
            raise SystemExit("uv-py312 needs a Python 3.12: set PYTHON312")
        run([uv, "lock", "--default-index", INDEX, "--python", python312], d, env)
    if d := project("pylock-project", PYLOCK_PROJECT, "pyproject.toml"):
        (d / "src" / "pylockproject").mkdir(parents=True)
        (d / "src" / "pylockproject" / "__init__.py").write_text("")
        run([uv, "lock", "--default-index", INDEX], d, env)
        run([uv, "export", "--frozen", "--format", "pylock.toml", "-o", "pylock.toml"], d, env)
        _record(
            [uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-header"],
            d,
            env,
            "uv-export.txt",
        )
        (d / "uv.lock").unlink()
    if d := project("poetry-groups", POETRY_GROUPS.format(index=INDEX), "pyproject.toml"):
        run([str(tools / "poetry"), "lock"], d, env)
        _record(
            [str(tools / "poetry"), "install", "--dry-run", "--no-root"],
            d,
            env,
            "poetry-install-dry-run.txt",
        )
    if d := project("pdm-groups", PDM_GROUPS.format(index=INDEX), "pyproject.toml"):
        # `pdm lock` locks the default and dev groups; `pdm install` installs what is locked.
        run([str(tools / "pdm"), "lock", "--static-urls"], d, env)
        _record([str(tools / "pdm"), "install", "--dry-run"], d, env, "pdm-install-dry-run.txt")
        shutil.rmtree(d / "__pypackages__", ignore_errors=True)
        shutil.rmtree(d / ".venv", ignore_errors=True)
        (d / ".pdm-python").unlink(missing_ok=True)
    if d := project("pipenv-categories", PIPFILE_CATEGORIES.format(index=INDEX), "Pipfile"):
        run(
            [str(tools / "pipenv"), "lock", "--categories", "packages dev-packages typing-dev"],
            d,
            env,
        )
        _record([str(tools / "pipenv"), "requirements"], d, env, "pipenv-requirements.txt")


def _members(workspace: Path) -> None:
    for name, deps in (("lib", '"ftlk-core"'), ("tool", '"ftlk-win"')):
        member = workspace / "packages" / name
        (member / "src" / name).mkdir(parents=True)
        (member / "src" / name / "__init__.py").write_text("")
        (member / "pyproject.toml").write_text(UV_MEMBER.format(name=name, deps=deps))


def _record(cmd: list[str], cwd: Path, env: dict[str, str], filename: str) -> None:
    """The tool's own output, kept beside its lock for the tests to compare against."""
    print("+", " ".join(cmd), f"> {filename} (in {cwd.name})", flush=True)
    done = subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    (cwd / filename).write_text(done.stdout)


def _pipfile_line(requirement: str) -> str:
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    fields = [f'version = "{req.specifier or "*"}"']
    if req.extras:
        fields.append(f"extras = {sorted(req.extras)!r}".replace("'", '"'))
    if req.marker:
        fields.append(f"markers = {str(req.marker)!r}")
    return f"{req.name} = {{{', '.join(fields)}}}\n"


if __name__ == "__main__":
    sys.exit(main())
