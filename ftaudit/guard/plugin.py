"""The pytest plugin: a test during which an import re-enables the GIL fails, naming it.

Off unless ``--ftaudit-gil-guard``, the ini option ``ftaudit_gil_guard = true``, or
``gil-guard = true`` in ``[tool.ftaudit]`` of the project's pyproject.toml. Each extension
module created is recorded against the test running (setup, call or teardown) or, when a
test module's import loads it, against every test of that module; once the test's report
is made, its loads are judged as ``ftaudit run`` judges them (the flip the interpreter saw,
else the binary) and a culprit turns a passed test into a failed one. Loads outside any
test (plugins, conftest files) fail the session. The summary lists which tests import
which culprit.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ftaudit.model import Culprit

INI = "ftaudit_gil_guard"
SESSION = "(session)"  # loads outside every test and test module


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ftaudit", "ftaudit: free-threading readiness")
    group.addoption(
        "--ftaudit-gil-guard",
        action="store_true",
        default=False,
        help="fail each test during which an import re-enables the GIL (or would), naming "
        "the module and its import chain (free-threaded interpreters only)",
    )
    parser.addini(INI, type="bool", default=False, help="turn on --ftaudit-gil-guard")


def _enabled(config: pytest.Config) -> bool:
    if config.getoption("ftaudit_gil_guard") or config.getini(INI):
        return True
    pyproject = config.rootpath / "pyproject.toml"
    if not pyproject.is_file():
        return False
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.10
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise pytest.UsageError(f"{pyproject}: {exc}") from None
    table = data.get("tool", {}).get("ftaudit", {})
    value = table.get("gil-guard", False) if isinstance(table, dict) else False
    if not isinstance(value, bool):
        raise pytest.UsageError(f"{pyproject}: [tool.ftaudit] gil-guard: expected true or false")
    return value


def pytest_configure(config: pytest.Config) -> None:
    if not _enabled(config):
        return
    probe = getattr(sys, "_is_gil_enabled", None)
    import sysconfig

    if probe is None or not sysconfig.get_config_var("Py_GIL_DISABLED"):
        config.pluginmanager.register(_Off(), "ftaudit-gil-guard")
        return
    config.pluginmanager.register(GilGuard(config), "ftaudit-gil-guard")


class _Off:
    def pytest_report_header(self) -> str:
        return "ftaudit gil guard: off (not a free-threaded interpreter: nothing to guard)"


class GilGuard:
    def __init__(self, config: pytest.Config) -> None:
        from ftaudit.guard import hook

        self.config = config
        self.lock = threading.Lock()
        self.owner: str = SESSION
        self.start: dict[str, Any] = {}
        # owner -> records of loads not judged yet
        self.pending: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.found: dict[str, list[Culprit]] = {}  # owner -> culprits
        self.module_culprits: dict[str, list[Culprit]] = {}  # test module nodeid -> culprits
        self.loaded = 0
        hook.install(self._record)

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        # On the import path: keep the record as it came, import nothing
        if kind == "start":
            self.start = data
            return
        if kind not in ("load", "before"):
            return
        with self.lock:
            self.loaded += 1
            owner = self.owner if kind == "load" else SESSION
            self.pending.setdefault(owner, []).append((kind, data))

    def _judge(self, owner: str) -> list[Culprit]:
        from ftaudit.guard.collect import (
            ProcessLog,
            judge_all,
            judge_process,
            needs_reading,
            parse_load,
        )
        from ftaudit.model import RunStatus

        with self.lock:
            records = self.pending.pop(owner, [])
        if not records:
            return []
        loads = [parse_load(data, preloaded=kind == "before") for kind, data in records]
        log = ProcessLog(start=self.start, loads=loads)
        wanted = needs_reading(log) | {load.path for load in loads if load.after}
        judged = judge_process(log, judge_all(wanted), main=True, kind="pytest")
        if judged.status is RunStatus.FREE:
            return []
        self.found.setdefault(owner, []).extend(judged.culprits)
        return list(judged.culprits)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, Any, Any]:
        previous = self.owner
        if isinstance(collector, pytest.Module):
            self.owner = collector.nodeid
        try:
            return (yield)
        finally:
            self.owner = previous
            if isinstance(collector, pytest.Module):
                found = self._judge(collector.nodeid)
                if found:
                    self.module_culprits[collector.nodeid] = found

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, Any]:
        self.owner = item.nodeid
        try:
            return (yield)
        finally:
            self.owner = SESSION

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when == "setup" and report.passed:
            return report  # judged with the call: one failure for setup and test together
        culprits = self._judge(item.nodeid)
        at_import = self.module_culprits.get(item.nodeid.split("::", 1)[0], [])
        if call.when == "teardown":
            at_import = []
        if not culprits and not at_import:
            return report
        parts = [(at_import, "this test's module")]
        parts.append((culprits, f"this test ({call.when})"))
        text = "\n".join(_describe(found, during) for found, during in parts if found)
        if report.passed:
            report.outcome = "failed"
            report.longrepr = text
        else:
            report.sections.append(("ftaudit gil guard", text))
        return report

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from ftaudit.guard import hook

        self._judge(SESSION)
        hook.uninstall()
        if self.found.get(SESSION) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_report_header(self) -> str:
        return "ftaudit gil guard: on (a test whose imports re-enable the GIL fails)"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        by_module: dict[str, list[str]] = {}
        for owner, culprits in self.found.items():
            if owner in self.module_culprits:
                continue
            for c in culprits:
                by_module.setdefault(_line(c), []).append(owner)
        for module_id, culprits in self.module_culprits.items():
            for c in culprits:
                by_module.setdefault(_line(c), []).append(f"{module_id} (at import)")
        terminalreporter.section("ftaudit gil guard")
        if not by_module:
            terminalreporter.write_line(
                f"no import re-enabled the GIL ({self.loaded} extension modules loaded)"
            )
            return
        for line, owners in by_module.items():
            terminalreporter.write_line(line)
            for owner in dict.fromkeys(owners):
                terminalreporter.write_line(f"    {owner}")


def _line(c: Culprit) -> str:
    dist = f" [{c.distribution} {c.version}]" if c.distribution else ""
    return f"{c.module}{dist}: {_what(c)} ({c.seen.value}): {' -> '.join(c.chain)}"


def _what(c: Culprit) -> str:
    from ftaudit.guard.report import verdict_text

    return verdict_text(c, raised="its import raised {}")


def _describe(culprits: list[Culprit], during: str) -> str:
    lines = [f"ftaudit gil guard: an import in {during} needs the GIL"]
    for c in culprits:
        lines.append(f"  {_line(c)}")
        lines.append(f"      {c.detail}")
    return "\n".join(lines)
