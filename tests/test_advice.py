"""Advice: end to end on a fixture project against the local index, and the pure rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftaudit.advice import package_advice
from ftaudit.cli import main
from ftaudit.model import (
    Dependency,
    Evidence,
    ImportSite,
    Incomplete,
    PackageReport,
    Status,
    Verdict,
)
from ftaudit.targets import parse_targets
from tests.helpers.index_server import IndexServer

T313 = parse_targets("3.13t")[0]

APP = """\
import os
import ftfix_single
from ftfix_uses_single import thing


def later():
    import ftfix_none.sub
    return ftfix_none
"""

REQUIREMENTS = """\
ftfix-gil<2
ftfix-single
ftfix-uses-single
ftfix-sdist
ftfix-old==2.0
ftfix-none
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text(APP)
    (root / "app" / "broken.py").write_text("def (:\n")
    venv = root / ".venv-other" / "lib"
    venv.mkdir(parents=True)
    (root / ".venv-other" / "pyvenv.cfg").write_text("home = /usr\n")
    (venv / "ftfix_single_user.py").write_text("import ftfix_single\n")
    (root / "requirements.in").write_text(REQUIREMENTS)
    return root


def _render(project: Path, index: IndexServer, tmp_path: Path, fmt: str) -> str:
    """The fixture project scanned for 3.13t in one format; gil and blocked fail it."""
    out = tmp_path / f"report.{fmt}"
    code = main(
        [
            "scan",
            str(project),
            "-r",
            str(project / "requirements.in"),
            "--target",
            "3.13t",
            "--index-url",
            index.url,
            "--format",
            fmt,
            "-o",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--fail-on",
            "blocked,gil",
        ]
    )
    assert code == 1
    return out.read_text()


def _scan(project: Path, index: IndexServer, tmp_path: Path) -> dict[str, Any]:
    return dict(json.loads(_render(project, index, tmp_path, "json")))


@pytest.mark.ft
def test_advice_on_a_fixture_project(
    project: Path, index_server: IndexServer, tmp_path: Path
) -> None:
    doc = _scan(project, index_server, tmp_path)
    advice = {p["name"]: p["advice"] for p in doc["packages"]}
    status = {p["name"]: p["targets"]["3.13t"]["status"] for p in doc["packages"]}
    assert status == {
        "ftfix-gil": "upgrade",
        "ftfix-single": "gil",
        "ftfix-uses-single": "ready",
        "ftfix-sdist": "build",
        "ftfix-old": "downgrade",
        "ftfix-none": "blocked",
    }

    (upgrade,) = advice["ftfix-gil"]
    assert upgrade["kind"] == "upgrade" and upgrade["version"] == "2.0"
    assert "from 1.0 to >= 2.0" in upgrade["text"]
    assert "requirements.in:1 requiring ftfix-gil<2" in upgrade["text"]

    (isolate,) = advice["ftfix-single"]
    assert isolate["kind"] == "isolate" and isolate["targets"] == ["3.13t"]
    sites = [(s["path"], s["line"], s["via"]) for s in isolate["import_sites"]]
    # Directly at line 2, and through ftfix-uses-single at line 3; never inside the
    # environment in the project directory.
    assert sites == [
        ("app/main.py", 2, ["ftfix-single"]),
        ("app/main.py", 3, ["ftfix-uses-single", "ftfix-single"]),
    ]
    assert "app/main.py:2" in isolate["text"] and "PYTHON_GIL=0" in isolate["text"]
    assert "import ftfix_single" in isolate["snippet"]
    assert "_is_gil_enabled" in isolate["snippet"] and "spawn" in isolate["snippet"]

    (downgrade,) = advice["ftfix-old"]
    assert downgrade["kind"] == "downgrade" and downgrade["version"] == "1.0"
    assert "Pin ftfix-old==1.0" in downgrade["text"] and "holds back 2.0" in downgrade["text"]

    (build,) = advice["ftfix-sdist"]
    assert build["kind"] == "build" and "unknown until it is built" in build["text"]

    (replace_,) = advice["ftfix-none"]
    assert replace_["kind"] == "replace"
    assert [(s["path"], s["line"]) for s in replace_["import_sites"]] == [("app/main.py", 7)]
    assert advice["ftfix-uses-single"] == []
    assert any("1 Python files do not parse" in n and "broken.py" in n for n in doc["notes"])


def _verdict(status: Status, **kw: Any) -> Verdict:
    return Verdict(
        target=T313,
        platform="linux-x86_64",
        status=status,
        evidence=Evidence.INSPECTED,
        reason="r",
        **kw,
    )


def _pkg(verdict: Verdict, **kw: Any) -> PackageReport:
    dep = Dependency(name="demo", display_name="Demo", version="3.0", **kw)
    return PackageReport(dependency=dep, verdicts=(verdict,))


def test_a_years_old_wheel_only_fallback_is_called_a_trap() -> None:
    old = _verdict(
        Status.DOWNGRADE,
        use_version="0.0.1",
        use_version_date="2019-01-02T00:00:00Z",
        version_date="2025-06-01T00:00:00Z",
        held_back=(("3.0", "2025-06-01T00:00:00Z"), ("1.0", None)),
    )
    kinds = {a.kind: a for a in package_advice(_pkg(old), {}, {})}
    assert set(kinds) == {"downgrade", "resolver-trap"}
    assert "from 2019-01-02, 6 years older than 3.0" in kinds["resolver-trap"].text
    assert "3.0 (2025-06-01), 1.0" in kinds["downgrade"].text

    recent = _verdict(
        Status.DOWNGRADE,
        use_version="2.9",
        use_version_date="2025-01-02T00:00:00Z",
        version_date="2025-06-01T00:00:00Z",
    )
    assert [a.kind for a in package_advice(_pkg(recent), {}, {})] == ["downgrade"]


def test_a_pre_release_upgrade_is_said_and_ready_needs_nothing() -> None:
    pre = _verdict(Status.UPGRADE, use_version="4.0rc1")
    kinds = [a.kind for a in package_advice(_pkg(pre), {}, {})]
    assert kinds == ["upgrade", "resolver-trap"]
    assert package_advice(_pkg(_verdict(Status.READY)), {}, {}) == ()


def test_upgrade_names_every_requirement_that_excludes_it() -> None:
    verdict = _verdict(Status.UPGRADE, use_version="4.0")
    pkg = _pkg(verdict, requirements=(("other", "<4"), ("project", ">=2"), ("x", "!=4.0")))
    (advice,) = package_advice(pkg, {}, {})
    assert "Blocked by other requiring Demo<4; x requiring Demo!=4.0: they" in advice.text


def test_isolate_without_own_imports_names_who_brings_it() -> None:
    verdict = _verdict(Status.GIL)
    pkg = _pkg(verdict, required_by=("parent",), direct=False)
    site = ImportSite(path="a.py", line=1, module="os")
    (advice,) = package_advice(pkg, {}, {"os": [site]})
    assert advice.import_sites == ()
    assert "comes in through parent" in advice.text


@pytest.mark.ft
def test_every_format_shows_the_same_verdicts(
    project: Path, index_server: IndexServer, tmp_path: Path
) -> None:
    doc = _scan(project, index_server, tmp_path)
    expected = {p["display_name"]: p["targets"]["3.13t"]["status"] for p in doc["packages"]}

    md = _render(project, index_server, tmp_path, "markdown")
    assert "| 3.13t | 1 | 1 | 1 | 1 | 1 | 1 | 0 |" in md
    assert "**3.13t**: not ready: 2 package(s) block the move" in md
    blockers = md.index("## Blockers")
    changes = md.index("## Needs a version change")
    for name, status in expected.items():
        if status in ("blocked", "gil"):
            assert blockers < md.index(f"### {name} ") < changes, name
        elif status != "ready":
            assert changes < md.index(f"### {name} "), name
        assert f"3.13t: **{status}" in md or f"| {name} |" in md, name
    assert (
        "`app/main.py:3` imports `ftfix_uses_single` (via ftfix-uses-single → ftfix-single)" in md
    )
    assert "```python" in md and "project → ftfix-uses-single → ftfix-single" in md

    table = _render(project, index_server, tmp_path, "table")
    for name, status in expected.items():
        row = next(line for line in table.splitlines() if line.startswith(f"│ {name} "))
        assert f"│ {status}" in row, (name, row)

    gh = _render(project, index_server, tmp_path, "github").splitlines()
    found = {}
    for line in gh:
        if line.startswith("::notice"):
            continue
        level, _, rest = line[2:].partition(" ")
        props, _, _message = rest.partition("::")
        title = dict(p.split("=", 1) for p in props.split(","))["title"]
        name = title.split(" ", 1)[0]
        found[name] = (level, title.split("%3A ")[1].split(" on ")[0])
        assert "requirements.in" in props
    assert found == {
        name: ("error" if status in ("blocked", "gil") else "warning", status)
        for name, status in expected.items()
        if status != "ready"
    }
    assert gh[-1].startswith("::notice title=ftaudit::3.13t: 1 ready, 1 gil")


@pytest.mark.ft
def test_upgrade_names_the_first_ready_release(
    ft_python: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1.0 and 1.5 need the GIL, 2.0 and later do not: the advice says >= 2.0, found by
    halving (not by inspecting every release)."""
    from tests.conftest import FT_TAG, NOT_USED, USED, _ext_wheel

    index_dir = tmp_path / "index"
    for version, variant in (("1.0", USED), ("1.5", USED), ("2.0", NOT_USED), ("2.5", NOT_USED)):
        _ext_wheel(index_dir, tmp_path / "build", ft_python, FT_TAG, "ftfirst", version, variant)
    _ext_wheel(index_dir, tmp_path / "build", ft_python, FT_TAG, "ftfirst", "3.0", NOT_USED)
    (tmp_path / "requirements.txt").write_text("ftfirst==1.0\n")
    with IndexServer(index_dir) as server:
        out = tmp_path / "report.json"
        args = ["scan", str(tmp_path), "--target", "3.13t", "--index-url", server.url]
        assert main([*args, "--format", "json", "-o", str(out)]) == 0
        fetched = [r for r in server.requests if r.startswith("/files/") and "metadata" not in r]
    doc = json.loads(out.read_text())
    (pkg,) = doc["packages"]
    verdict = pkg["targets"]["3.13t"]
    assert (verdict["use_version"], verdict["first_ready"]) == ("3.0", "2.0")
    (advice,) = pkg["advice"]
    assert advice["version"] == "2.0"
    assert "to >= 2.0" in advice["text"]
    assert "oldest release confirmed ready: 2.0; newest: 3.0" in advice["text"]
    assert len(fetched) < 5  # 1.0 and 3.0, then at most two probes among 1.5, 2.0, 2.5


def test_a_ready_package_with_a_free_threading_classifier_gets_a_note() -> None:
    ready = _verdict(Status.READY)
    dep = Dependency(name="demo", display_name="Demo", version="3.0")
    claim = "Programming Language :: Python :: Free Threading :: 3 - Stable"
    pkg = PackageReport(dependency=dep, verdicts=(ready,), classifiers=(claim,))
    (note,) = package_advice(pkg, {}, {})
    assert note.kind == "note" and claim in note.text
    plain = PackageReport(dependency=dep, verdicts=(ready,), classifiers=("License :: OSI",))
    assert package_advice(plain, {}, {}) == ()


@pytest.mark.parametrize(
    ("incomplete", "says", "never"),
    [
        (None, "--verify", "--offline"),
        (Incomplete.OFFLINE, "without --offline", "--verify"),
        (Incomplete.NETWORK, "when it is reachable", "--verify"),
        (Incomplete.INTEGRITY, "digest", "--verify"),
    ],
)
def test_unknown_advice_follows_why_it_is_unknown(
    incomplete: Incomplete | None, says: str, never: str
) -> None:
    """Only a binary the reader could not prove is a case for --verify; a run that failed
    to check a package is told how to complete it."""
    verdict = _verdict(Status.UNKNOWN, incomplete=incomplete)
    (advice,) = package_advice(_pkg(verdict), {}, {})
    assert advice.kind == "verify"
    assert says in advice.text
    assert never not in advice.text


def test_build_advice_names_the_languages_of_the_sdist_it_read() -> None:
    from ftaudit.assess import source_languages

    notes = ("src/core.c (C)", "src/_x.pyx (Cython)", "Cargo.toml (Cargo)", "setup.py: Extension")
    assert source_languages(notes) == ("C", "Cython", "Rust")
    (read,) = package_advice(_pkg(_verdict(Status.BUILD, build_languages=("C", "Cython"))), {}, {})
    assert "compilers for its sources (C, Cython)" in read.text
    assert "Rust, Fortran" not in read.text
    # An sdist that was not read: nothing is known of its languages.
    (unread,) = package_advice(_pkg(_verdict(Status.BUILD)), {}, {})
    assert "(C/C++, Rust, Fortran)" in unread.text
