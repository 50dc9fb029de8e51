"""[tool.ftaudit]: defaults the command line overrides, ignores with reasons and expiry."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from ftaudit.cli import main
from ftaudit.config import load_policy
from ftaudit.errors import InputError
from tests.helpers.index_server import IndexServer

LOCKS = Path(__file__).parent / "data" / "locks"
TOMORROW = (dt.date.today() + dt.timedelta(days=1)).isoformat()
YESTERDAY = (dt.date.today() - dt.timedelta(days=1)).isoformat()


@pytest.fixture(scope="module")
def index() -> object:
    with IndexServer(LOCKS / "index") as server:
        yield server


def _project(tmp_path: Path, policy: str) -> Path:
    """The uv fixture project (ftlk-gil 1.0 needs the GIL; 2.0 does not), unlocked, with a
    [tool.ftaudit] table."""
    root = tmp_path / "project"
    root.mkdir()
    text = (LOCKS / "uv" / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(text + "\n[tool.ftaudit]\n" + policy)
    return root


def _run(
    root: Path, index: IndexServer, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, object], str]:
    code = main(
        ["scan", str(root), "--index-url", index.url, "--format", "json", "--quiet", *extra]
    )
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else {}, err


def test_policy_sets_targets_platforms_and_fail_on(
    tmp_path: Path, index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(
        tmp_path,
        'targets = ["3.14t"]\nplatforms = "linux-x86_64,windows-amd64"\nfail-on = ["upgrade"]\n',
    )
    code, doc, _err = _run(root, index, capsys)
    assert doc["targets"] == ["3.14t"] and doc["platforms"] == ["linux-x86_64", "windows-amd64"]
    assert code == 1  # ftlk-gil 1.0 is pinned in the project: upgrade, which the policy fails on
    assert doc["policy"]["fail_on"] == ["upgrade"]  # type: ignore[index]
    assert doc["policy"]["config"] == str(root / "pyproject.toml")  # type: ignore[index]
    # The command line wins.
    code, doc, _err = _run(
        root,
        index,
        capsys,
        "--fail-on",
        "blocked",
        "--target",
        "3.13t",
        "--platform",
        "linux-x86_64",
    )
    assert code == 0 and doc["targets"] == ["3.13t"] and doc["platforms"] == ["linux-x86_64"]


def test_an_ignore_keeps_a_finding_in_the_report_but_out_of_the_exit_code(
    tmp_path: Path, index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = (
        'targets = ["3.14t"]\nfail-on = ["upgrade"]\n'
        f'ignore = [{{package = "FTLK_Gil", reason = "moving in PR 12", expires = "{TOMORROW}"}}]\n'
    )
    code, doc, err = _run(_project(tmp_path, policy), index, capsys)
    assert code == 0, err
    gil = next(p for p in doc["packages"] if p["name"] == "ftlk-gil")  # type: ignore[attr-defined]
    verdict = gil["targets"]["3.14t"]
    assert verdict["status"] == "upgrade"
    assert verdict["ignored"] == f"moving in PR 12 (until {TOMORROW})"
    (rule,) = doc["policy"]["ignored"]  # type: ignore[index]
    assert rule["package"] == "ftlk-gil" and rule["expired"] is False


def test_an_expired_ignore_fails_loudly(
    tmp_path: Path, index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = (
        'targets = ["3.14t"]\nfail-on = ["blocked"]\n'
        f'ignore = [{{package = "ftlk-gil", reason = "moving in PR 12", '
        f'expires = "{YESTERDAY}"}}]\n'
    )
    code, doc, err = _run(_project(tmp_path, policy), index, capsys)
    assert code == 1
    assert f"the ignore for ftlk-gil expired on {YESTERDAY} (moving in PR 12)" in err
    gil = next(p for p in doc["packages"] if p["name"] == "ftlk-gil")  # type: ignore[attr-defined]
    assert gil["targets"]["3.14t"]["ignored"] is None


def test_an_ignore_for_a_package_not_scanned_is_noted(
    tmp_path: Path, index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = 'targets = ["3.14t"]\nignore = [{package = "nothere", reason = "old"}]\n'
    _code, doc, _err = _run(_project(tmp_path, policy), index, capsys)
    assert any("nothere matches no scanned package" in n for n in doc["notes"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ('fail_on = ["gil"]\n', "unknown key 'fail_on'"),
        ('fail-on = ["gli"]\n', "invalid status 'gli'"),
        ('ignore = [{package = "x"}]\n', "'reason' is required"),
        ('ignore = [{package = "x", reason = "r", expires = "soon"}]\n', "is not a date"),
        ('ignore = [{package = "x", reason = "r", until = 2027-01-01}]\n', "unknown key 'until'"),
        ('ignore = "x"\n', "expected an array"),
        ("targets = 3\n", "expected an array"),
    ],
)
def test_a_bad_policy_is_an_error_naming_the_file(
    tmp_path: Path, policy: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, policy)
    with pytest.raises(InputError, match=message):
        load_policy(root / "pyproject.toml")
    assert main(["scan", str(root), "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ftaudit: error: ") and "pyproject.toml" in err and message in err
    assert len(err.strip().splitlines()) == 1


def test_toml_dates_are_taken(tmp_path: Path) -> None:
    root = _project(tmp_path, 'ignore = [{package = "x", reason = "r", expires = 2027-01-31}]\n')
    (rule,) = load_policy(root / "pyproject.toml").ignore
    assert rule.expires == dt.date(2027, 1, 31)
    shutil.rmtree(root)
    assert load_policy(root / "pyproject.toml").ignore == ()
