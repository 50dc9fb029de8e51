"""`ftaudit scan` end to end: real venvs, real wheels, a real index on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftaudit.cli import main
from tests.conftest import FT_TAG, GIL_TAG, FixtureWheels
from tests.helpers import toolchain
from tests.helpers.index_server import IndexServer

pytestmark = pytest.mark.ft


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the repository, whose pyproject.toml would count


FT_INSTALL = [
    ("ftfix-ready", "1.0"),
    ("ftfix-gil", "1.0"),
    ("ftfix-single", "1.0"),
    ("ftfix-runtime", "1.0"),
    ("ftfix-lib", "1.0"),
]
GIL_INSTALL = [
    ("ftfix-ready", "1.0"),
    ("ftfix-gil", "1.0"),
    ("ftfix-single", "1.0"),
    ("ftfix-runtime", "1.0"),
    ("ftfix-sdist", "1.0"),
    ("ftfix-old", "2.0"),
    ("ftfix-none", "1.0"),
]


def _venv(
    python: str, wheels: FixtureWheels, installs: list[tuple[str, str]], tag: str, where: Path
) -> Path:
    venv = toolchain.make_venv(python, where / ".venv")
    chosen = [wheels.path(n, v, tag) for n, v in installs]
    toolchain.pip_install(venv, *chosen, wheels.path("ftfix-pure", "1.0", "py3-none-any"))
    return venv


@pytest.fixture(scope="module")
def ft_venv(
    ft_python: str, fixture_wheels: FixtureWheels, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _venv(ft_python, fixture_wheels, FT_INSTALL, FT_TAG, tmp_path_factory.mktemp("ftvenv"))


@pytest.fixture(scope="module")
def gil_venv(
    gil_python: str, fixture_wheels: FixtureWheels, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _venv(
        gil_python, fixture_wheels, GIL_INSTALL, GIL_TAG, tmp_path_factory.mktemp("gilvenv")
    )


def scan_json(args: list[str], tmp_path: Path, expect_exit: int | None = None) -> dict[str, Any]:
    out = tmp_path / "report.json"
    code = main(["scan", *args, "--format", "json", "-o", str(out), "--quiet"])
    if expect_exit is not None:
        assert code == expect_exit
    return dict(json.loads(out.read_text()))


def verdicts(doc: dict[str, Any], target: str = "3.13t") -> dict[str, dict[str, Any]]:
    return {p["name"]: p["targets"][target] for p in doc["packages"]}


def test_free_threaded_venv_offline_reads_installed_binaries(ft_venv: Path, tmp_path: Path) -> None:
    doc = scan_json(["--python", str(ft_venv), "--offline"], tmp_path, expect_exit=1)
    assert doc["schema"] == "ftaudit-report/1"
    assert doc["targets"] == ["3.13t"]
    v = verdicts(doc)
    assert v["ftfix-ready"]["status"] == "ready"
    assert v["ftfix-ready"]["evidence"] == "inspected"
    assert v["ftfix-runtime"]["status"] == "ready"
    assert v["ftfix-lib"]["status"] == "ready"
    assert v["ftfix-pure"] == {**v["ftfix-pure"], "status": "ready", "evidence": "pure"}
    assert v["ftfix-gil"]["status"] == "gil"
    assert "Py_MOD_GIL_USED" in v["ftfix-gil"]["reason"]
    assert v["ftfix-single"]["status"] == "gil"
    assert doc["summary"]["3.13t"]["gil"] == 2
    lib = next(p for p in doc["packages"] if p["name"] == "ftfix-lib")
    assert lib["extensions"] == [] and lib["libraries"][0]["why"].startswith("no PyInit_")


def test_verify_an_installed_free_threaded_environment_without_touching_it(
    ft_venv: Path, ft_python: str, tmp_path: Path
) -> None:
    """--verify imports the installed files read-only (a .pth in a throwaway venv, -B)."""
    site = ft_venv.parent.parent / "lib"
    before = sorted(str(p) for p in site.rglob("*"))
    doc = scan_json(
        ["--python", str(ft_venv), "--offline", "--verify", "--ft-python", ft_python],
        tmp_path,
        expect_exit=1,
    )
    v = verdicts(doc)
    for name, status in (("ftfix-ready", "ready"), ("ftfix-gil", "gil"), ("ftfix-single", "gil")):
        assert (v[name]["status"], v[name]["evidence"]) == (status, "verified"), v[name]
    assert v["ftfix-pure"]["evidence"] == "pure"  # nothing to import
    assert sorted(str(p) for p in site.rglob("*")) == before


def test_verdicts_agree_with_the_interpreter(ft_venv: Path, tmp_path: Path) -> None:
    """The GIL state after importing each package is what the report says it is."""
    v = verdicts(scan_json(["--python", str(ft_venv), "--offline"], tmp_path))
    for name in ("ftfix-ready", "ftfix-runtime", "ftfix-gil", "ftfix-single"):
        module = name.replace("-", "_") + "._core"
        re_enabled = toolchain.gil_enabled_after_import(str(ft_venv), module)
        assert re_enabled == (v[name]["status"] != "ready"), name


def test_free_threaded_venv_online_finds_the_upgrade(
    ft_venv: Path, tmp_path: Path, index_server: IndexServer
) -> None:
    doc = scan_json(["--python", str(ft_venv), "--index-url", index_server.url], tmp_path)
    v = verdicts(doc)
    assert v["ftfix-gil"]["status"] == "upgrade"
    assert v["ftfix-gil"]["use_version"] == "2.0"
    assert v["ftfix-gil"]["artifact"] == f"ftfix_gil-2.0-{FT_TAG}.whl"
    assert v["ftfix-single"]["status"] == "gil"  # no newer release


def test_gil_venv_every_status(gil_venv: Path, tmp_path: Path, index_server: IndexServer) -> None:
    doc = scan_json(
        ["--python", str(gil_venv), "--target", "3.13t", "--index-url", index_server.url],
        tmp_path,
        expect_exit=1,
    )
    v = verdicts(doc)
    expected = {
        "ftfix-ready": ("ready", "inspected", None),
        "ftfix-runtime": ("ready", "inspected", None),
        "ftfix-pure": ("ready", "pure", None),
        "ftfix-gil": ("upgrade", "inspected", "2.0"),
        "ftfix-single": ("gil", "inspected", None),
        "ftfix-old": ("downgrade", "inspected", "1.0"),
        "ftfix-sdist": ("build", None, None),
        "ftfix-none": ("blocked", "tags", None),
    }
    for name, (status, evidence, use) in expected.items():
        assert (v[name]["status"], v[name]["evidence"], v[name]["use_version"]) == (
            status,
            evidence,
            use,
        ), (name, v[name])
    assert v["ftfix-ready"]["artifact"] == f"ftfix_ready-1.0-{FT_TAG}.whl"
    pkgs = {p["name"]: p for p in doc["packages"]}
    assert pkgs["ftfix-pure"]["required_by"] == ["ftfix-ready"]
    assert pkgs["ftfix-pure"]["direct"] is False
    assert pkgs["ftfix-ready"]["direct"] is True
    assert sum(doc["summary"]["3.13t"].values()) == len(doc["packages"])


def test_html_index_gives_the_same_answers(
    gil_venv: Path, tmp_path: Path, fixture_wheels: FixtureWheels
) -> None:
    with IndexServer(fixture_wheels.directory, html_only=True) as server:
        v = verdicts(
            scan_json(
                ["--python", str(gil_venv), "--target", "3.13t", "--index-url", server.url],
                tmp_path,
            )
        )
    assert v["ftfix-gil"]["status"] == "upgrade"
    assert v["ftfix-old"]["status"] == "downgrade"
    assert v["ftfix-sdist"]["status"] == "build"


def test_yanked_and_requires_python_releases_are_not_offered(
    gil_venv: Path, tmp_path: Path, fixture_wheels: FixtureWheels
) -> None:
    yanked = frozenset({f"ftfix_gil-2.0-{FT_TAG}.whl"})
    rp = {f"ftfix_ready-1.0-{FT_TAG}.whl": "<3.13"}
    with IndexServer(fixture_wheels.directory, yanked=yanked, requires_python=rp) as server:
        v = verdicts(
            scan_json(
                ["--python", str(gil_venv), "--target", "3.13t", "--index-url", server.url],
                tmp_path,
            )
        )
    assert v["ftfix-gil"]["status"] == "gil"
    assert v["ftfix-ready"]["status"] in ("build", "blocked")


def test_hash_mismatch_is_unknown_never_ready(
    gil_venv: Path, tmp_path: Path, fixture_wheels: FixtureWheels
) -> None:
    bad = frozenset({f"ftfix_ready-1.0-{FT_TAG}.whl"})
    with IndexServer(fixture_wheels.directory, corrupt_hash=bad) as server:
        v = verdicts(
            scan_json(
                ["--python", str(gil_venv), "--target", "3.13t", "--index-url", server.url],
                tmp_path,
            )
        )
    assert v["ftfix-ready"]["status"] == "unknown"
    assert "sha256" in v["ftfix-ready"]["reason"]


def test_unreachable_index_is_unknown_with_reason(
    gil_venv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = scan_json(
        [
            "--python",
            str(gil_venv),
            "--target",
            "3.13t",
            "--index-url",
            "http://127.0.0.1:9/simple/",
            "--fail-on",
            "unknown",
        ],
        tmp_path,
        expect_exit=2,  # not checked: incomplete, whatever --fail-on says
    )
    v = verdicts(doc)
    assert (v["ftfix-ready"]["status"], v["ftfix-ready"]["incomplete"]) == ("unknown", "network")
    assert "cannot reach 127.0.0.1:9" in v["ftfix-ready"]["reason"]
    assert v["ftfix-pure"]["status"] == "ready"  # installed files answer without an index
    assert "Traceback" not in capsys.readouterr().err


def test_offline_second_run_uses_the_cache(
    gil_venv: Path, tmp_path: Path, index_server: IndexServer
) -> None:
    args = ["--python", str(gil_venv), "--target", "3.13t", "--index-url", index_server.url]
    first = verdicts(scan_json(args, tmp_path))
    served = len(index_server.requests)
    second = verdicts(scan_json([*args, "--offline"], tmp_path))
    assert len(index_server.requests) == served
    assert {k: v["status"] for k, v in first.items()} == {k: v["status"] for k, v in second.items()}


def test_offline_without_cache_says_so(gil_venv: Path, tmp_path: Path) -> None:
    v = verdicts(
        scan_json(
            [
                "--python",
                str(gil_venv),
                "--target",
                "3.13t",
                "--offline",
                "--index-url",
                "http://127.0.0.1:9/simple/",
            ],
            tmp_path,
        )
    )
    assert v["ftfix-ready"]["status"] == "unknown"
    assert "offline" in v["ftfix-ready"]["reason"]


def test_fail_on_controls_the_exit_code(ft_venv: Path, tmp_path: Path) -> None:
    base = ["scan", "--python", str(ft_venv), "--offline", "-q", "-o", str(tmp_path / "r.txt")]
    assert main([*base, "--fail-on", "blocked"]) == 0
    assert main([*base]) == 1  # default blocked,gil
    assert main([*base, "--fail-on", "none"]) == 0


def test_table_report(ft_venv: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.txt"
    main(["scan", "--python", str(ft_venv), "--offline", "-o", str(out), "-q"])
    text = out.read_text()
    assert "ftfix-gil" in text and "ftfix-single" in text
    assert "ftfix-ready" not in text  # --quiet lists only what is not ready
    assert "Not ready" in text and "Status per target" not in text
    assert "2 packages to isolate in worker processes" in " ".join(text.split())


def test_project_directory_scans_its_venv(ft_venv: Path, tmp_path: Path) -> None:
    project = ft_venv.parents[2]  # .../ftvenvN/.venv/bin/python -> .../ftvenvN
    (project / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "1"\ndependencies = ["ftfix-gil", "ftfix-single"]\n'
    )
    doc = scan_json([str(project), "--offline"], tmp_path)
    (source,) = doc["sources"]
    assert (source["kind"], source["path"]) == ("environment", str(project / ".venv"))
    assert source["project"] == str(project)  # where import sites are listed from
    pkgs = {p["name"]: p for p in doc["packages"]}
    assert pkgs["ftfix-gil"]["direct"] is True
    assert pkgs["ftfix-ready"]["direct"] is False


def test_a_linux_scan_judges_macos_and_windows_wheels(
    gil_venv: Path, tmp_path: Path, index_server: IndexServer
) -> None:
    from fixtures.build import missing_portable_tools

    if missing_portable_tools():
        toolchain.missing(f"PE/Mach-O toolchain: {', '.join(missing_portable_tools())}")
    doc = scan_json(
        [
            "--python",
            str(gil_venv),
            "--target",
            "3.13t",
            "--platform",
            "macos-arm64,windows-amd64",
            "--index-url",
            index_server.url,
        ],
        tmp_path,
    )
    assert doc["platforms"] == ["macos-arm64", "windows-amd64"]
    pkgs = {p["name"]: p for p in doc["packages"]}
    ready = pkgs["ftfix-ready"]["targets"]["3.13t"]["by_platform"]
    assert ready["macos-arm64"]["status"] == "ready"
    assert ready["macos-arm64"]["artifact"].endswith("macosx_11_0_arm64.whl")
    assert ready["windows-amd64"]["status"] == "ready"
    assert ready["windows-amd64"]["artifact"].endswith("win_amd64.whl")
    gil = pkgs["ftfix-gil"]["targets"]["3.13t"]["by_platform"]
    assert {v["status"] for v in gil.values()} == {"gil"}
    assert "Py_MOD_GIL_USED" in gil["windows-amd64"]["reason"]
    # nothing for these platforms at all
    assert pkgs["ftfix-none"]["targets"]["3.13t"]["status"] == "blocked"


def test_inspect_a_wheel_url(
    index_server: IndexServer, fixture_wheels: FixtureWheels, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = fixture_wheels.path("ftfix-gil", "2.0", FT_TAG)
    url = index_server.url.replace("/simple/", f"/files/{wheel.name}")
    assert main(["inspect", url, "--format", "json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["artifact"] == wheel.name
    assert [e["gil"] for e in doc["extensions"]] == ["not_used"]
