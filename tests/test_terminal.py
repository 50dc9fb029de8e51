"""The terminal report: the decision first, fits the width, never cuts a package name."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ftaudit.model import Advice, Status
from ftaudit.report.terminal import render_report
from tests.test_ci_output import _pkg, _report

LONG = "a-really-quite-long-package-name-for-narrow-terminals"


def _packages() -> list:  # type: ignore[type-arg]
    upgrade = _pkg(
        LONG,
        Status.UPGRADE,
        "1.0 re-enables the GIL on linux-x86_64; a newer "
        "release declares Py_MOD_GIL_NOT_USED in every module it ships",
    )
    upgrade = replace(
        upgrade,
        verdicts=tuple(replace(v, use_version="2.4.6") for v in upgrade.verdicts),
        advice=(
            Advice(
                kind="upgrade",
                targets=("3.13t", "3.14t"),
                text="Upgrade it to >= 2.4.6 for 3.13t and 3.14t: the newest release "
                "declares Py_MOD_GIL_NOT_USED in every extension module it ships.",
            ),
        ),
    )
    ready = _pkg("fine", Status.READY)
    ready = replace(
        ready, dependency=replace(ready.dependency, direct=False, required_by=("numpy",))
    )
    return [upgrade, _pkg("numpy", Status.GIL), _pkg("build-me", Status.BUILD), ready]


@pytest.mark.parametrize("width", [80, 100, 160])
def test_fits_the_width_and_keeps_names_whole(width: int) -> None:
    text = render_report(_report(_packages()), width=width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert not [line for line in lines if line != line.rstrip()]  # no trailing spaces
    assert sum(LONG in line for line in lines) == 2  # the table row and its block, whole
    assert f"  {LONG} 1.0" in lines  # its block


def test_summary_first_then_one_block_per_package_with_targets_merged() -> None:
    raw = render_report(_report(_packages()), width=160)
    lines = raw.splitlines()
    text = " ".join(raw.split())
    assert lines[0].startswith("Free-threading readiness: 4 packages (3 direct, 1 transitive)")
    assert lines[1].split()[:6] == ["3.13t", "1", "of", "4", "ready", "(direct"]
    assert "to get there: 1 upgrade, 1 source build, 1 package to isolate in worker " in text
    assert "(a source build's GIL status is unknown until it is built)" in text
    assert "Closest target: 3.13t (3 changes)" in text
    assert text.index("Closest target") < text.index("Status per target") < text.index("Not ready")
    # Both targets say the same: one row, naming both.
    rows = [line for line in lines if line.startswith("    3.13t")]
    assert len(rows) == 3, rows
    assert all(line.startswith("    3.13t, 3.14t") for line in rows)
    assert text.count("Upgrade it to >= 2.4.6") == 1


def test_quiet_is_the_summary_and_the_problems_only() -> None:
    text = render_report(_report(_packages()), width=120, only_problems=True)
    assert "Closest target" in text and "Not ready" in text and "numpy" in text
    assert "Status per target" not in text and "fine" not in text


def test_a_ready_project_says_so() -> None:
    text = render_report(_report([_pkg("fine", Status.READY)]), width=100)
    assert "3.13t ready: all 1 package" in " ".join(text.split())
    assert "1 packages" not in text
    assert "Not ready" not in text


def test_the_closest_target_weighs_builds_over_upgrades() -> None:
    from ftaudit.model import TargetReadiness
    from ftaudit.report.view import closest

    base = {"direct": 9, "direct_ready": 2, "transitive": 0, "transitive_ready": 0}
    many_builds = TargetReadiness(target="3.13t", upgrades=2, builds=5, **base)
    upgrades = TargetReadiness(target="3.14t", upgrades=6, builds=1, **base)
    blocked = TargetReadiness(target="3.15t", blocked=1, **base)
    assert closest([many_builds, upgrades, blocked]) == upgrades
    assert closest([many_builds]) is None


def test_installer_tooling_is_counted_apart_in_the_header() -> None:
    from ftaudit.model import Source

    report = replace(
        _report([_pkg("pip", Status.READY), _pkg("numpy", Status.GIL)]),
        sources=(Source(kind="environment", path=".venv"),),
    )
    first = render_report(report, width=120).splitlines()[0]
    assert first == (
        "Free-threading readiness: 1 package (1 direct, 0 transitive; and 1 of installer "
        "tooling) from .venv"
    )
