"""ftaudit runs on a free-threaded interpreter and reports its own environment as ready."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import toolchain

pytestmark = pytest.mark.ft


@pytest.fixture(scope="module")
def self_venv() -> Path:
    where = os.environ.get("FTAUDIT_SELF_VENV")
    if not where or not (Path(where) / "bin" / "ftaudit").exists():
        toolchain.missing("FTAUDIT_SELF_VENV: ftaudit installed on the free-threaded interpreter")
    return Path(str(where))


def test_importing_ftaudit_keeps_the_gil_disabled(self_venv: Path) -> None:
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('error')\n"
        "import ftaudit.cli, ftaudit.scan, ftaudit.inspect.walk\n"
        "import capstone, elftools, rich, urllib3\n"
        "capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)\n"
        "print(int(sys._is_gil_enabled()))\n"
    )
    proc = subprocess.run(
        [str(self_venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


def test_ftaudit_reports_its_own_environment_ready(self_venv: Path, tmp_path: Path) -> None:
    out = tmp_path / "self.json"
    proc = subprocess.run(
        [
            str(self_venv / "bin" / "ftaudit"),
            "scan",
            "--python",
            str(self_venv / "bin" / "python"),
            "--offline",
            "--format",
            "json",
            "-o",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"},
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    statuses = {p["name"]: p["targets"]["3.13t"]["status"] for p in doc["packages"]}
    assert "ftaudit" in statuses and "capstone" in statuses
    assert set(statuses.values()) == {"ready"}, statuses
