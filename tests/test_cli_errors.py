"""Bad input: one clear line naming the file, exit code 2, never a traceback."""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path

import pytest

from ftaudit.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("ftaudit: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0]


def test_missing_artifact(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(["inspect", str(tmp_path / "nope.whl")], capsys)
    assert_clean_error(code, err, "nope.whl", "no such file")


def test_truncated_wheel(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = next((Path(__file__).parent / "data" / "wheels").glob("markupsafe-*.whl"))
    bad = tmp_path / good.name
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    code, _, err = run(["inspect", str(bad)], capsys)
    assert_clean_error(code, err, bad.name, "not a readable wheel")


def test_corrupt_binary_in_a_wheel_is_reported_not_judged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wheel = tmp_path / "demo-1.0-cp313-cp313t-linux_x86_64.whl"
    member = "demo/_x.cpython-313t-x86_64-linux-gnu.so"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member, b"\x7fELF\x02\x01\x01" + b"\0" * 40)
    code, out, err = run(["inspect", str(wheel), "--format", "json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["extensions"] == []
    assert [u["path"] for u in doc["unreadable"]] == [member]
    assert "corrupt ELF" in doc["unreadable"][0]["why"]


def test_zip_bomb_member_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    wheel = tmp_path / "bomb-1.0-cp313-cp313t-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb/_x.so", b"\0" * (64 * 1024 * 1024))
    code, out, _err = run(["inspect", str(wheel), "--format", "json"], capsys)
    assert code == 0
    assert "zip bomb" in out


def test_not_a_binary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "notes.so"
    f.write_text("INPUT(-lfoo)\n")
    code, _, err = run(["inspect", str(f)], capsys)
    assert_clean_error(code, err, "notes.so", "not an ELF")


def test_sdist_has_nothing_to_inspect(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "demo-1.0.tar.gz"
    f.write_bytes(b"\x1f\x8b" + b"\0" * 20)
    code, _, err = run(["inspect", str(f)], capsys)
    assert_clean_error(code, err, "sdist")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["scan", "--target", "3.12t"], "free-threaded CPython starts at 3.13t"),
        (["scan", "--target", "banana"], "invalid target"),
        (["scan", "--platform", "amiga"], "invalid platform"),
        (["scan", "--fail-on", "gil,sometimes"], "--fail-on: invalid status"),
        (["scan", "--python", "/nonexistent/python"], "/nonexistent/python"),
        (["scan", "--jobs", "0"], "--jobs"),
    ],
)
def test_usage_errors(
    args: list[str],
    needle: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(args, capsys)
    assert_clean_error(code, err, needle)


def test_no_environment_to_scan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(["scan", str(tmp_path)], capsys)
    assert_clean_error(code, err, str(tmp_path), "--python")


def test_malformed_pyproject(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\nname = ")
    code, _, err = run(["scan", str(tmp_path)], capsys)
    assert_clean_error(code, err, "pyproject.toml", "invalid TOML")


def test_env_dir_without_python(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(["scan", "--env", str(tmp_path)], capsys)
    assert_clean_error(code, err, str(tmp_path))


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--no-such-flag"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "exit codes" in out


def test_unwritable_output(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    wheel = next((Path(__file__).parent / "data" / "wheels").glob("markupsafe-*.whl"))
    code, _, err = run(
        ["inspect", str(wheel), "-o", str(tmp_path / "no" / "such" / "dir.txt")], capsys
    )
    assert_clean_error(code, err, "cannot write")


def test_corrupt_zip_member(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    payload = b"\x7fELF" + random.Random(0).randbytes(64 * 1024)  # incompressible
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("demo/_x.so", payload)
    data = bytearray(buf.getvalue())
    middle = len(data) // 2  # inside the member's compressed data, far from the directory
    data[middle : middle + 64] = bytes(64)
    wheel = tmp_path / "demo-1.0-cp313-cp313t-linux_x86_64.whl"
    wheel.write_bytes(bytes(data))
    code, out, err = run(["inspect", str(wheel), "--format", "json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert [u["path"] for u in doc["unreadable"]] == ["demo/_x.so"]
    assert doc["unreadable"][0]["why"].startswith("cannot read: corrupt member")
