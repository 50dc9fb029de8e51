"""--verify: real imports in the free-threaded interpreter, on fixture wheels that declare,
do not declare, crash on import and hang on import."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ftaudit.cli import main
from ftaudit.inspect import artifact
from ftaudit.model import (
    Dependency,
    Evidence,
    Extension,
    Gil,
    Library,
    PackageReport,
    Report,
    Status,
    Verdict,
)
from ftaudit.targets import parse_targets, this_platform
from ftaudit.verify import CRASHED, NOT_USED, REENABLED, Outcome, apply_outcomes
from tests.helpers.index_server import IndexServer

pytestmark = pytest.mark.ft
T313 = parse_targets("3.13t")[0]


def _children_importing(name: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "FTAUDIT-VERIFY" in line and name in line]


def test_verify_imports_each_module_in_the_free_threaded_interpreter(
    ft_python: str,
    index_server: IndexServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text(
        "ftfix-ready==1.0\nftfix-single==1.0\nftfix-crash==1.0\nftfix-hang==1.0\n"
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where the temporary venv goes
    out = tmp_path / "report.json"
    code = main(
        [
            "scan",
            str(project),
            "--target",
            "3.13t",
            "--index-url",
            index_server.url,
            "--verify",
            "--ft-python",
            ft_python,
            "--verify-timeout",
            "10",
            "--format",
            "json",
            "-o",
            str(out),
            "--fail-on",
            "none",
        ]
    )
    assert code == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    v = {p["name"]: p["targets"]["3.13t"] for p in doc["packages"]}
    assert (v["ftfix-ready"]["status"], v["ftfix-ready"]["evidence"]) == ("ready", "verified")
    assert "the GIL stayed off" in v["ftfix-ready"]["reason"]
    assert (v["ftfix-single"]["status"], v["ftfix-single"]["evidence"]) == ("gil", "verified")
    assert "ftfix_single._core re-enabled the GIL" in v["ftfix-single"]["reason"]
    # Declared not_used, but the interpreter cannot get through the import: never "ready".
    assert v["ftfix-crash"]["status"] == "unknown"
    assert "crashed (killed by signal 6" in v["ftfix-crash"]["reason"]
    assert v["ftfix-hang"]["status"] == "unknown"
    assert "timed out (still importing after 10 s)" in v["ftfix-hang"]["reason"]
    # Nothing left behind: no temporary environment, no child still importing.
    assert list(scratch.iterdir()) == []
    assert _children_importing("ftfix_hang") == []


def test_verify_refuses_an_interpreter_with_the_gil(
    gil_python: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "requirements.txt").write_text("ftfix-ready==1.0\n")
    code = main(["scan", str(tmp_path), "--verify", "--ft-python", gil_python, "--offline"])
    assert code == 2
    assert "not a free-threaded build" in capsys.readouterr().err


def _static_report(*verdicts: tuple[str, Status, str | None]) -> Report:
    """A report of packages NAME 1.0, each with one static verdict for 3.13t here:
    (name, status, use_version)."""
    platform = this_platform()
    packages = []
    for name, status, use_version in verdicts:
        verdict = Verdict(
            target=T313,
            platform=platform,
            status=status,
            evidence=Evidence.INSPECTED,
            reason="static",
            artifact=f"{name}-1.0.whl",
            use_version=use_version,
        )
        dep = Dependency(name=name, display_name=name, version="1.0")
        packages.append(PackageReport(dependency=dep, verdicts=(verdict,)))
    return Report(
        tool_version="0",
        targets=(T313,),
        platforms=(platform,),
        sources=(),
        packages=tuple(packages),
    )


def test_disagreements_are_called_out() -> None:
    platform = this_platform()
    report = _static_report(
        ("a", Status.READY, None), ("b", Status.GIL, None), ("c", Status.READY, None)
    )
    verified = apply_outcomes(
        report,
        {
            "a": [Outcome("a._x", REENABLED, "GIL re-enabled")],
            "b": [Outcome("b._x", NOT_USED)],
            "c": [Outcome("c._x", NOT_USED), Outcome("c._y", CRASHED, "signal 11")],
        },
        T313,
        platform,
        "python3.13t",
    )
    got = {p.dependency.name: p.verdicts[0] for p in verified.packages}
    assert got["a"].status is Status.GIL and got["a"].evidence is Evidence.VERIFIED
    assert got["b"].status is Status.READY and "static reading said gil" in got["b"].reason
    assert got["c"].status is Status.UNKNOWN and "c._y crashed" in got["c"].reason
    disagree = [n for n in verified.notes if "DISAGREES" in n]
    assert len(disagree) == 3 and any("for a on 3.13t" in n for n in disagree)
    assert "verified with python3.13t" in got["a"].reason


def test_verify_agrees_with_the_static_verdicts_on_the_fixture_project(
    ft_python: str, index_server: IndexServer, tmp_path: Path
) -> None:
    """The assessment project (a package that needs the GIL, one to upgrade, one only as an
    sdist, ...): importing for real changes no verdict, only its evidence."""
    from tests.test_advice import REQUIREMENTS

    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text(REQUIREMENTS)

    def scan(*extra: str) -> dict[str, Any]:
        out = tmp_path / "report.json"
        args = ["scan", str(project), "--target", "3.13t", "--index-url", index_server.url]
        main([*args, "--format", "json", "-o", str(out), "--fail-on", "none", *extra])
        return dict(json.loads(out.read_text()))

    static = scan()
    verified = scan("--verify", "--ft-python", ft_python)
    statuses = {p["name"]: p["targets"]["3.13t"]["status"] for p in static["packages"]}
    assert statuses == {p["name"]: p["targets"]["3.13t"]["status"] for p in verified["packages"]}
    evidence = {p["name"]: p["targets"]["3.13t"]["evidence"] for p in verified["packages"]}
    assert evidence["ftfix-single"] == "verified"
    assert not any("DISAGREES" in n for n in verified["notes"])


def test_an_unproven_verdict_is_settled_by_the_import() -> None:
    """`unknown` from a binary the reader could not prove is what --verify is for: the
    import decides, and a newer ready release it offered becomes the upgrade when the
    current one re-enables the GIL."""
    platform = this_platform()
    report = _static_report(
        ("a", Status.UNKNOWN, "2.0"), ("b", Status.UNKNOWN, "2.0"), ("c", Status.UNKNOWN, None)
    )
    verified = apply_outcomes(
        report,
        {
            "a": [Outcome("a._x", NOT_USED)],
            "b": [Outcome("b._x", REENABLED, "GIL re-enabled")],
            "c": [Outcome("c._x", REENABLED, "GIL re-enabled")],
        },
        T313,
        platform,
        "python3.13t",
    )
    got = {p.dependency.name: p.verdicts[0] for p in verified.packages}
    assert (got["a"].status, got["a"].use_version) == (Status.READY, None)
    assert "the static reading said unknown" in got["a"].reason
    assert (got["b"].status, got["b"].use_version) == (Status.UPGRADE, "2.0")
    assert got["c"].status is Status.GIL
    assert all(v.evidence is Evidence.VERIFIED for v in got.values())


def test_verify_imports_a_module_the_reader_could_not_prove(
    ft_python: str,
    index_server: IndexServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The advice for an unproven `unknown` is --verify: it must import it. The reader is
    made unable to prove ftfix-ready's module; the import in 3.13t decides."""
    real = artifact.inspect_binary

    def unproven(path: str, data: bytes, pool: Any = None) -> Extension | Library:
        found = real(path, data, pool)
        if isinstance(found, Extension) and found.module.startswith("ftfix_ready"):
            return replace(found, gil=Gil.UNKNOWN, detail="made unprovable by this test")
        return found

    monkeypatch.setattr(artifact, "inspect_binary", unproven)
    (tmp_path / "requirements.txt").write_text("ftfix-ready==1.0\n")
    common = ["scan", str(tmp_path), "--target", "3.13t", "--index-url", index_server.url]
    common += ["--format", "json", "--fail-on", "none"]
    for extra, expected in (([], ("unknown", "inspected")), (["--verify"], ("ready", "verified"))):
        out = tmp_path / "report.json"
        assert main([*common, *extra, "--ft-python", ft_python, "-o", str(out)]) == 0
        doc = json.loads(out.read_text())
        v = next(p for p in doc["packages"] if p["name"] == "ftfix-ready")["targets"]["3.13t"]
        assert (v["status"], v["evidence"]) == expected, v["reason"]
    assert "the static reading said unknown" in v["reason"]
