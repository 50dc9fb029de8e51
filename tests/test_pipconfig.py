"""The index comes from pip's configuration, read by ftaudit as pip reads it, else pip's
own default, read from the pip beside ftaudit. No process is started for either."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftaudit.errors import InputError, UsageError
from ftaudit.index.pipconfig import config_files, pip_index_config, pips_default_index

A, B, C, D = (f"http://127.0.0.1:1/{x}/" for x in "abcd")


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "system", refuse)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Files on: a home of our own, no XDG overrides, global files under tmp_path (the
    machine's /etc/pip.conf stays in the list: each test sets what it checks higher up)."""
    where = tmp_path / "home"
    where.mkdir()
    monkeypatch.setenv("HOME", str(where))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv(
        "XDG_CONFIG_DIRS", str(tmp_path / "xdg-a") + os.pathsep + str(tmp_path / "xdg-b")
    )
    monkeypatch.delenv("PIP_CONFIG_FILE", raising=False)
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    return where


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _venv(where: Path) -> Path:
    """A venv's files (pyvenv.cfg, bin/python); its interpreter is never run."""
    _write(where / "pyvenv.cfg", "home = /nowhere\nversion = 3.13.0\n")
    _write(where / "bin" / "python", "#!/bin/sh\nexit 1\n").chmod(0o755)
    return where / "bin" / "python"


def test_pip_configuration_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = _write(tmp_path / "pip.conf", f"[global]\nindex-url = {A}\nextra-index-url = {B} {C}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    cfg = pip_index_config(sys.executable)
    assert cfg.urls == (A, B, C)


def test_environment_beats_file_and_command_line_beats_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = _write(tmp_path / "pip.conf", f"[global]\nindex-url = {A}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_INDEX_URL", B)
    assert pip_index_config(sys.executable).index_url == B
    assert pip_index_config(sys.executable, C).index_url == C


def test_unconfigured_uses_pips_default() -> None:
    cfg = pip_index_config(sys.executable)  # conftest points PIP_CONFIG_FILE at /dev/null
    assert cfg.index_url.startswith("https://") and cfg.extra_index_urls == ()


def test_the_files_in_pips_order(home: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    assert config_files(prefix) == [
        tmp_path / "xdg-a" / "pip" / "pip.conf",
        tmp_path / "xdg-b" / "pip" / "pip.conf",
        Path("/etc/pip.conf"),
        home / ".pip" / "pip.conf",
        home / ".config" / "pip" / "pip.conf",
        prefix / "pip.conf",
    ]


def test_user_files_legacy_then_xdg(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "xdg-a" / "pip" / "pip.conf", f"[global]\nindex-url = {A}\n")
    assert pip_index_config(None, prefix=str(tmp_path)).index_url == A
    _write(home / ".pip" / "pip.conf", f"[global]\nindex-url = {B}\n")
    assert pip_index_config(None, prefix=str(tmp_path)).index_url == B
    _write(home / ".config" / "pip" / "pip.conf", f"[global]\nindex-url = {C}\n")
    assert pip_index_config(None, prefix=str(tmp_path)).index_url == C
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-home"))
    _write(tmp_path / "xdg-home" / "pip" / "pip.conf", f"[global]\nindex-url = {D}\n")
    assert pip_index_config(None, prefix=str(tmp_path)).index_url == D


def test_the_scanned_venvs_own_pip_conf(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = _venv(tmp_path / "venv")
    _write(home / ".config" / "pip" / "pip.conf", f"[global]\nindex-url = {A}\ncert = /u.pem\n")
    _write(tmp_path / "venv" / "pip.conf", f"[global]\nindex-url = {B}\n")
    cfg = pip_index_config(str(python))
    assert (cfg.index_url, cfg.cert) == (B, "/u.pem")
    # Read from the prefix when the environment has no interpreter to name.
    assert pip_index_config(None, prefix=str(tmp_path / "venv")).index_url == B
    # PIP_CONFIG_FILE beats the site file, and when it exists the user's files are skipped.
    env_file = _write(tmp_path / "env.conf", f"[global]\nextra-index-url = {C}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(env_file))
    cfg = pip_index_config(str(python))
    assert cfg.urls == (B, C)
    assert cfg.cert != "/u.pem"  # the user's file is not read
    _write(env_file, f"[global]\nindex-url = {D}\n")
    assert pip_index_config(str(python)).index_url == D


def test_a_pip_config_file_that_does_not_exist_keeps_the_user_files(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(home / ".config" / "pip" / "pip.conf", f"[global]\nindex-url = {A}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "absent.conf"))
    assert pip_index_config(None, prefix=str(tmp_path)).index_url == A


def test_devnull_turns_every_file_off_but_not_the_variables(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = _venv(tmp_path / "venv")
    _write(tmp_path / "venv" / "pip.conf", f"[global]\nindex-url = {A}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    assert pip_index_config(str(python)).index_url == pips_default_index()
    monkeypatch.setenv("PIP_INDEX_URL", B)
    assert pip_index_config(str(python)).index_url == B


def test_install_section_beats_global_whichever_file_holds_it(home: Path, tmp_path: Path) -> None:
    _write(tmp_path / "xdg-a" / "pip" / "pip.conf", f"[install]\nindex-url = {A}\n")
    _write(home / ".config" / "pip" / "pip.conf", f"[global]\nindex-url = {B}\n[freeze]\nx = 1\n")
    assert pip_index_config(None, prefix=str(tmp_path)).index_url == A


def test_an_empty_value_hides_the_lower_ones_of_its_section(home: Path, tmp_path: Path) -> None:
    _write(tmp_path / "xdg-a" / "pip" / "pip.conf", f"[global]\nindex-url = {A}\n")
    _write(home / ".config" / "pip" / "pip.conf", "[global]\nindex-url =\n")
    assert pip_index_config(None, prefix=str(tmp_path)).index_url == pips_default_index()


def test_variables_names_and_lists(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(home / ".config" / "pip" / "pip.conf", f"[global]\nextra_index_url = {D}\n")
    assert pip_index_config(None, prefix=str(tmp_path)).extra_index_urls == (D,)
    monkeypatch.setenv("PIP_INDEX_URL", A)
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f" {B}  {C} {A} ")
    monkeypatch.setenv("PIP_CERT", "/ca.pem")
    cfg = pip_index_config(None, prefix=str(tmp_path))
    assert (cfg.urls, cfg.cert) == ((A, B, C), "/ca.pem")
    # The caller's URLs beat every configured one.
    assert pip_index_config(None, D, (C,), prefix=str(tmp_path)).urls == (D, C)


def test_no_index(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(home / ".config" / "pip" / "pip.conf", f"[global]\nindex-url = {A}\n")
    monkeypatch.setenv("PIP_NO_INDEX", "yes")
    with pytest.raises(UsageError, match=r"no-index.*PIP_NO_INDEX.*--index-url"):
        pip_index_config(None, prefix=str(tmp_path))
    assert pip_index_config(None, B, prefix=str(tmp_path)).urls == (B,)
    monkeypatch.setenv("PIP_NO_INDEX", "off")
    assert pip_index_config(None, prefix=str(tmp_path)).index_url == A
    monkeypatch.setenv("PIP_NO_INDEX", "sometimes")
    with pytest.raises(UsageError, match="PIP_NO_INDEX: 'sometimes' is not a valid value"):
        pip_index_config(None, prefix=str(tmp_path))


def test_a_malformed_file_is_named(home: Path, tmp_path: Path) -> None:
    conf = _write(home / ".config" / "pip" / "pip.conf", "index-url = no section\n")
    with pytest.raises(InputError, match=str(conf)):
        pip_index_config(None, prefix=str(tmp_path))
    conf.write_text("[global]\nindex-url = a\nindex-url = b\n")
    with pytest.raises(InputError, match="not a valid pip configuration file"):
        pip_index_config(None, prefix=str(tmp_path))


def test_without_pip_beside_ftaudit_the_user_is_asked_for_an_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pips_default_index.cache_clear()
    monkeypatch.setitem(sys.modules, "pip._internal.models.index", None)  # import fails
    try:
        with pytest.raises(UsageError, match="--index-url"):
            pip_index_config(sys.executable)
        assert pip_index_config(sys.executable, A).index_url == A
    finally:
        pips_default_index.cache_clear()
