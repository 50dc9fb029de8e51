"""Finding an environment's interpreter, its site directories and its distributions."""

from __future__ import annotations

import json
import subprocess
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


def _debian_python() -> str:
    """Debian's own /usr/bin/python3, able to make a venv (python3-venv)."""
    python = "/usr/bin/python3"
    probe = (
        "import ensurepip, venv, sysconfig, pathlib, sys; sys.exit('dist-packages' not in "
        "pathlib.Path(sysconfig.get_paths()['stdlib'], 'site.py').read_text())"
    )
    try:
        ok = subprocess.run([python, "-I", "-c", probe], capture_output=True, timeout=60)
    except OSError:
        ok = None
    if ok is None or ok.returncode != 0:
        toolchain.missing(f"{python}: Debian's Python with venv (apt-get install python3-venv)")
    return python


def test_venv_of_debians_python(tmp_path: Path) -> None:
    """Debian's site.py looks in dist-packages; its venvs still install into
    lib/python3.X/site-packages. Both are found, by --python and --env alike."""
    from ftaudit.cli import main

    python = _debian_python()
    subprocess.run(
        [python, "-m", "venv", str(tmp_path / "X")],
        check=True,
        capture_output=True,
        env=toolchain.clean_pip_env(),
    )
    wheel = build_wheel(
        tmp_path / "w", "debpkg", "1.0", "py3-none-any", {"debpkg/__init__.py": b""}
    )
    toolchain.pip_install(tmp_path / "X" / "bin" / "python", wheel)
    for args in (
        ["--python", str(tmp_path / "X" / "bin" / "python")],
        ["--env", str(tmp_path / "X")],
    ):
        out = tmp_path / "report.json"
        code = main(["scan", *args, "--offline", "--format", "json", "-o", str(out), "--quiet"])
        names = {p["name"] for p in json.loads(out.read_text())["packages"]}
        assert {"debpkg", "pip"} <= names, (args, names)
        assert code == 0
    system = query_interpreter(python)
    assert system.kind == "system" and system.prefix == "/usr"
    local = f"/usr/local/lib/python{system.version[0]}.{system.version[1]}/dist-packages"
    for d in ("/usr/lib/python3/dist-packages", local):
        assert (d in system.site_dirs) == Path(d).is_dir(), (d, system.site_dirs)


def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def _base_prefix(where: Path, *, debian: bool) -> Path:
    """An installed CPython 3.11's files: a standard library (os.py, site.py), no binary."""
    stdlib = where / "lib" / "python3.11"
    stdlib.mkdir(parents=True)
    (stdlib / "os.py").write_text("")
    (stdlib / "site.py").write_text("# dist-packages\n" if debian else "# site-packages\n")
    (where / "bin").mkdir()
    return where


@pytest.mark.parametrize("debian", [True, False])
def test_base_site_directories_follow_its_site_py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, debian: bool
) -> None:
    _no_processes(monkeypatch)
    monkeypatch.setenv("PYTHONNOUSERSITE", "1")
    base = _base_prefix(tmp_path / "usr", debian=debian)
    for d in (
        "local/lib/python3.11/dist-packages",
        "lib/python3/dist-packages",
        "lib/python3.11/site-packages",
    ):
        (base / d).mkdir(parents=True)
    venv = tmp_path / "venv"
    (venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(
        f"home = {base / 'bin'}\nInclude-System-Site-Packages = TRUE\nversion = 3.11.2\n"
    )
    env = environment_from_dir(venv)
    assert (env.kind, env.version, env.free_threaded) == ("venv", (3, 11, 2), False)
    own = str(venv / "lib" / "python3.11" / "site-packages")
    if debian:
        expected = [
            own,
            *(
                str(base / d)
                for d in (
                    "lib/python3.11/site-packages",
                    "local/lib/python3.11/dist-packages",
                    "lib/python3/dist-packages",
                )
            ),
        ]
    else:
        expected = [own, str(base / "lib" / "python3.11" / "site-packages")]
    assert list(env.site_dirs) == expected
    system = environment_from_dir(base)
    assert system.kind == "system"
    if debian:
        assert list(system.site_dirs) == [
            str(base / "local/lib/python3.11/dist-packages"),
            str(base / "lib/python3/dist-packages"),
        ]
    else:
        assert list(system.site_dirs) == [str(base / "lib/python3.11/site-packages")]


def test_venv_cfg_keys_as_virtualenv_and_uv_write_them(tmp_path: Path) -> None:
    from ftaudit.sources.layout import read_pyvenv_cfg

    cfg = tmp_path / "pyvenv.cfg"
    cfg.write_text("home=/opt/py/bin\nversion_info = 3.14.1.final.0\nuv = 0.5\n")
    read = read_pyvenv_cfg(cfg)
    assert (read.home, read.version, read.system_site) == ("/opt/py/bin", (3, 14, 1), False)


def test_free_threaded_venv_from_its_lib_dir_and_a_base_that_is_a_fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_processes(monkeypatch)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\ntouch ran\n")
    (fake / "python3").chmod(0o755)
    venv = tmp_path / "venv"
    _fake_dist(venv / "lib" / "python3.13t" / "site-packages", "delta", "1.0")
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(fake / "python3")
    (venv / "pyvenv.cfg").write_text(
        f"home = {fake}\ninclude-system-site-packages = true\nversion = 3.13.4\n"
    )
    for env in (environment_from_dir(venv), query_interpreter(str(venv / "bin" / "python"))):
        assert (env.version, env.free_threaded) == ((3, 13, 4), True)
        assert env.site_dirs[0] == str(venv / "lib" / "python3.13t" / "site-packages")
        assert dict(env.marker_env)["python_full_version"] == "3.13.4"
        assert [d.name for d in installed_distributions(env)] == ["delta"]


def test_windows_venv_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_processes(monkeypatch)
    venv = tmp_path / "venv"
    _fake_dist(venv / "Lib" / "site-packages", "eps", "1.0")
    (venv / "Scripts").mkdir()
    (venv / "Scripts" / "python3.13t.exe").write_bytes(b"MZ")
    (venv / "pyvenv.cfg").write_text("home = C:\\Python313\nversion = 3.13.2\n")
    env = environment_from_dir(venv)
    assert (env.version, env.free_threaded, env.kind) == ((3, 13, 2), True, "venv")
    assert env.site_dirs == (str(venv / "Lib" / "site-packages"),)


def test_conda_record_gives_the_full_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_processes(monkeypatch)
    env_dir = tmp_path / "conda"
    _fake_dist(env_dir / "lib" / "python3.13" / "site-packages", "zeta", "1.0")
    (env_dir / "conda-meta").mkdir()
    record = {"name": "python", "version": "3.13.7", "build": "h1234_100_cp313"}
    (env_dir / "conda-meta" / "python-3.13.7-h1234_100_cp313.json").write_text(json.dumps(record))
    env = environment_from_dir(env_dir)
    assert (env.kind, env.version, env.free_threaded) == ("conda", (3, 13, 7), False)
