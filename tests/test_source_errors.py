"""Malformed and hostile project sources: one clear line naming the file, exit 2, nothing
partial reported as complete. And the requirements parser on everything pip accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftaudit.cli import main
from ftaudit.errors import InputError
from ftaudit.sources.requirements import read_requirements

LOCKS = Path(__file__).parent / "data" / "locks"


def _fails(args: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    code = main(["scan", *args, "--offline", "--target", "3.14t"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""  # nothing partial on standard output
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ftaudit: error: "), err
    for needle in needles:
        assert needle in err, err
    assert "Traceback" not in err
    return err


def _copy(kind: str, name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    dest.write_bytes((LOCKS / kind / name).read_bytes())
    return dest


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("uv", "uv.lock"),
        ("poetry", "poetry.lock"),
        ("pdm", "pdm.lock"),
        ("pipenv", "Pipfile.lock"),
        ("pylock", "pylock.toml"),
    ],
)
def test_truncated_lockfile(
    kind: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _copy(kind, name, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 - 7])
    _fails([str(path)], capsys, str(path))


# A wrong lock version, then fields that are missing, mistyped or malformed.
EDITS = [
    ("uv", "uv.lock", "version = 1\n", "version = 7\n", "lock version 7 is not supported"),
    ("poetry", "poetry.lock", 'lock-version = "2.1"', 'lock-version = "9.0"', "9.0"),
    ("pdm", "pdm.lock", 'lock_version = "4.5.1"', 'lock_version = "3.0"', "3.0"),
    ("pipenv", "Pipfile.lock", '"pipfile-spec": 6', '"pipfile-spec": 99', "pipfile-spec 99"),
    ("pylock", "pylock.toml", 'lock-version = "1.0"', 'lock-version = "2.0"', "2.0"),
    ("uv", "uv.lock", 'name = "ftlk-core"', 'nom = "ftlk-core"', "missing 'name'"),
    ("uv", "uv.lock", 'version = "1.0"', "version = [1]", "'version' should be a str"),
    ("poetry", "poetry.lock", 'version = "1.0"', 'version = "one"', "invalid version"),
    ("pdm", "pdm.lock", 'marker = "python_version', 'marker = "python_versio', "marker"),
    ("pipenv", "Pipfile.lock", '"sha256:', '"sha256:zz', "invalid hash"),
    ("pylock", "pylock.toml", 'name = "ftlk-core"', "name = 3", "name"),
]


@pytest.mark.parametrize(("kind", "name", "old", "new", "needle"), EDITS)
def test_edited_lockfile(
    kind: str,
    name: str,
    old: str,
    new: str,
    needle: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _copy(kind, name, tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    _fails([str(path)], capsys, str(path), needle)


def test_unknown_keys_are_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy("uv", "uv.lock", tmp_path)
    path.write_text(path.read_text() + '\n[future-table]\nsomething = "new"\n')
    code = main(
        [
            "scan",
            str(path),
            "--offline",
            "--target",
            "3.14t",
            "--format",
            "json",
            "--fail-on",
            "none",
            "--allow-incomplete",  # offline, with nothing cached: no package is checked
            "--cache-dir",
            str(tmp_path / "c"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(json.loads(out)["packages"]) == 6  # linux 3.14t: no ftlk-win, no ftlk-legacy


def test_not_json_pipfile_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Pipfile.lock"
    path.write_text("[1, 2")
    _fails([str(path)], capsys, str(path), "invalid JSON")


def test_requirements_include_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\nsix\n")
    (tmp_path / "b.txt").write_text("-r a.txt\n")
    _fails(["-r", str(tmp_path / "a.txt")], capsys, "include cycle", "a.txt -> ")


def test_requirements_huge_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("six\n" + "x" * (10 * 1024 * 1024) + "\n")
    _fails(["-r", str(path)], capsys, f"{path}:2", "longer than")


def test_requirements_bad_line_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("six\n\nnumpy>=>2\n")
    _fails([str(path)], capsys, f"{path}:3", "invalid requirement")


def test_pyproject_bad_group_include(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[dependency-groups]\ndev = [{include-group = "missing"}]\n')
    _fails([str(path)], capsys, str(path), "'missing'")


# --- the requirements parser ---------------------------------------------------------------


def test_requirements_syntax(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTAUDIT_TEST_VERSION", "2.0")
    (tmp_path / "constraints.txt").write_text("urllib3<3\n")
    (tmp_path / "base.txt").write_text("idna==3.10  # a comment\n")
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "pyproject.toml").write_text('[project]\nname = "Local-Pkg"\n')
    req = tmp_path / "requirements.txt"
    req.write_text(
        "--index-url https://mirror.invalid/simple\n"
        "--extra-index-url=https://extra.invalid/simple\n"
        "-c constraints.txt\n"
        "-r base.txt\n"
        "# comment line\n"
        "requests[socks,security] >= 2.0 ; python_version >= '3.8'  \\\n"
        "    --hash=sha256:AAAA \\\n"
        "    --hash sha256:bbbb\n"
        "pkg==${FTAUDIT_TEST_VERSION}\n"
        "-e ./local\n"
        "https://files.invalid/p/thing-1.2-py3-none-any.whl ; sys_platform == 'win32'\n"
        "git+https://git.invalid/repo.git@v1#egg=from-git\n"
        "named @ https://files.invalid/named-1.0.tar.gz\n"
        "--prefer-binary\n"
    )
    got = read_requirements([req])
    assert got.index_url == "https://mirror.invalid/simple"
    assert got.extra_index_urls == ("https://extra.invalid/simple",)
    by_name = {r.name: r for r in got.requested}
    assert by_name["urllib3"].constraint is True
    assert by_name["idna"].requirement == "idna==3.10"
    requests = by_name["requests"]
    assert requests.requirement == 'requests[security,socks]>=2.0; python_version >= "3.8"'
    assert requests.hashes == (("sha256", "aaaa"), ("sha256", "bbbb"))
    assert requests.origin == f"{req}:6"
    assert by_name["pkg"].requirement == "pkg==2.0"
    assert by_name["local-pkg"].editable is True
    assert by_name["thing"].requirement.endswith('; sys_platform == "win32"')
    assert by_name["from-git"].requirement.startswith("from-git @ git+https://")
    assert by_name["named"].requirement == "named @ https://files.invalid/named-1.0.tar.gz"
    assert len(got.files) == 3


def test_requirements_unknown_option(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("six\n--frobnicate\n")
    with pytest.raises(InputError, match=r"r.txt:2: unknown option '--frobnicate'"):
        read_requirements([req])


def test_requirements_unnamed_url(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("https://files.invalid/archive/main\n")
    with pytest.raises(InputError, match="#egg=<name>"):
        read_requirements([req])
