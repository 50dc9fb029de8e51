"""CI integration: GitHub annotations within GitHub's limits, the step summary, SARIF,
and the command line's conventions (-f, FTAUDIT_* defaults, --ignore, early checks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator

from ftaudit.cli import main
from ftaudit.cli_parser import build_parser, parse
from ftaudit.errors import UsageError
from ftaudit.model import (
    Dependency,
    Evidence,
    Location,
    PackageReport,
    Report,
    Source,
    Status,
    Verdict,
)
from ftaudit.report import github, sarif
from ftaudit.report.locate import locations
from ftaudit.targets import parse_targets
from tests.helpers.index_server import IndexServer
from tests.test_advice import REQUIREMENTS, _render, project  # noqa: F401 - the shared fixture

T313, T314 = parse_targets("3.13t,3.14t")
HERE = Path(__file__).parent
SARIF_SCHEMA = json.loads((HERE / "data" / "sarif" / "sarif-schema-2.1.0.json").read_text())
FAILS = frozenset({Status.GIL, Status.BLOCKED})


def _pkg(
    name: str, status: Status, reason: str = "because ({target})", **verdict: Any
) -> PackageReport:
    """A package with one verdict per target (3.13t, 3.14t) on linux-x86_64."""
    verdicts = tuple(
        Verdict(
            target=t,
            platform="linux-x86_64",
            status=status,
            evidence=Evidence.TAGS,
            reason=reason.format(target=t.name, name=name),
            **verdict,
        )
        for t in (T313, T314)
    )
    dep = Dependency(name=name, display_name=name, version="1.0")
    return PackageReport(dependency=dep, verdicts=verdicts)


def _report(packages: list[PackageReport], source: str = "requirements.txt") -> Report:
    return Report(
        tool_version="0",
        targets=(T313, T314),
        platforms=("linux-x86_64",),
        sources=(Source(kind="requirements", path=source),),
        packages=tuple(packages),
    )


def _annotations(text: str) -> list[tuple[str, dict[str, str], str]]:
    out = []
    for line in text.splitlines():
        level, _, rest = line[2:].partition(" ")
        props, _, message = rest.partition("::")
        out.append((level, dict(p.split("=", 1) for p in props.split(",")), message))
    return out


def test_github_annotates_at_most_ten_packages_most_severe_first() -> None:
    statuses = [Status.UNKNOWN] * 6 + [Status.UPGRADE] * 4 + [Status.GIL] * 3 + [Status.BLOCKED] * 2
    pkgs = [_pkg(f"pkg{i:02d}", s) for i, s in enumerate(statuses)] + [_pkg("fine", Status.READY)]
    report = _report(pkgs)
    located = {
        p.dependency.name: Location(path="requirements.txt", line=i + 1) for i, p in enumerate(pkgs)
    }
    out = _annotations(github.render_report(report, FAILS, located, summary_written=True))
    findings, notice = out[:-1], out[-1]
    assert len(findings) == 10
    assert [level for level, _, _ in findings[:5]] == ["error"] * 5
    assert {level for level, _, _ in findings[5:]} == {"warning"}
    titles = [props["title"] for _, props, _ in findings]
    assert titles[0].startswith("pkg13 1.0%3A blocked on 3.13t%2C 3.14t"), titles[0]
    assert all("upgrade" in t for t in titles[5:9]), titles
    # One annotation per package, its targets merged, at the package's own line.
    assert len({t.split(" ")[0] for t in titles}) == 10
    _level, props, message = findings[0]
    assert props["file"] == "requirements.txt" and props["line"] == "14"
    assert "3.13t: because (3.13t)" in message and "3.14t: because (3.14t)" in message
    assert notice[0] == "notice" and "5 more packages with findings" in notice[2]
    assert "job summary" in notice[2]
    assert not any("fine" in t for t in titles)


@pytest.mark.ft
def test_github_format_lines_and_step_summary(
    project: Path,  # noqa: F811
    index_server: IndexServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    gh = _render(project, index_server, tmp_path, "github")
    lines = {name: i + 1 for i, name in enumerate(REQUIREMENTS.splitlines())}
    found = _annotations(gh)[:-1]
    assert found
    for _, props, _ in found:
        name = props["title"].split(" ")[0]
        requirement = next(r for r in lines if r.startswith(name))
        assert props["file"].endswith("requirements.in")
        assert props["line"] == str(lines[requirement]), (name, props)
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, never overwritten
    assert "## Blockers" in text and "ftfix-gil" in text


@pytest.mark.ft
def test_sarif_validates_and_points_at_the_requirement_lines(
    project: Path,  # noqa: F811
    index_server: IndexServer,
    tmp_path: Path,
) -> None:
    doc = json.loads(_render(project, index_server, tmp_path, "sarif"))
    errors = list(Draft4Validator(SARIF_SCHEMA).iter_errors(doc))
    assert not errors, [e.message for e in errors[:5]]
    run = doc["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rules == ["blocked", "gil", "build", "downgrade", "upgrade", "unknown"]
    lines = {r.split("<")[0].split("=")[0]: i + 1 for i, r in enumerate(REQUIREMENTS.splitlines())}
    assert run["results"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]] == result["ruleId"]
        name = result["properties"]["package"]
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"].endswith("requirements.in")
        if name in lines:
            assert loc["region"]["startLine"] == lines[name], name
        expect = "error" if result["ruleId"] in ("gil", "blocked") else "warning"
        assert result["level"] == expect, result


def test_sarif_marks_ignored_findings_as_suppressed() -> None:
    pkg = _pkg("legacy", Status.GIL)
    pkg = PackageReport(
        dependency=pkg.dependency,
        verdicts=tuple(
            Verdict(
                target=v.target,
                platform=v.platform,
                status=v.status,
                evidence=v.evidence,
                reason=v.reason,
                ignored="in workers",
            )
            for v in pkg.verdicts
        ),
    )
    doc = json.loads(sarif.render_report(_report([pkg]), FAILS, {}))
    assert not list(Draft4Validator(SARIF_SCHEMA).iter_errors(doc))
    (result,) = doc["runs"][0]["results"]
    assert result["level"] == "warning"
    assert result["suppressions"] == [{"kind": "external", "justification": "in workers"}]


def test_lock_locations_are_the_package_entries() -> None:
    lock = HERE / "data" / "locks" / "uv" / "uv.lock"
    text = lock.read_text().splitlines()
    pkgs = [_pkg("ftlk-fast", Status.GIL), _pkg("ftlk-gil", Status.GIL)]
    report = Report(
        tool_version="0",
        targets=(T313,),
        platforms=("linux-x86_64",),
        sources=(Source(kind="uv.lock", path=str(lock)),),
        packages=tuple(pkgs),
    )
    found = locations(report)
    for name in ("ftlk-fast", "ftlk-gil"):
        assert text[found[name].line - 1] == f'name = "{name}"', name  # type: ignore[operator]


def _scan_args(tmp_path: Path, *extra: str) -> list[str]:
    reqs = tmp_path / "requirements.txt"
    if not reqs.exists():
        reqs.write_text("nothing-here==1.0\n")
    return [
        "scan",
        "-r",
        str(reqs),
        "--index-url",
        "http://127.0.0.1:9/simple/",
        "--cache-dir",
        str(tmp_path / "cache"),
        *extra,
    ]


def test_environment_defaults_and_the_command_line_wins() -> None:
    env = {
        "FTAUDIT_FORMAT": "json",
        "FTAUDIT_FAIL_ON": "unknown",
        "FTAUDIT_OFFLINE": "yes",
        "FTAUDIT_EXTRA_INDEX_URL": "http://a/simple/ http://b/simple/",
        "FTAUDIT_JOBS": "3",
    }
    args = parse(["scan"], env)
    assert (args.format, args.fail_on, args.offline, args.jobs) == ("json", "unknown", True, 3)
    assert args.extra_index_url == ["http://a/simple/", "http://b/simple/"]
    args = parse(["scan", "-f", "sarif", "--fail-on", "gil", "-j", "1"], env)
    assert (args.format, args.fail_on, args.jobs) == ("sarif", "gil", 1)
    # A source named on the command line is never joined by one from the environment.
    args = parse(["scan", "-r", "r.txt"], {"FTAUDIT_LOCKFILE": "uv.lock"})
    assert args.lockfile is None and args.requirement == [Path("r.txt")]
    assert parse(["scan"], {"FTAUDIT_LOCKFILE": "uv.lock"}).lockfile == Path("uv.lock")
    with pytest.raises(UsageError, match="FTAUDIT_LOCKFILE and FTAUDIT_PYTHON"):
        parse(["scan"], {"FTAUDIT_LOCKFILE": "uv.lock", "FTAUDIT_PYTHON": "python3"})
    with pytest.raises(UsageError, match="FTAUDIT_FORMAT='xml': expected one of"):
        parse(["scan"], {"FTAUDIT_FORMAT": "xml"})
    with pytest.raises(UsageError, match="FTAUDIT_OFFLINE='maybe'"):
        parse(["scan"], {"FTAUDIT_OFFLINE": "maybe"})
    # Only scan reads them: inspect does not fail on a scan format.
    assert parse(["inspect", "x.whl"], {"FTAUDIT_FORMAT": "sarif"}).format == "table"


def test_help_is_grouped_and_names_the_variables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # as wrapped at any width
    for heading in ("what to scan", "targets:", "package index:", "report:", "exit code:"):
        assert heading in text, heading
    assert "[env: FTAUDIT_FAIL_ON]" in text and "[env: FTAUDIT_FORMAT]" in text
    assert "-f {table,json,markdown,html,github,sarif}, --format" in text
    assert build_parser().prog == "ftaudit"


def test_bad_environment_value_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FTAUDIT_JOBS", "many")
    assert main(_scan_args(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ftaudit: error: FTAUDIT_JOBS='many': invalid value"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lockfile", "{dir}"], "is a directory: --lockfile takes the lockfile itself"),
        (["-r", "{dir}"], "is a directory: -r takes a requirements file"),
        (["-o", "{dir}/missing/x.json"], "no such directory"),
        (["-o", "{dir}"], "is a directory: give a file name"),
    ],
)
def test_paths_are_checked_before_the_scan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    where = tmp_path / "proj"
    where.mkdir()
    args = [a.replace("{dir}", str(where)) for a in extra]
    if "-r" in args or "--lockfile" in args:
        argv = ["scan", *args, "--cache-dir", str(tmp_path / "cache")]
    else:
        argv = _scan_args(tmp_path, *args)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert "could not be checked" not in err  # failed before any package was looked up


def test_why_an_unknown_name_fails_before_the_scan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = HERE / "data" / "locks" / "uv" / "uv.lock"
    argv = [
        "scan",
        "--lockfile",
        str(lock),
        "--why",
        "nosuch",
        "--target",
        "3.13t",
        "--index-url",
        "http://127.0.0.1:9/simple/",
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--why nosuch: not among the" in err and "could not be checked" not in err


@pytest.mark.ft
def test_ignore_on_the_command_line_and_the_policy_line(
    project: Path,  # noqa: F811
    index_server: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0"\n\n[tool.ftaudit]\nfail-on = ["gil"]\n'
    )
    base = [
        "scan",
        str(project),
        "-r",
        str(project / "requirements.in"),
        "--target",
        "3.13t",
        "--index-url",
        index_server.url,
        "--cache-dir",
        str(tmp_path / "cache"),
        "-f",
        "json",
        "-o",
        str(tmp_path / "r.json"),
    ]
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "using [tool.ftaudit] from" in err and "fail-on gil" in err
    doc: dict[str, Any] = json.loads((tmp_path / "r.json").read_text())
    gil = [p["name"] for p in doc["packages"] if p["targets"]["3.13t"]["status"] == "gil"]
    assert gil
    ignores = [f"--ignore={n}:runs in a worker" for n in gil]
    assert main([*base, *ignores]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    for p in doc["packages"]:
        if p["name"] in gil:
            assert p["targets"]["3.13t"]["ignored"] == "runs in a worker"


REPO = HERE.parent


def test_pre_commit_hook_runs_ftaudit_on_dependency_files() -> None:
    import re

    import yaml

    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "ftaudit" and hook["entry"].startswith("ftaudit scan")
    assert hook["language"] == "python" and hook["pass_filenames"] is False
    files = re.compile(hook["files"])
    for name in (
        "uv.lock",
        "sub/poetry.lock",
        "pylock.toml",
        "pylock.dev.toml",
        "pdm.lock",
        "Pipfile.lock",
        "requirements.txt",
        "requirements-dev.in",
        "pyproject.toml",
    ):
        assert files.search(name), name
    for name in ("src/app.py", "README.md", "uv.lock.bak", "docs/requirements.md"):
        assert not files.search(name), name


def test_action_passes_inputs_through_the_environment() -> None:
    import yaml

    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    runs = [s for s in steps if "run" in s]
    assert runs[-1]["run"].startswith("ftaudit scan") and "--format github" in runs[-1]["run"]
    for step in runs:
        assert "${{" not in step["run"], step["run"]  # no input pasted into a script
        assert step["shell"] == "bash"
    # The variables it sets are not read as ftaudit's own FTAUDIT_* defaults.
    assert not any(k.startswith("FTAUDIT_") for s in runs for k in s.get("env", {}))
    assert set(action["inputs"]) == {"path", "args", "sarif", "python-version"}


@pytest.mark.ft
def test_the_artifact_of_another_release_is_shown(
    project: Path,  # noqa: F811
    index_server: IndexServer,
    tmp_path: Path,
) -> None:
    """ftfix-old 2.0 has nothing for 3.13t; 1.0's wheel is what the verdict judged: its
    modules are in the report for that target."""
    doc = json.loads(_render(project, index_server, tmp_path, "json"))
    old = next(p for p in doc["packages"] if p["name"] == "ftfix-old")
    verdict = old["targets"]["3.13t"]
    assert verdict["status"] == "downgrade" and "1.0" in verdict["artifact"]
    assert old["extensions"] == []  # 2.0's own: it has no wheel here
    assert [e["module"] for e in verdict["extensions"]] == ["ftfix_old._core"]
    md = _render(project, index_server, tmp_path, "markdown")
    assert f"  - judged `{verdict['artifact']}`: `ftfix_old._core` not_used" in md
