"""Finding an environment's interpreter, its site directories and its distributions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ftaudit.sources.environment import (
    environment_from_dir,
    installed_distributions,
    query_interpreter,
)
from ftaudit.sources.graph import dependencies_from_installed
from tests.helpers import toolchain
from tests.helpers.wheels import build_wheel


def _fake_dist(site: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "RECORD").write_text(f"{name}/__init__.py,,\n{info.name}/METADATA,,\n")
    (site / name).mkdir()
    (site / name / "__init__.py").write_text("")


def test_conda_environment_without_a_runnable_interpreter(tmp_path: Path) -> None:
    """An environment copied from elsewhere: its layout and conda-meta say what it is."""
    env = tmp_path / "ml"
    site = env / "lib" / "python3.13t" / "site-packages"
    _fake_dist(site, "alpha", "1.0")
    (env / "conda-meta").mkdir()
    (env / "conda-meta" / "python-3.13.5-h4_0_cp313t.json").write_text("{}")
    found = environment_from_dir(env)
    assert found.kind == "conda"
    assert found.free_threaded is True
    assert found.version[:2] == (3, 13)
    assert found.executable is None
    assert [d.name for d in installed_distributions(found)] == ["alpha"]


def test_conda_python_freethreading_package(tmp_path: Path) -> None:
    env = tmp_path / "env"
    _fake_dist(env / "lib" / "python3.13" / "site-packages", "beta", "2.0")
    (env / "conda-meta").mkdir()
    (env / "conda-meta" / "python-freethreading-3.13.5-0.json").write_text("{}")
    assert environment_from_dir(env).free_threaded is True


def test_directory_that_is_no_environment(tmp_path: Path) -> None:
    from ftaudit.errors import InputError

    with pytest.raises(InputError, match="no Python interpreter and no site-packages"):
        environment_from_dir(tmp_path)


def test_system_interpreter_is_described_without_importing_site(tmp_path: Path) -> None:
    env = query_interpreter(sys.executable)
    assert env.version[:2] == sys.version_info[:2]
    assert env.site_dirs and all(Path(d).is_dir() for d in env.site_dirs)
    assert dict(env.marker_env)["python_version"] == f"{sys.version_info[0]}.{sys.version_info[1]}"


def test_venv_with_system_site_packages(gil_python: str, tmp_path: Path) -> None:
    import subprocess

    plain = toolchain.make_venv(gil_python, tmp_path / "plain")
    shared = tmp_path / "shared"
    subprocess.run(
        [gil_python, "-m", "venv", "--without-pip", "--system-site-packages", str(shared)],
        check=True,
    )
    plain_env = query_interpreter(str(plain))
    shared_env = query_interpreter(str(shared / "bin" / "python"))
    assert plain_env.kind == shared_env.kind == "venv"
    assert len(plain_env.site_dirs) == 1
    assert len(shared_env.site_dirs) > 1  # its own, then the base interpreter's
    assert shared_env.site_dirs[0].startswith(str(shared))


def test_first_on_the_path_wins_and_edges_follow_markers(tmp_path: Path) -> None:
    from ftaudit.model import Environment

    first, second = tmp_path / "a", tmp_path / "b"
    _fake_dist(
        first,
        "app",
        "1.0",
        requires=("lib>=1", "winonly; sys_platform == 'win32'", "extra-thing; extra == 'full'"),
    )
    _fake_dist(first, "lib", "2.0")
    _fake_dist(second, "lib", "1.0")
    _fake_dist(second, "winonly", "1.0")
    _fake_dist(second, "extra-thing", "1.0")
    env = Environment(
        executable=None,
        prefix=str(tmp_path),
        version=(3, 13, 0),
        free_threaded=True,
        platform="linux-x86_64",
        site_dirs=(str(first), str(second)),
        kind="venv",
    )
    dists = installed_distributions(env)
    assert {d.name: d.version for d in dists}["lib"] == "2.0"
    deps = {d.name: d for d in dependencies_from_installed(dists, {"sys_platform": "linux"})}
    assert deps["lib"].required_by == ("app",)
    assert deps["winonly"].required_by == ()  # its marker is false here
    assert deps["extra-thing"].required_by == ()  # extras are not known to be requested
    assert deps["app"].direct is True and deps["lib"].direct is False


def test_wheel_installed_by_pip_lists_its_record(ft_python: str, tmp_path: Path) -> None:
    venv = toolchain.make_venv(ft_python, tmp_path / "venv")
    wheel = build_wheel(
        tmp_path / "w",
        "gamma",
        "3.0",
        "py3-none-any",
        {"gamma/__init__.py": b"", "gamma/data.json": json.dumps({}).encode()},
    )
    toolchain.pip_install(venv, wheel)
    (gamma,) = [
        d for d in installed_distributions(query_interpreter(str(venv))) if d.name == "gamma"
    ]
    assert "gamma/data.json" in gamma.files
    assert gamma.wheel_tags == ("py3-none-any",)
    assert gamma.installer == "pip"
