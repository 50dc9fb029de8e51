"""Markdown and HTML reports meant to be passed on: dated, no machine paths, the decision
first, a constraints block per target, installer tooling apart from the project."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ftaudit.model import PackageReport, Report, Source, Status
from ftaudit.report import html, markdown
from ftaudit.report.view import display_path, readiness
from ftaudit.targets import parse_targets
from tests.test_ci_output import _pkg as ci_pkg

T313, T314 = parse_targets("3.13t,3.14t")


def _pkg(name: str, status: Status, **verdict: object) -> PackageReport:
    return ci_pkg(name, status, "see `{name}` on {target}", **verdict)


@pytest.fixture
def report(tmp_path: Path) -> Report:
    env = tmp_path / "home" / "someone" / "app" / ".venv"
    pkgs = [
        _pkg("numpy", Status.UPGRADE, use_version="2.4.6", first_ready="2.4.1"),
        _pkg("oldthing", Status.DOWNGRADE, use_version="0.9"),
        _pkg("greenlet", Status.GIL),
        _pkg("pip", Status.READY),
        _pkg("setuptools", Status.UNKNOWN),
        _pkg("idna", Status.READY),
    ]
    return Report(
        tool_version="0",
        targets=(T313, T314),
        platforms=("linux-x86_64",),
        sources=(Source(kind="environment", path=str(env)),),
        packages=tuple(pkgs),
        scanned_at="2026-12-02T01:40:00Z",
    )


def test_markdown_is_dated_relative_and_decides_first(
    report: Report, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the path is then shown by its name only
    text = markdown.render_report(report)
    assert "- **Date**: 2026-12-02 01:40:00 UTC" in text
    assert "home/someone" not in text and "`.venv` (environment)" in text
    summary = text.index("## Summary")
    assert text.index("**3.13t**: 1 of 4 ready (direct 1/4") > summary
    assert "to get there: 1 upgrade, 1 pin to an older release, 1 package to isolate" in text
    assert text.index("## Constraints to apply") < text.index("## Blockers")
    assert "```text\nnumpy>=2.4.1\noldthing==0.9\n```" in text
    tooling = text.index("## Installer tooling")
    assert "pip ready, setuptools unknown" in text[tooling:]
    # Tooling is neither a blocker, a change nor a ready project dependency.
    assert "### setuptools" not in text and "| pip |" not in text


def test_html_shows_the_same_decision_and_renders_code(
    report: Report, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    page = html.render_report(report)
    assert "2026-12-02 01:40:00 UTC" in page and "home/someone" not in page
    assert "Closest target" in page or len(report.targets) < 2
    assert "<pre><code>numpy&gt;=2.4.1\noldthing==0.9</code></pre>" in page
    assert "see <code>numpy</code> on 3.13t" in page
    assert 'data-name="pip"' not in page and "Installer tooling" in page
    assert page.index("to get there") < page.index('<div class="charts">')


def test_tooling_counts_apart_only_for_environments(report: Report) -> None:
    (t313, _t314) = readiness(report)
    assert (t313.direct, t313.direct_ready) == (4, 1)  # pip and setuptools are not counted
    as_lock = replace(report, sources=(Source(kind="uv.lock", path="uv.lock"),))
    (t313, _t314) = readiness(as_lock)
    assert t313.direct == 6 and t313.unknown == 1


def test_display_path(tmp_path: Path) -> None:
    inside = tmp_path / "proj" / "uv.lock"
    assert display_path(str(inside), cwd=str(tmp_path)) == "proj/uv.lock"
    assert display_path("/elsewhere/x/uv.lock", cwd=str(tmp_path)) == "uv.lock"
