"""Rebuild the lock fixtures: one project, locked by uv, Poetry, PDM, Pipenv and uv's PEP 751
export, against the fixture index on 127.0.0.1:47391.

    python tests/data/locks/regenerate.py --tools /path/to/venv/bin --wheels
    python tests/data/locks/regenerate.py --tools /path/to/venv/bin

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
    args = parser.parse_args()
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
            "UV_CACHE_DIR": str(home / "uv-cache"),
            "POETRY_VIRTUALENVS_CREATE": "false",
            "PIPENV_VENV_IN_PROJECT": "0",
            "PIPENV_IGNORE_VIRTUALENVS": "1",
            "PDM_CHECK_UPDATE": "false",
            "PDM_USE_VENV": "false",
            "LANG": "C.UTF-8",
        }

        def project(name: str, text: str, filename: str = "pyproject.toml") -> Path:
            directory = HERE / name
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            (directory / filename).write_text(text)
            return directory

        uv_lock = [str(tools / "uv"), "lock", "--default-index", INDEX]
        d = project("uv", pyproject())
        run(uv_lock, d, env)
        d = project("pylock", pyproject())
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
        run([str(tools / "poetry"), "lock"], d, env)

        d = project(
            "pdm",
            pyproject(
                "\n[[tool.pdm.source]]\n"
                'name = "pypi"\n'
                f'url = "{INDEX}"\n'
                "\n[tool.pdm]\ndistribution = false\n"
            ),
        )
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
        d = project("pipenv", pipfile, "Pipfile")
        run([str(tools / "pipenv"), "lock"], d, env)

        d = project("requirements", "".join(f"{x}\n" for x in DEPENDENCIES), "requirements.in")
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
