"""Which part of a lock is audited: what the lock's own tool installs by default, checked
against that tool's own export or dry run (tests/data/locks/regenerate.py made the locks
and, for the tools that are not test dependencies, recorded their output beside them)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ftaudit.cli import main
from tests.helpers.index_server import IndexServer
from tests.test_locks import INDEX, LOCKS, _uv, _uv_env, lock_index, package_sets, uv_compile

__all__ = ["lock_index"]  # the module-scoped index on the port the locks name

LINUX_313 = ("3.13t", "linux-x86_64")


def scan(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], expect: int = 0
) -> dict[str, Any]:
    import json

    code = main(
        [
            "scan",
            *args,
            "--format",
            "json",
            "--fail-on",
            "none",
            "--platform",
            "linux-x86_64",
            "--cache-dir",
            str(tmp_path / "c"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == expect, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def linux_313(doc: dict[str, Any]) -> set[str]:
    return package_sets(doc)[LINUX_313]


def _pins(text: str) -> set[str]:
    """name==version lines of an exported requirements file."""
    return {
        line.split(";")[0].strip()
        for line in text.splitlines()
        if re.match(r"^[A-Za-z0-9]", line) and "==" in line
    }


# --- uv: a workspace with declared conflicts, groups and a member nothing requires --------


def uv_exported(project: Path, options: list[str], tmp_path: Path) -> set[str]:
    """What uv installs from the lock on CPython 3.13, linux x86_64: its own export for
    these options, with the markers evaluated by uv for that interpreter."""
    work = tmp_path / "export"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(project, work)
    exported = subprocess.run(
        [
            _uv(),
            "export",
            "--frozen",
            "--no-hashes",
            "--no-emit-workspace",
            "-o",
            "x.txt",
            *options,
        ],
        cwd=work,
        env=_uv_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    return uv_compile(work / "x.txt", "3.13", tmp_path, "--no-deps")


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("uv-workspace", []),
        ("uv-workspace", ["--extra", "cpu"]),
        ("uv-workspace", ["--extra", "gpu"]),
        ("uv-workspace", ["--group", "docs"]),
        ("uv-workspace", ["--all-groups"]),
        ("uv-virtual-root", []),
        ("uv-virtual-root", ["--group", "lint"]),
    ],
    ids=lambda o: " ".join(o) if isinstance(o, list) else o,
)
def test_uv_workspace_set_is_what_uv_installs(
    name: str,
    options: list[str],
    lock_index: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """uv sync installs the root project with its default groups (dev and lint here) and no
    extras; cpu and gpu are declared as conflicting and fork ftlk-util and ftlk-gil: each
    selection holds one version of each, the one uv installs for it. Under a root that is
    no project, every member and the root's default groups."""
    project = LOCKS / name
    doc = scan([str(project), "--target", "3.13t", *options], tmp_path, capsys)
    assert linux_313(doc) == uv_exported(project, options, tmp_path)
    names = [p["name"] for p in doc["packages"]]
    assert len(names) == len(set(names))  # never two versions of one package
    assert not {"lib", "tool", "app"} & set(names)  # workspace members are the project


def test_uv_workspace_says_what_it_left_out(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = scan([str(LOCKS / "uv-workspace"), "--target", "3.13t"], tmp_path, capsys)
    (source,) = doc["sources"]
    assert source["selected"] == ["project app with groups dev, lint"]
    left = {(i["kind"], i["name"]): i for i in source["left_out"]}
    assert set(left) == {("extra", "cpu"), ("extra", "gpu"), ("group", "docs"), ("member", "tool")}
    assert left[("extra", "gpu")]["packages"] == ["ftlk-gil"]
    assert left[("extra", "gpu")]["include"] == "--extra gpu"
    assert left[("member", "tool")]["packages"] == ["ftlk-win"]
    (note,) = [n for n in doc["notes"] if "not audited" in n]
    assert "group docs of app (adds ftlk-extras; --group docs)" in note


@pytest.mark.parametrize(
    "options", [["--extra", "cpu", "--extra", "gpu"], ["--all-extras"]], ids=["both", "all"]
)
def test_conflicting_extras_are_an_error(
    options: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["scan", str(LOCKS / "uv-workspace"), *options, "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "extra 'cpu' of app and extra 'gpu' of app are declared as conflicting" in err
    assert "Traceback" not in err


def test_an_unknown_extra_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["scan", str(LOCKS / "uv-workspace"), "--extra", "tpu", "--cache-dir", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no extra 'tpu' in the project (its extras: cpu, gpu)" in err


# --- a lock made for another Python -------------------------------------------------------


def test_a_lock_for_another_python_says_it_does_not_cover_the_target(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Locked for ==3.12.*: uv kept no cp313t file of ftlk-fast, so its 3.13t verdict comes
    from the index, and the report says so."""
    lock = (LOCKS / "uv-py312" / "uv.lock").read_text()
    assert "cp313" not in lock and "cp310-abi3" in lock
    doc = scan([str(LOCKS / "uv-py312"), "--target", "3.13t"], tmp_path, capsys)
    (source,) = doc["sources"]
    assert (source["requires_python"], source["not_covered"]) == ("==3.12.*", ["3.13t"])
    (note,) = [n for n in doc["notes"] if "does not cover" in n]
    assert "locked for Python ==3.12.*" in note and "what the index gives" in note
    fast = next(p for p in doc["packages"] if p["name"] == "ftlk-fast")
    assert fast["targets"]["3.13t"]["status"] == "ready"
    assert fast["targets"]["3.13t"]["artifact"].startswith("ftlk_fast-1.0-cp313-cp313t")


def test_a_lock_that_covers_the_target_says_nothing_of_it(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = scan([str(LOCKS / "uv"), "--target", "3.13t"], tmp_path, capsys)
    assert doc["sources"][0]["not_covered"] == []
    assert not [n for n in doc["notes"] if "does not cover" in n]


# --- Poetry, PDM, Pipenv, pylock: against each tool's own account -------------------------


def _poetry_dry_run() -> set[str]:
    """`poetry install --dry-run` (CPython 3.11 on Linux): "Installing NAME (VERSION)"."""
    text = (LOCKS / "poetry-groups" / "poetry-install-dry-run.txt").read_text()
    found = re.findall(r"Installing (\S+) \(([^)]+)\)(:? Skipped)?", text)
    return {f"{name}=={version}" for name, version, skipped in found if not skipped}


def test_poetry_installs_non_optional_groups_and_unmarked_group_members(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ftlk-util is in `main` only on Windows but in `dev` always: installed on Linux. The
    optional `docs` group and the extra `speed` are not installed by default."""
    lock = (LOCKS / "poetry-groups" / "poetry.lock").read_text()
    assert 'markers = {main = "sys_platform == \\"win32\\""}' in lock
    doc = scan([str(LOCKS / "poetry-groups"), "--target", "3.13t"], tmp_path, capsys)
    assert linux_313(doc) == _poetry_dry_run() == {"ftlk-core==1.0", "ftlk-util==1.1"}
    left = {(i["kind"], i["name"], tuple(i["packages"])) for i in doc["sources"][0]["left_out"]}
    assert left == {("group", "docs", ("ftlk-extras",)), ("extra", "speed", ("ftlk-speedup",))}


def test_poetry_optional_group_and_extra_on_request(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(LOCKS / "poetry-groups"), "--target", "3.13t", "--group", "docs"]
    doc = scan([*args, "--extra", "speed"], tmp_path, capsys)
    assert linux_313(doc) == _poetry_dry_run() | {"ftlk-extras==1.0", "ftlk-speedup==1.0"}
    assert doc["sources"][0]["left_out"] == []


def test_pdm_installs_the_locked_groups_and_names_the_unlocked_one(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (LOCKS / "pdm-groups" / "pdm-install-dry-run.txt").read_text()
    dry_run = {f"{n}=={v}" for n, v in re.findall(r"^  - (\S+) (\S+)$", text, re.M)}
    doc = scan([str(LOCKS / "pdm-groups"), "--target", "3.13t"], tmp_path, capsys)
    assert linux_313(doc) == dry_run
    (source,) = doc["sources"]
    assert source["selected"] == ["group default", "group dev", "group lint"]
    assert [(i["kind"], i["name"]) for i in source["left_out"]] == [("group", "speed")]
    assert "pdm lock -G speed" in source["left_out"][0]["include"]


def test_pipenv_installs_the_default_category_and_names_the_custom_one(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = LOCKS / "pipenv-categories"
    requirements = _pins((project / "pipenv-requirements.txt").read_text())
    doc = scan([str(project), "--target", "3.13t"], tmp_path, capsys)
    assert linux_313(doc) == requirements
    left = {i["name"]: i["packages"] for i in doc["sources"][0]["left_out"]}
    assert left == {"develop": ["ftlk-legacy"], "typing-dev": ["ftlk-extras"]}
    (note,) = [n for n in doc["notes"] if "not audited" in n]
    assert "category typing-dev (a custom category" in note
    doc = scan([str(project), "--target", "3.13t", "--group", "typing-dev"], tmp_path, capsys)
    assert linux_313(doc) == requirements | {"ftlk-extras==1.0"}


def test_pylock_project_directory_is_not_a_dependency(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = LOCKS / "pylock-project"
    assert 'directory = { path = ".", editable = true }' in (project / "pylock.toml").read_text()
    exported = _pins((project / "uv-export.txt").read_text())
    doc = scan([str(project), "--target", "3.13t"], tmp_path, capsys)
    assert linux_313(doc) == exported
    assert "pylockproject" not in {p["name"] for p in doc["packages"]}


# --- import sites come from the source's own project ---------------------------------------


def test_import_sites_come_from_the_requirements_files_project(
    lock_index: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run from a shared folder that holds another project's code: the sites listed are
    those of the project the requirements file belongs to."""
    shared = tmp_path / "shared"
    project = shared / "proj"
    project.mkdir(parents=True)
    (shared / "other.py").write_text("import ftlk_fast\n")
    (project / "main.py").write_text("import os\nimport ftlk_fast\n")
    (project / "requirements.txt").write_text("ftlk-fast==1.0\n")
    monkeypatch.chdir(shared)
    doc = scan(
        ["-r", str(project / "requirements.txt"), "--index-url", INDEX, "--target", "3.15t"],
        tmp_path,
        capsys,
    )
    (pkg,) = doc["packages"]
    assert pkg["targets"]["3.15t"]["status"] == "blocked"  # abi3 only: sites are listed
    sites = [s["path"] for a in pkg["advice"] for s in a.get("import_sites", [])]
    assert sites == ["main.py"]
    assert doc["sources"][0]["project"] == str(project)


def _fake_venv(where: Path) -> Path:
    venv = where / ".venv"
    site = venv / "lib" / "python3.13" / "site-packages"
    site.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /nonexistent\nversion = 3.13.1\n")
    return venv


def test_an_environment_belongs_to_the_project_around_it(tmp_path: Path) -> None:
    from ftaudit.sources.detect import detect

    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "1"\n')
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "pyproject.toml").write_text('[project]\nname = "unrelated"\nversion = "1"\n')
    inside, loose = _fake_venv(project), _fake_venv(tmp_path / "envs")
    assert detect(shared, env_dir=inside, explicit=False).root == project
    assert detect(shared, env_dir=loose, explicit=False).root is None
    assert detect(shared, env_dir=loose, explicit=True).root == shared


def test_no_project_means_no_import_sites_and_says_so() -> None:
    from ftaudit.cli_scan import _with_advice
    from ftaudit.model import Dependency, PackageReport, Report, Status, Target, Verdict

    target = Target(major=3, minor=13)
    verdict = Verdict(
        target=target, platform="linux-x86_64", status=Status.GIL, evidence=None, reason="x"
    )
    dep = Dependency(name="gilpkg", display_name="gilpkg", version="1.0")
    report = Report(
        tool_version="0",
        targets=(target,),
        platforms=("linux-x86_64",),
        sources=(),
        packages=(PackageReport(dependency=dep, verdicts=(verdict,)),),
    )
    advised = _with_advice(report, None)
    assert any("import sites: none listed" in n for n in advised.notes)
    assert all(not a.import_sites for p in advised.packages for a in p.advice)
