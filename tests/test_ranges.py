"""Remote wheels read in place by HTTP range requests: only the members a verdict needs
are fetched; a server without ranges, with wrong ranges or with range bodies cut short
gets the wheel downloaded whole; the verdict is the same either way."""

from __future__ import annotations

import json
import os
import random
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ftaudit.cli import main
from ftaudit.index.http import Http, NoRanges
from ftaudit.index.remote import RemoteFile
from tests.conftest import FT_TAG, NOT_USED
from tests.helpers import toolchain
from tests.helpers.index_server import IndexServer
from tests.helpers.schema import validate_report
from tests.helpers.wheels import build_wheel

pytestmark = pytest.mark.ft
BLOB = 3 * 1024 * 1024  # incompressible data beside the module: what ranges save


def _big_wheel(
    out: Path, work: Path, python: str, name: str, requires: tuple[str, ...] = ()
) -> Path:
    so = toolchain.compile_module(python, NOT_USED, "_core", work / name, flags=("-O2",))
    pkg = name.replace("-", "_")
    blob = random.Random(7).randbytes(BLOB)
    files = {
        f"{pkg}/__init__.py": b"",
        f"{pkg}/data/blob.bin": blob,
        f"{pkg}/{so.name}": so.read_bytes(),
    }
    return build_wheel(out, name, "1.0", FT_TAG, files, requires=requires)


def _lie_about_offset(wheel: Path, member_suffix: str) -> None:
    """Point the zip directory's entry for one member at the wrong local header."""
    data = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(member_suffix))
    # Walk the central directory to the member's entry.
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len, extra_len, comment_len = struct.unpack_from("<3H", data, pos + 28)
        name = bytes(data[pos + 46 : pos + 46 + name_len]).decode()
        if name == info.filename:
            struct.pack_into("<I", data, pos + 42, info.header_offset + 7)
            wheel.write_bytes(bytes(data))
            return
        pos = data.find(b"PK\x01\x02", pos + 46 + name_len + extra_len + comment_len)
    raise AssertionError("member not in the directory")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, ft_python: str) -> Path:
    where = tmp_path_factory.mktemp("range-index")
    _big_wheel(where, where / "build", ft_python, "ftbig")
    lying = _big_wheel(where, where / "build", ft_python, "ftlie")
    _lie_about_offset(lying, ".so")
    _big_wheel(where, where / "build", ft_python, "ftmeta", requires=("ftdep",))
    build_wheel(where, "ftdep", "1.0", "py3-none-any", {"ftdep/__init__.py": b""})
    return where


def _doc(index: IndexServer, tmp_path: Path, name: str) -> dict[str, Any]:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"{name}==1.0\n")
    out = tmp_path / "r.json"
    main(
        [
            "scan",
            "-r",
            str(reqs),
            "--target",
            "3.13t",
            "--index-url",
            index.url,
            "--cache-dir",
            str(tmp_path / f"cache-{index.ranges}"),
            "--format",
            "json",
            "-o",
            str(out),
            "-q",
            "--allow-incomplete",
        ]
    )
    return validate_report(json.loads(out.read_text()))


def _scan(index: IndexServer, tmp_path: Path, name: str) -> dict[str, Any]:
    return dict(_doc(index, tmp_path, name)["packages"][0]["targets"]["3.13t"])


def test_a_large_wheel_is_read_by_ranges(wheels: Path, tmp_path: Path) -> None:
    size = (wheels / f"ftbig-1.0-{FT_TAG}.whl").stat().st_size
    with IndexServer(wheels, ranges="ok") as index:
        verdict = _scan(index, tmp_path, "ftbig")
        sent = index.file_bytes_sent
    assert verdict["status"] == "ready", verdict
    assert verdict["artifact_read"] == "ranges"
    assert sent < size / 10, (sent, size)  # the module and the directory, not the blob


@pytest.mark.parametrize("mode", ["none", "wrong", "short"])
def test_without_usable_ranges_the_wheel_is_fetched_whole(
    wheels: Path, tmp_path: Path, mode: str
) -> None:
    size = (wheels / f"ftbig-1.0-{FT_TAG}.whl").stat().st_size
    with IndexServer(wheels, ranges=mode) as index:
        verdict = _scan(index, tmp_path, "ftbig")
        sent = index.file_bytes_sent
    assert verdict["status"] == "ready", verdict
    assert verdict["artifact_read"] == "whole"
    assert sent >= size


def test_a_lying_directory_is_unknown_by_ranges_as_whole(wheels: Path, tmp_path: Path) -> None:
    found = {}
    for mode in ("ok", "none"):
        with IndexServer(wheels, ranges=mode) as index:
            found[mode] = _scan(index, tmp_path, "ftlie")
    assert found["ok"]["status"] == found["none"]["status"] == "unknown"
    assert "no local header where the zip directory says" in found["ok"]["reason"]
    assert found["ok"]["reason"] == found["none"]["reason"]
    assert (found["ok"]["artifact_read"], found["none"]["artifact_read"]) == ("ranges", "whole")


def test_remote_file_reads_what_the_file_holds(wheels: Path) -> None:
    path = wheels / f"ftbig-1.0-{FT_TAG}.whl"
    data = path.read_bytes()
    with IndexServer(wheels, ranges="ok") as index:
        url = index.url.replace("/simple/", f"/files/{path.name}")
        remote = RemoteFile(Http(), url, len(data))
        rng = random.Random(3)
        for _ in range(200):
            start = rng.randrange(len(data))
            length = rng.choice([1, 30, 4096, 70_000, 300_000])
            remote.seek(start)
            assert remote.read(length) == data[start : start + length]
        remote.seek(-22, os.SEEK_END)
        assert remote.read() == data[-22:]
        assert remote.cost.bytes < 200 * 300_000
        with pytest.raises(NoRanges, match="the index"):
            RemoteFile(Http(), url, len(data) + 1)  # the index and the server disagree
    with IndexServer(wheels, ranges="none") as index:
        url = index.url.replace("/simple/", f"/files/{path.name}")
        with pytest.raises(NoRanges, match="does not serve byte ranges"):
            RemoteFile(Http(), url, len(data))
    with IndexServer(wheels, ranges="wrong") as index:
        url = index.url.replace("/simple/", f"/files/{path.name}")
        with pytest.raises(NoRanges, match="the server answered"):
            RemoteFile(Http(), url, len(data))


def test_stats_say_what_a_cold_and_a_warm_scan_cost(wheels: Path, tmp_path: Path) -> None:
    size = (wheels / f"ftbig-1.0-{FT_TAG}.whl").stat().st_size
    with IndexServer(wheels, ranges="ok") as index:
        cold = _doc(index, tmp_path, "ftbig")["stats"]
        warm = _doc(index, tmp_path, "ftbig")["stats"]
    assert cold["wheel_bytes"] == size and cold["wheels_by_ranges"] == 1
    assert 0 < cold["bytes_fetched"] < size / 10 and cold["requests"] >= 3
    assert cold["facts_cached"] == 0 and set(cold["seconds"]) >= {"plan", "scan"}
    # The second scan reads nothing again: the facts are kept by the wheel's sha256 and
    # the page is fresh.
    assert warm["facts_cached"] == 1 and warm["wheels_by_ranges"] == warm["wheels_whole"] == 0
    assert warm["pages_cached"] >= 1 and warm["requests"] == 0 and warm["bytes_fetched"] == 0


def test_requirements_are_read_by_ranges_without_a_metadata_file(
    wheels: Path, tmp_path: Path
) -> None:
    """An index with no PEP 658 files: the wheel's METADATA comes out of the remote zip."""
    size = (wheels / f"ftmeta-1.0-{FT_TAG}.whl").stat().st_size
    with IndexServer(wheels, ranges="ok", core_metadata=False) as index:
        doc = _doc(index, tmp_path, "ftmeta")
        sent = index.file_bytes_sent
    names = {p["name"]: p for p in doc["packages"]}
    assert set(names) == {"ftmeta", "ftdep"}
    assert names["ftdep"]["required_by"] == ["ftmeta"]
    assert sent < size / 5, (sent, size)
