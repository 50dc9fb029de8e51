"""A scan that could not check every package says so and exits 2: never `blocked`, never
"not on the index" unless every index answered, never a pass by default. Real indexes on
127.0.0.1 (one of them on a closed port), the fixture lock wheels."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from ftaudit.cli import main
from tests.helpers.index_server import IndexServer

WHEELS = Path(__file__).parent / "data" / "locks" / "index"
HARDENING = Path(__file__).parent / "data" / "hardening"
# ftlk-fast 1.0 ships a cp313t wheel, and an abi3 one (which no free-threaded build loads)
REQUIREMENTS = "ftlk-fast==1.0\nftlk-util==1.0\nftlk-gil==1.0\n"
TARGET = ["--target", "3.13t", "--platform", "linux-x86_64"]


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the repository, whose pyproject.toml would count


def closed_port() -> str:
    """An index URL on a port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple/"


def project(tmp_path: Path, requirements: str = REQUIREMENTS, policy: str = "") -> Path:
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    (root / "requirements.txt").write_text(requirements)
    if policy:
        (root / "pyproject.toml").write_text(f"[tool.ftaudit]\n{policy}")
    return root / "requirements.txt"


def mirror(tmp_path: Path, *patterns: str) -> Path:
    """A partial mirror: only the fixture wheels matching `patterns`."""
    out = tmp_path / "mirror"
    out.mkdir(exist_ok=True)
    for pattern in patterns:
        for wheel in WHEELS.glob(pattern):
            shutil.copy(wheel, out / wheel.name)
    return out


def scan(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any], list[str]]:
    code = main(
        ["scan", *args, *TARGET, "--format", "json", "-q", "--cache-dir", str(tmp_path / "c")]
    )
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    doc = json.loads(out) if out else {}
    return code, doc, [line for line in err.splitlines() if line.strip()]


def verdicts(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p["targets"]["3.13t"] for p in doc["packages"]}


# --- an index that does not answer ---------------------------------------------------------


def test_an_unreachable_index_alone_leaves_everything_unknown_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc, err = scan([str(project(tmp_path)), "--index-url", closed_port()], tmp_path, capsys)
    assert code == 2  # the default --fail-on (blocked,gil) would have passed it
    v = verdicts(doc)
    assert set(v) == {"ftlk-fast", "ftlk-util", "ftlk-gil"}
    assert {x["status"] for x in v.values()} == {"unknown"}
    assert {x["incomplete"] for x in v.values()} == {"network"}
    assert all("cannot reach" in x["reason"] for x in v.values())
    assert len(doc["incomplete"]) == 3
    (line,) = err
    assert line.startswith("ftaudit: incomplete scan: 3 packages could not be checked: 3 network")
    assert "--allow-incomplete" in line


def test_a_version_missing_from_the_mirror_is_not_said_missing_from_the_dead_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ftlk-util is on the mirror, but not at 9.9: the index that did not answer may hold
    it, so the reason names only the indexes that answered."""
    dead = closed_port()
    wheels = mirror(tmp_path, "ftlk_util-1.0-*")
    req = str(project(tmp_path, "ftlk-util==9.9\n"))
    with IndexServer(wheels) as partial:
        code, doc, _err = scan(
            [req, "--index-url", dead, "--extra-index-url", partial.url], tmp_path, capsys
        )
    v = verdicts(doc)["ftlk-util"]
    assert code == 2
    assert (v["status"], v["incomplete"]) == ("unknown", "network")
    assert "9.9 is not on the indexes that answered" in v["reason"]
    assert f"is not on {dead.split('/')[2]}" not in v["reason"]


def test_unreachable_beside_a_partial_mirror_is_unknown_not_blocked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The mirror has ftlk-fast's abi3 wheel only, ftlk-util, and no ftlk-gil: alone it
    would say ftlk-fast is blocked and ftlk-gil not on the index."""
    wheels = mirror(tmp_path, "ftlk_fast-1.0-cp310-abi3-*", "ftlk_util-1.0-*")
    req = str(project(tmp_path))
    with IndexServer(wheels) as partial:
        code, doc, err = scan(
            [req, "--index-url", closed_port(), "--extra-index-url", partial.url], tmp_path, capsys
        )
        v = verdicts(doc)
        assert code == 2
        assert (v["ftlk-fast"]["status"], v["ftlk-fast"]["incomplete"]) == ("unknown", "network")
        assert doc["summary"]["3.13t"]["blocked"] == 0
        assert "is not on" not in v["ftlk-gil"]["reason"]
        assert (v["ftlk-gil"]["status"], v["ftlk-gil"]["incomplete"]) == ("unknown", "network")
        assert v["ftlk-util"]["status"] == "ready"  # what the mirror holds is still read
        assert v["ftlk-util"]["incomplete"] is None
        (line,) = err
        assert "2 packages could not be checked: 2 network" in line

        # The same mirror alone answers for itself: blocked, and not on the index.
        code, doc, err = scan([req, "--index-url", partial.url], tmp_path, capsys)
    v = verdicts(doc)
    assert code == 1
    assert v["ftlk-fast"]["status"] == "blocked" and v["ftlk-fast"]["incomplete"] is None
    assert "is not on" in v["ftlk-gil"]["reason"] and v["ftlk-gil"]["incomplete"] is None
    assert err == []


def test_allow_incomplete_exits_by_fail_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = str(project(tmp_path))
    args = [req, "--index-url", closed_port(), "--allow-incomplete"]
    code, doc, err = scan(args, tmp_path, capsys)
    assert code == 0  # all unknown, and unknown is not in the default --fail-on
    assert len(doc["incomplete"]) == 3
    (line,) = err
    assert "--allow-incomplete: exiting by --fail-on" in line
    code, _doc, _err = scan([*args, "--fail-on", "unknown"], tmp_path, capsys)
    assert code == 1


def test_allow_incomplete_in_the_project_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = project(tmp_path, policy="allow-incomplete = true\n")
    code, _doc, _err = scan([str(req.parent), "--index-url", closed_port()], tmp_path, capsys)
    assert code == 0
    (req.parent / "pyproject.toml").write_text('[tool.ftaudit]\nallow-incomplete = "yes"\n')
    assert main(["scan", str(req.parent), "--offline"]) == 2
    err = capsys.readouterr().err
    assert "allow-incomplete: expected true or false" in err


def test_offline_with_nothing_cached_is_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc, _err = scan([str(project(tmp_path)), "--offline"], tmp_path, capsys)
    assert code == 2
    assert {x["incomplete"] for x in verdicts(doc).values()} == {"offline"}


def test_every_index_answering_not_found_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with IndexServer(mirror(tmp_path, "ftlk_util-1.0-*")) as only_util:
        code, doc, err = scan(
            [str(project(tmp_path, "ftlk-gil==1.0\n")), "--index-url", only_util.url],
            tmp_path,
            capsys,
        )
    v = verdicts(doc)["ftlk-gil"]
    assert (v["status"], v["incomplete"]) == ("unknown", None)
    assert "not on" in v["reason"]
    assert code == 0 and err == [] and doc["incomplete"] == []


# --- an index that answers nonsense -------------------------------------------------------


class StaticIndex(IndexServer):
    """An index whose project pages are given verbatim (JSON), its files served as usual."""

    def __init__(self, pages: dict[str, object], files: Path) -> None:
        super().__init__(files)
        self.pages = pages

    def intercept(self, handler: BaseHTTPRequestHandler) -> bool:
        name = handler.path.strip("/").split("/")[-1]
        if not (handler.path.startswith("/simple/") and name in self.pages):
            return False
        body = json.dumps(self.pages[name]).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True


def _page(name: str, **fields: object) -> dict[str, object]:
    wheel = next(WHEELS.glob(f"{name.replace('-', '_')}-1.0-*.whl"))
    entry: dict[str, object] = {"filename": wheel.name, "url": f"../../files/{wheel.name}"}
    entry.update(fields)
    return {"meta": {"api-version": "1.1"}, "name": name, "files": [entry]}


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"requires-python": 3}, "'files[0].requires-python': expected str, got int"),
        ({"hashes": ["sha256"]}, "'files[0].hashes': expected dict, got list"),
        ({"size": "12"}, "'files[0].size': expected int, got str"),
        ({"yanked": 1}, "'files[0].yanked'"),
        ({"url": 7}, "'files[0].url': expected str, got int"),
        ({"core-metadata": "yes"}, "'files[0].core-metadata'"),
    ],
)
def test_wrong_json_types_on_an_index_page_are_an_index_failure(
    fields: dict[str, object],
    needle: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with StaticIndex({"ftlk-util": _page("ftlk-util", **fields)}, WHEELS) as index:
        code, doc, err = scan(
            [str(project(tmp_path, "ftlk-util==1.0\n")), "--index-url", index.url],
            tmp_path,
            capsys,
        )
    v = verdicts(doc)["ftlk-util"]
    assert code == 2
    assert (v["status"], v["incomplete"]) == ("unknown", "index")
    assert "malformed PEP 691 JSON" in v["reason"] and needle in v["reason"]
    assert len(err) == 1


def test_a_hostile_sha256_makes_no_directory_outside_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = "../../../../escaped"
    page = _page("ftlk-util", hashes={"sha256": hostile})
    before = sorted(p.name for p in tmp_path.iterdir())
    with StaticIndex({"ftlk-util": page}, WHEELS) as index:
        code, doc, err = scan(
            [str(project(tmp_path, "ftlk-util==1.0\n")), "--index-url", index.url],
            tmp_path,
            capsys,
        )
        fetched = [r for r in index.requests if r.startswith("/files/")]
    v = verdicts(doc)["ftlk-util"]
    assert code == 2
    assert (v["status"], v["incomplete"]) == ("unknown", "integrity")
    assert "is not 64 hex digits" in v["reason"]
    assert fetched == []  # a file the index cannot name is not fetched at all
    created = sorted(p.name for p in tmp_path.iterdir())
    assert set(created) - set(before) <= {"c", "proj"}
    assert not list(tmp_path.rglob("escaped*"))
    assert not list(tmp_path.parent.glob("escaped*"))
    assert len(err) == 1


# --- bad command lines, bad inputs, bugs ---------------------------------------------------


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        ("3.99t", "there is no free-threaded CPython 3.99"),
        ("3.13", "did you mean 3.13t?"),
        ("cp314", "did you mean 3.14t?"),
        ("3.12t", "starts at 3.13t"),
    ],
)
def test_targets_that_do_not_exist_are_usage_errors(
    target: str, hint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["scan", str(project(tmp_path)), "--offline", "--target", target])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("ftaudit: error: invalid target") and hint in line
    if target == "3.99t":
        assert "3.13t, 3.14t, 3.15t, 3.16t (pre-release)" in line


def test_a_pre_release_target_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "scan",
            str(project(tmp_path)),
            "--offline",
            "--allow-incomplete",
            "--target",
            "3.16t",
            "--format",
            "json",
            "--cache-dir",
            str(tmp_path / "c"),
        ]
    )
    out, _err = capsys.readouterr()
    assert code == 0 and json.loads(out)["targets"] == ["3.16t"]


@pytest.mark.parametrize(
    ("repro", "needles"),
    [
        ("lock-url-ipv6/uv.lock", ("package[0].wheels[0]", "'url': invalid URL", "IPv6")),
        ("lock-extra-int/uv.lock", ("package[0].dependencies[0]", "'extra' should be a list")),
        # kept under another name: tools that read every pyproject.toml would trip on it
        ("pyproject-tool-string.toml", ("pyproject.toml", "in 'tool': expected a table")),
    ],
)
def test_hardening_reproductions_are_one_line_errors(
    repro: str, needles: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = HARDENING / repro
    if source.suffix == ".toml":
        (tmp_path / "repro").mkdir()
        source = tmp_path / "repro" / "pyproject.toml"
        source.write_bytes((HARDENING / repro).read_bytes())
    code = main(["scan", str(source), "--offline", "--cache-dir", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("ftaudit: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in line, line


def test_an_internal_error_exits_3_not_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftaudit import scan as scan_module

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a stage that breaks")

    monkeypatch.setattr(scan_module.Scanner, "scan", broken)
    args = ["scan", str(project(tmp_path)), "--offline", *TARGET, "-q", "--cache-dir", "c"]
    assert main(args) == 3
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert out == ""
    assert line == (
        "ftaudit: internal error: RuntimeError: a stage that breaks; "
        "run with --verbose for the traceback"
    )
    assert main([*args, "--verbose"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "a stage that breaks" in err


@pytest.fixture
def full_index() -> Iterator[IndexServer]:
    with IndexServer(WHEELS) as server:
        yield server


def test_a_complete_scan_still_exits_by_fail_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], full_index: IndexServer
) -> None:
    code, doc, err = scan([str(project(tmp_path)), "--index-url", full_index.url], tmp_path, capsys)
    v = verdicts(doc)
    assert doc["incomplete"] == [] and err == []
    assert {x["incomplete"] for x in v.values()} == {None}
    assert v["ftlk-fast"]["status"] == "ready"
    assert code == (1 if "gil" in {x["status"] for x in v.values()} else 0)
