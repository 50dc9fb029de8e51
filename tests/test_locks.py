"""Lockfiles made by the real tools (tests/data/locks/regenerate.py), scanned against the
fixture index they were locked against, on the same 127.0.0.1 port."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftaudit.cli import main
from tests.helpers.index_server import IndexServer

LOCKS = Path(__file__).parent / "data" / "locks"
PORT = 47391
INDEX = f"http://127.0.0.1:{PORT}/simple/"
FORMATS = {
    "uv": "uv.lock",
    "poetry": "poetry.lock",
    "pdm": "pdm.lock",
    "pipenv": "Pipfile.lock",
    "pylock": "pylock.toml",
    "requirements": "requirements.txt",
}
TARGETS = "3.13t,3.14t"
PLATFORMS = "linux-x86_64,windows-amd64"


@pytest.fixture(scope="module")
def lock_index() -> Iterator[IndexServer]:
    with IndexServer(LOCKS / "index", port=PORT) as server:
        yield server


def scan_json(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], expect: int = 0
) -> dict[str, object]:
    code = main(
        ["scan", *args, "--format", "json", "--fail-on", "none", "--cache-dir", str(tmp_path / "c")]
    )
    out, err = capsys.readouterr()
    assert code == expect, err
    doc: dict[str, object] = json.loads(out)
    return doc


def package_sets(doc: dict[str, object]) -> dict[tuple[str, str], set[str]]:
    """(target, platform) -> {name==version} installed there, as the report says."""
    out: dict[tuple[str, str], set[str]] = {}
    for pkg in doc["packages"]:  # type: ignore[attr-defined]
        for target, entry in pkg["targets"].items():
            per_platform = entry.get("by_platform") or {entry["platform"]: entry}
            for platform, verdict in per_platform.items():
                version = pkg["version"] or verdict["version"]
                out.setdefault((target, platform), set()).add(f"{pkg['name']}=={version}")
    return out


@pytest.fixture(scope="module")
def uv_sets(
    lock_index: IndexServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, set[str]]:
    tmp = tmp_path_factory.mktemp("uv")
    return {v: uv_oracle(v, tmp) for v in ("3.13", "3.14")}


def uv_oracle(python_version: str, tmp_path: Path) -> set[str]:
    """What uv itself installs from the uv.lock for a Python on linux x86_64: its own export
    of the lock, resolved without dependencies for that interpreter and platform."""
    work = tmp_path / f"uv-{python_version}"
    shutil.copytree(LOCKS / "uv", work)
    exported = subprocess.run(
        [_uv(), "export", "--frozen", "--no-hashes", "--no-emit-project", "-o", "req.txt"],
        cwd=work,
        env=_uv_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    return uv_compile(work / "req.txt", python_version, tmp_path, "--no-deps")


def uv_compile(source: Path, python_version: str, tmp_path: Path, *options: str) -> set[str]:
    """uv's own resolution of a requirements file or pyproject for CPython `python_version`
    on manylinux x86_64, against the fixture index: {name==version}."""
    compiled = subprocess.run(
        [
            _uv(),
            "pip",
            "compile",
            source.name,
            *options,
            "--python-version",
            python_version,
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--index-url",
            INDEX,
            "--no-header",
            "--no-annotate",
            "--no-progress",
        ],
        cwd=source.parent,
        env=_uv_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert compiled.returncode == 0, compiled.stderr
    return {
        line.split(";")[0].strip()
        for line in compiled.stdout.splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    }


def _uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is a test dependency: pip install -e '.[test]'"
    return uv


def _uv_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(tmp_path / "uv-cache")}


EXPECTED_COMMON = {
    "ftlk-core==1.0",
    "ftlk-util==1.1",
    "ftlk-fast==1.0",
    "ftlk-gil==1.0",
    "ftlk-extras==1.0",
    "ftlk-speedup==1.0",
}


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_every_format_gives_the_set_uv_installs(
    kind: str,
    uv_sets: dict[str, set[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = scan_json(
        [str(LOCKS / kind), "--target", TARGETS, "--platform", PLATFORMS], tmp_path, capsys
    )
    assert doc["sources"][0]["path"].endswith(FORMATS[kind])  # type: ignore[index]
    sets = package_sets(doc)
    # Checked against uv's own evaluation of its lock for 3.14 and 3.13 on Linux.
    assert sets[("3.14t", "linux-x86_64")] == uv_sets["3.14"]
    assert sets[("3.13t", "linux-x86_64")] == uv_sets["3.13"]
    # The package only needed on Windows, and the one excluded from 3.14 on.
    assert sets[("3.14t", "linux-x86_64")] == EXPECTED_COMMON
    assert sets[("3.13t", "linux-x86_64")] == EXPECTED_COMMON | {"ftlk-legacy==1.0"}
    assert sets[("3.14t", "windows-amd64")] == EXPECTED_COMMON | {"ftlk-win==1.0"}
    assert sets[("3.13t", "windows-amd64")] == EXPECTED_COMMON | {
        "ftlk-win==1.0",
        "ftlk-legacy==1.0",
    }


def _verdicts(doc: dict[str, object]) -> dict[str, dict[str, object]]:
    return {p["name"]: p for p in doc["packages"]}  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_locked_artifacts_are_judged(
    kind: str, lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = scan_json(
        [str(LOCKS / kind), "--target", "3.14t", "--platform", "linux-x86_64"], tmp_path, capsys
    )
    pkgs = _verdicts(doc)
    fast = pkgs["ftlk-fast"]["targets"]["3.14t"]  # type: ignore[index]
    assert fast["status"] == "ready"
    assert fast["artifact"] == "ftlk_fast-1.0-cp314-cp314t-manylinux_2_17_x86_64.whl"
    gil = pkgs["ftlk-gil"]["targets"]["3.14t"]  # type: ignore[index]
    assert (gil["status"], gil["use_version"]) == ("upgrade", "2.0")
    assert pkgs["ftlk-core"]["targets"]["3.14t"]["evidence"] == "pure"  # type: ignore[index]


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_graph(
    kind: str, lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every format gives who requires whom: from the lock's edges, pip-compile's `# via`,
    or, for Pipfile.lock and uv's pylock.toml (no edges), each package's own metadata."""
    pkgs = _verdicts(scan_json([str(LOCKS / kind), "--target", "3.14t"], tmp_path, capsys))
    assert pkgs["ftlk-util"]["required_by"] == ["ftlk-core"]
    assert pkgs["ftlk-speedup"]["required_by"] == ["ftlk-extras"]
    assert pkgs["ftlk-util"]["direct"] is False
    assert pkgs["ftlk-core"]["direct"] is True
    assert pkgs["ftlk-gil"]["direct"] is True


def test_why_shows_the_chain(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "scan",
            str(LOCKS / "uv"),
            "--why",
            "ftlk_util",
            "--target",
            "3.14t",
            "-q",
            "--cache-dir",
            str(tmp_path),
        ]
    )
    _out, err = capsys.readouterr()
    assert code == 0  # ftlk-gil is "upgrade": not in the default --fail-on
    assert "project -> ftlk-core -> ftlk-util" in err


# sha256 of ftlk_fast-1.0-cp314-cp314t-manylinux_2_17_x86_64.whl, as every lock pins it
FAST_314T_SHA256 = "9ec00e379e752e4af1e2be3921de209f7d1c038c48c32455d5e4b52b441eaff2"


def _with_fast_hash(source: Path, lockname: str, digest: str, tmp_path: Path) -> Path:
    """A copy of a fixture project whose lock pins another sha256 for ftlk-fast's cp314t
    wheel."""
    project = tmp_path / "p"
    shutil.copytree(source, project)
    lock = project / lockname
    text = lock.read_text()
    assert f"sha256:{FAST_314T_SHA256}" in text
    lock.write_text(text.replace(f"sha256:{FAST_314T_SHA256}", f"sha256:{digest}"))
    return project


def test_tampered_lock_hash_is_an_error_for_that_package(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _with_fast_hash(LOCKS / "uv", "uv.lock", "0" * 64, tmp_path)
    # An integrity failure leaves the package unchecked: the run is incomplete (exit 2).
    pkgs = _verdicts(scan_json([str(project), "--target", "3.14t"], tmp_path, capsys, expect=2))
    fast = pkgs["ftlk-fast"]["targets"]["3.14t"]  # type: ignore[index]
    assert fast["status"] == "unknown" and fast["incomplete"] is not None
    assert "does not match the expected" in fast["reason"]
    assert pkgs["ftlk-core"]["targets"]["3.14t"]["status"] == "ready"  # type: ignore[index]


def test_lock_without_urls_checks_the_index_hash(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _with_fast_hash(LOCKS / "poetry", "poetry.lock", "1" * 64, tmp_path)
    pkgs = _verdicts(scan_json([str(project), "--target", "3.14t"], tmp_path, capsys, expect=2))
    fast = pkgs["ftlk-fast"]["targets"]["3.14t"]  # type: ignore[index]
    assert (fast["status"], fast["incomplete"]) == ("unknown", "integrity")
    assert "the lock pins" in fast["reason"] and "1111" in fast["reason"]


@pytest.mark.parametrize("source", ["requirements.in", "pyproject.toml"])
def test_unlocked_requirements_are_resolved_as_uv_resolves_them(
    source: str,
    lock_index: IndexServer,
    uv_sets: dict[str, set[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No lock: ftaudit follows each requirement's own dependencies (ftlk-core pulls in
    ftlk-util, ftlk-extras[speed] pulls in ftlk-speedup) per target, as uv resolves them."""
    work = tmp_path / "project"
    work.mkdir()
    origin = LOCKS / ("requirements" if source == "requirements.in" else "uv") / source
    shutil.copy(origin, work / source)
    args = ["-r", str(work / source)] if source == "requirements.in" else [str(work)]
    doc = scan_json(
        [*args, "--index-url", INDEX, "--target", TARGETS, "--platform", PLATFORMS],
        tmp_path,
        capsys,
    )
    sets = package_sets(doc)
    for version in ("3.13", "3.14"):
        expected = uv_compile(work / source, version, tmp_path)
        assert sets[(f"{version}t", "linux-x86_64")] == expected == uv_sets[version]
    assert "ftlk-win==1.0" in sets[("3.14t", "windows-amd64")]
    pkgs = _verdicts(doc)
    assert pkgs["ftlk-gil"]["version"] == "1.0" and pkgs["ftlk-gil"]["locked"] is True
    util = pkgs["ftlk-util"]
    assert util["locked"] is False and util["required_by"] == ["ftlk-core"]
    assert util["direct"] is False and pkgs["ftlk-core"]["direct"] is True
    assert "not locked: 1.1 is the newest" in util["targets"]["3.14t"]["reason"]  # type: ignore[index]
    assert any("not locked" in n for n in doc["notes"])  # type: ignore[attr-defined]
    # Dependencies came from the index's PEP 658 metadata files, not from the wheels.
    asked = [r for r in lock_index.requests if "ftlk_core" in r]
    assert any(r.endswith(".whl.metadata") for r in asked)


@pytest.mark.parametrize("core_metadata", [True, False])
def test_dependencies_from_an_html_index_with_and_without_pep_658(
    core_metadata: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    (work / "requirements.in").write_text("ftlk-core\nftlk-extras[speed]\n")
    with IndexServer(LOCKS / "index", html_only=True, core_metadata=core_metadata) as server:
        doc = scan_json(
            ["-r", str(work / "requirements.in"), "--index-url", server.url, "--target", "3.14t"],
            tmp_path,
            capsys,
        )
    names = {p["name"] for p in doc["packages"]}  # type: ignore[attr-defined]
    assert names == {"ftlk-core", "ftlk-util", "ftlk-extras", "ftlk-speedup"}
    metadata_files = [r for r in server.requests if r.endswith(".metadata")]
    assert bool(metadata_files) == core_metadata


def test_directory_prefers_the_lockfile_and_says_so(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "p"
    shutil.copytree(LOCKS / "uv", project)
    (project / "requirements.txt").write_text("ftlk-win\n")
    code = main(
        [
            "scan",
            str(project),
            "--target",
            "3.14t",
            "--cache-dir",
            str(tmp_path / "c"),
            "--fail-on",
            "none",
        ]
    )
    _out, err = capsys.readouterr()
    assert code == 0
    assert "uv.lock (lock)" in err


def test_several_lockfiles_are_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(LOCKS / "uv" / "uv.lock", tmp_path)
    shutil.copy(LOCKS / "poetry" / "poetry.lock", tmp_path)
    assert main(["scan", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "several lockfiles (poetry.lock, uv.lock)" in err and "--lockfile" in err
    assert "Traceback" not in err


def test_lockfile_option_chooses_one(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(LOCKS / "uv" / "uv.lock", tmp_path)
    shutil.copy(LOCKS / "poetry" / "poetry.lock", tmp_path)
    shutil.copy(LOCKS / "poetry" / "pyproject.toml", tmp_path)
    doc = scan_json(
        [str(tmp_path), "--lockfile", str(tmp_path / "poetry.lock"), "--target", "3.14t"],
        tmp_path,
        capsys,
    )
    (source,) = doc["sources"]  # type: ignore[misc]
    assert (source["kind"], source["path"]) == ("poetry.lock", str(tmp_path / "poetry.lock"))


def test_poetry_lock_2_0_is_read_from_the_project_roots(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lock-version 2.0 has no per-package markers: the packages are reached from
    pyproject.toml's requirements through the lock's edges. The 2.0 file is Poetry's 2.1
    output without what 2.1 added (the markers and groups of each package)."""
    project = tmp_path / "p"
    shutil.copytree(LOCKS / "poetry", project)
    lock = project / "poetry.lock"
    lines = [
        line
        for line in lock.read_text().splitlines()
        if not line.startswith(("markers = ", "groups = "))
    ]
    lock.write_text("\n".join(lines).replace('lock-version = "2.1"', 'lock-version = "2.0"'))
    doc = scan_json([str(project), "--target", TARGETS, "--platform", PLATFORMS], tmp_path, capsys)
    sets = package_sets(doc)
    assert sets[("3.14t", "linux-x86_64")] == EXPECTED_COMMON
    assert sets[("3.13t", "windows-amd64")] == EXPECTED_COMMON | {
        "ftlk-win==1.0",
        "ftlk-legacy==1.0",
    }
    pkgs = _verdicts(doc)
    assert pkgs["ftlk-speedup"]["required_by"] == ["ftlk-extras"]


def test_an_abi3_only_release_says_why_it_does_not_install(
    lock_index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ftlk-fast 1.0 has cp313t and cp314t wheels and an abi3 one: 3.15t cannot load abi3."""
    (tmp_path / "requirements.txt").write_text("ftlk-fast==1.0\n")
    doc = scan_json(
        [str(tmp_path), "--index-url", INDEX, "--target", "3.14t,3.15t"], tmp_path, capsys
    )
    (pkg,) = doc["packages"]  # type: ignore[misc]
    assert pkg["targets"]["3.14t"]["status"] == "ready"
    v315 = pkg["targets"]["3.15t"]
    assert v315["status"] == "blocked"
    assert "its abi3 wheels do not load on a free-threaded interpreter" in v315["reason"]
