"""A static scan runs nothing it scans: hostile environments and checkouts leave no trace.

Each hostile part appends its name to a marker file when it runs: a ``.pth`` line, a
``sitecustomize.py`` and a ``usercustomize.py``, an installed package's ``__init__.py``,
a ``.venv/bin/python3`` that is a shell script, and a fake ``python3`` where ``pyvenv.cfg``
says the base interpreter is. Every scan must still list the distributions.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ftaudit.cli import main
from ftaudit.sources import layout
from tests.conftest import GIL_TAG
from tests.helpers import toolchain
from tests.helpers.index_server import IndexServer
from tests.helpers.wheels import build_wheel


def _record(marker: Path, what: str) -> str:
    return f"open({str(marker)!r}, 'a').write({what + chr(10)!r})"


def _hostile_wheel(out: Path, marker: Path, tag: str = "py3-none-any") -> Path:
    """ "hostile" 1.0; as a GIL build (a binary, never loaded) a 3.13t scan asks the index."""
    files = {"hostile/__init__.py": (_record(marker, "package __init__") + "\n").encode()}
    if tag != "py3-none-any":
        files["hostile/_speedups.so"] = b"\x7fELF not really"
    return build_wheel(out, "hostile", "1.0", tag, files)


def _poison_site(site: Path, marker: Path) -> None:
    (site / "aaa-hostile.pth").write_text(f"import os; {_record(marker, 'pth line')}\n")
    (site / "sitecustomize.py").write_text(_record(marker, "sitecustomize") + "\n")
    (site / "usercustomize.py").write_text(_record(marker, "usercustomize") + "\n")


def _script(path: Path, marker: Path, what: str) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_text(f"#!/bin/sh\necho '{what}' >> '{marker}'\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _site_packages(venv: Path) -> Path:
    (site,) = venv.glob("lib/python3.*/site-packages")
    return site


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "ran.txt"


@pytest.fixture(scope="module")
def real_venv(gil_python: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A venv of a real interpreter, "hostile" installed by pip, then its site-packages
    poisoned. Returns the venv and the marker file its poison writes to."""
    base = tmp_path_factory.mktemp("hostile-env")
    marker = base / "ran.txt"
    python = toolchain.make_venv(gil_python, base / "env")
    toolchain.pip_install(python, _hostile_wheel(base / "wheels", marker, GIL_TAG))
    _poison_site(_site_packages(base / "env"), marker)
    # The poison works: the interpreter run as usual executes every part of it.
    subprocess.run([str(python), "-c", "import hostile"], check=True, timeout=60)
    ran = marker.read_text()
    assert all(p in ran for p in ("pth line", "sitecustomize", "package __init__")), ran
    marker.unlink()
    return base / "env", marker


@pytest.fixture(autouse=True)
def _fresh_marker(real_venv: tuple[Path, Path]) -> None:
    """The module's hostile venv writes to one marker: each test starts without it."""
    real_venv[1].unlink(missing_ok=True)


@pytest.fixture
def checkout(real_venv: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A project directory whose .venv is the hostile environment with a shell script for
    an interpreter and a pyvenv.cfg whose home holds a fake python3."""
    venv, marker = real_venv
    project = tmp_path / "project"
    shutil.copytree(venv, project / ".venv", symlinks=True)
    for name in ("python", "python3", "python3.13"):
        _script(project / ".venv" / "bin" / name, marker, f".venv/bin/{name}")
    fake_home = tmp_path / "fake-home"
    fake_home.mkdir()
    _script(fake_home / "python3", marker, "fake home python3")
    cfg = project / ".venv" / "pyvenv.cfg"
    cfg.write_text(
        f"home = {fake_home}\ninclude-system-site-packages = true\nversion = 3.13.0\n"
        f"executable = {fake_home / 'python3'}\n"
    )
    return project, marker


def _scan(args: list[str], out: Path) -> dict[str, Any]:
    main(["scan", *args, "--format", "json", "-o", str(out), "--quiet"])
    return dict(json.loads(out.read_text()))


def _names(doc: dict[str, Any]) -> set[str]:
    return {p["name"] for p in doc["packages"]}


def _nothing_ran(marker: Path) -> None:
    assert not marker.exists(), marker.read_text()


@pytest.mark.parametrize("how", ["dir", "env", "python"])
def test_a_hostile_checkout_is_read_not_run(
    checkout: tuple[Path, Path], tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, marker = checkout
    monkeypatch.chdir(tmp_path)
    args = {
        "dir": [str(project)],
        "env": ["--env", str(project / ".venv")],
        # Named explicitly, yet its files say all there is to know: it is not run either.
        "python": ["--python", str(project / ".venv" / "bin" / "python3")],
    }[how]
    doc = _scan([*args, "--offline"], tmp_path / "report.json")
    _nothing_ran(marker)
    assert {"hostile", "pip"} <= _names(doc)


@pytest.mark.parametrize("how", ["dir", "env", "python"])
def test_a_hostile_environment_with_a_real_interpreter(
    real_venv: tuple[Path, Path], tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv, marker = real_venv
    monkeypatch.chdir(tmp_path)
    args = {
        "dir": [str(venv)],
        "env": ["--env", str(venv)],
        "python": ["--python", str(venv / "bin" / "python")],
    }[how]
    doc = _scan([*args, "--offline"], tmp_path / "report.json")
    _nothing_ran(marker)
    assert {"hostile", "pip"} <= _names(doc)


@pytest.mark.parametrize("which", ["checkout", "real interpreter"])
def test_an_online_scan_reads_the_venvs_pip_conf_without_running_it(
    checkout: tuple[Path, Path],
    real_venv: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    which: str,
) -> None:
    """No --index-url: the index is the one the hostile venv's own pip.conf names, found
    without starting its interpreter or importing its pip."""
    project, marker = checkout
    if which == "real interpreter":
        shutil.rmtree(project / ".venv")
        shutil.copytree(real_venv[0], project / ".venv", symlinks=True)
    wheels = tmp_path / "served"
    _hostile_wheel(wheels, tmp_path / "never-installed.txt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PIP_CONFIG_FILE")
    with IndexServer(wheels) as server:
        (project / ".venv" / "pip.conf").write_text(f"[global]\nindex-url = {server.url}\n")
        doc = _scan([str(project)], tmp_path / "report.json")
        asked = list(server.requests)
    _nothing_ran(marker)
    assert "hostile" in _names(doc)
    assert any("hostile" in r for r in asked), asked


def test_a_named_interpreter_is_run_only_isolated(
    gil_python: str, tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When its files leave something out, --python runs the interpreter with -I -S: a
    hostile user site (.pth, usercustomize, a package) still runs nothing, and is listed."""
    user_base = tmp_path / "userbase"
    site = user_base / "lib" / "python3.13" / "site-packages"
    site.mkdir(parents=True)
    wheel = _hostile_wheel(tmp_path / "wheels", marker)
    subprocess.run(
        [gil_python, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        env=toolchain.clean_pip_env(),
    )
    _poison_site(site, marker)
    monkeypatch.setenv("PYTHONUSERBASE", str(user_base))
    monkeypatch.delenv("PYTHONNOUSERSITE", raising=False)
    monkeypatch.setattr(layout, "_patchlevel", lambda *_: None)  # the headers say nothing
    started: list[list[str]] = []
    real_run = subprocess.run

    def spy(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        started.append(list(cmd))
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    monkeypatch.chdir(tmp_path)
    doc = _scan(["--python", gil_python, "--offline"], tmp_path / "report.json")
    _nothing_ran(marker)
    assert "hostile" in _names(doc)
    assert started and all(c[1:3] == ["-I", "-S"] for c in started), started
    assert os.path.realpath(started[0][0]) == os.path.realpath(gil_python)
