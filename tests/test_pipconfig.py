"""The index comes from pip's configuration, else pip's own default, read from pip."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ftaudit.index.pipconfig import pip_index_config


def test_pip_configuration_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = http://127.0.0.1:1/a/\n"
        "extra-index-url = http://127.0.0.1:1/b/ http://127.0.0.1:1/c/\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    cfg = pip_index_config(sys.executable)
    assert cfg.urls == ("http://127.0.0.1:1/a/", "http://127.0.0.1:1/b/", "http://127.0.0.1:1/c/")


def test_environment_beats_file_and_command_line_beats_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = http://127.0.0.1:1/file/\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:1/env/")
    assert pip_index_config(sys.executable).index_url == "http://127.0.0.1:1/env/"
    assert pip_index_config(sys.executable, "http://127.0.0.1:1/cli/").index_url == (
        "http://127.0.0.1:1/cli/"
    )


def test_unconfigured_uses_pips_default() -> None:
    cfg = pip_index_config(sys.executable)  # conftest points PIP_CONFIG_FILE at /dev/null
    assert cfg.index_url.startswith("https://") and cfg.extra_index_urls == ()
