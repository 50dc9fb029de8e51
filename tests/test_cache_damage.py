"""A damaged cache is only a cache: each kind of damage, then a scan that gives the same
answer as the first (with one warning line), never a traceback, never a wrong verdict.
And two scans sharing one cache at the same time."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftaudit.cli import main
from tests.helpers.index_server import IndexServer

WHEELS = Path(__file__).parent / "data" / "locks" / "index"
REQUIREMENTS = "ftlk-fast==1.0\nftlk-util==1.0\nftlk-gil==1.0\nftlk-core==1.0\n"
TARGET = ["--target", "3.13t", "--platform", "linux-x86_64"]


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def index() -> Iterator[IndexServer]:
    with IndexServer(WHEELS) as server:
        yield server


@pytest.fixture
def req(tmp_path: Path) -> Path:
    path = tmp_path / "proj" / "requirements.txt"
    path.parent.mkdir()
    path.write_text(REQUIREMENTS)
    return path


def scan(
    req: Path, cache: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any], list[str]]:
    code = main(
        ["scan", str(req), *TARGET, *extra, "--format", "json", "-q", "--cache-dir", str(cache)]
    )
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, json.loads(out), [line for line in err.splitlines() if line.strip()]


def statuses(doc: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {
        p["name"]: (p["targets"]["3.13t"]["status"], p["targets"]["3.13t"]["incomplete"])
        for p in doc["packages"]
    }


@pytest.fixture
def first(
    req: Path, tmp_path: Path, index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, int, dict[str, tuple[str, str | None]]]:
    """A cache filled by one complete scan, and what that scan said."""
    cache = tmp_path / "cache"
    code, doc, err = scan(req, cache, capsys, "--index-url", index.url)
    assert err == [] and doc["incomplete"] == []
    found = statuses(doc)
    assert found["ftlk-fast"] == ("ready", None) and found["ftlk-gil"][0] == "upgrade"
    return cache, code, found


def _db(cache: Path) -> Path:
    return cache / "index.sqlite3"


@pytest.mark.parametrize("where", ["header", "pages"])
def test_a_corrupt_database_file_is_started_again(
    where: str,
    first: tuple[Path, int, dict[str, tuple[str, str | None]]],
    req: Path,
    index: IndexServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache, code, before = first
    data = bytearray(_db(cache).read_bytes())
    assert len(data) > 8192
    start = 0 if where == "header" else 4096  # page 1 holds the schema; 2 on, the tables
    data[start : start + 4096] = b"\xa5" * 4096
    _db(cache).write_bytes(bytes(data))
    again, doc, err = scan(req, cache, capsys, "--index-url", index.url)
    assert (again, statuses(doc)) == (code, before)
    (line,) = err
    assert "the cache database is damaged" in line and "starting it again" in line
    # ... and the database is whole again: a third scan has nothing to say.
    assert scan(req, cache, capsys, "--index-url", index.url)[2] == []


@pytest.mark.parametrize(
    "body",
    ['{"artifact": "x", "tags": [', '{"artifact": 5}', "[]", '{"artifact": "x", "tags": [1]}'],
)
def test_a_facts_row_that_does_not_decode_is_read_again(
    body: str,
    first: tuple[Path, int, dict[str, tuple[str, str | None]]],
    req: Path,
    index: IndexServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache, code, before = first
    with sqlite3.connect(_db(cache)) as db:
        assert db.execute("UPDATE facts SET body = ?", (body,)).rowcount > 0
    again, doc, err = scan(req, cache, capsys, "--index-url", index.url)
    assert (again, statuses(doc)) == (code, before)
    assert len(err) == 1 and "do not decode" in err[0], err
    with sqlite3.connect(_db(cache)) as db:
        bodies = [
            row[0] for row in db.execute("SELECT body FROM facts WHERE tool_version LIKE '%+r%'")
        ]
    assert body not in bodies  # replaced by what the files say


def test_a_page_row_of_the_wrong_shape_is_fetched_again(
    first: tuple[Path, int, dict[str, tuple[str, str | None]]],
    req: Path,
    index: IndexServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache, code, before = first
    with sqlite3.connect(_db(cache)) as db:
        db.execute("UPDATE pages SET content_type = 5, fetched = 'soon'")
    again, doc, err = scan(req, cache, capsys, "--index-url", index.url)
    assert (again, statuses(doc)) == (code, before)
    assert len(err) == 1 and "damaged cached index page" in err[0]


def _truncate_artifacts(cache: Path) -> list[Path]:
    wheels = sorted((cache / "artifacts").rglob("*.whl"))
    assert wheels
    for wheel in wheels:
        wheel.write_bytes(wheel.read_bytes()[: wheel.stat().st_size // 2])
    with sqlite3.connect(_db(cache)) as db:
        db.execute("DELETE FROM facts")  # so that the files themselves must be read
    return wheels


def test_a_truncated_cached_wheel_is_fetched_again(
    first: tuple[Path, int, dict[str, tuple[str, str | None]]],
    req: Path,
    index: IndexServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache, code, before = first
    wheels = _truncate_artifacts(cache)
    served = len([r for r in index.requests if r.startswith("/files/")])
    again, doc, err = scan(req, cache, capsys, "--index-url", index.url)
    assert (again, statuses(doc)) == (code, before)
    refetched = [r for r in index.requests if r.startswith("/files/")][served:]
    assert refetched  # the damaged copies were not read as they were
    assert all("damaged" in line and "fetching it again" in line for line in err), err
    assert all(w.is_file() and w.stat().st_size > 0 for w in wheels if w.exists())


def test_a_truncated_cached_wheel_offline_is_incomplete_not_judged(
    first: tuple[Path, int, dict[str, tuple[str, str | None]]],
    req: Path,
    index: IndexServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache, _code, _before = first
    _truncate_artifacts(cache)
    served = len(index.requests)
    again, doc, err = scan(req, cache, capsys, "--offline", "--index-url", index.url)
    assert len(index.requests) == served
    found = statuses(doc)
    assert again == 2
    # The damaged copies are gone, not judged: offline, nothing else to read them from.
    assert found["ftlk-fast"] == ("unknown", "offline")
    assert found["ftlk-util"] == ("unknown", "offline")
    assert "could not be checked" in err[-1]


def test_two_scans_at_once_on_one_cache(req: Path, tmp_path: Path, index: IndexServer) -> None:
    cache = tmp_path / "shared-cache"
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "NO_COLOR": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ftaudit",
                "scan",
                str(req),
                *TARGET,
                "--index-url",
                index.url,
                "--format",
                "json",
                "-q",
                "--cache-dir",
                str(cache),
                "-o",
                str(tmp_path / f"report-{i}.json"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert all(code in (0, 1) for code in codes), results
    assert codes[0] == codes[1]
    assert all(err == "" for _out, err in results), results
    docs = [json.loads((tmp_path / f"report-{i}.json").read_text()) for i in range(2)]
    assert statuses(docs[0]) == statuses(docs[1])
    assert statuses(docs[0])["ftlk-fast"] == ("ready", None)
