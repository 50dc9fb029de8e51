"""What `ftaudit run` says: a few lines for people, or the ``ftaudit-run/1`` document.

Fields may be added to the document, never renamed or removed: CI pipelines read it.
"""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ftaudit.model import Culprit, GuardedProcess, GuardReport, RunStatus

RUN_SCHEMA = "ftaudit-run/1"


def run_schema() -> str:
    return (
        resources.files("ftaudit")
        .joinpath("schemas/ftaudit-run-1.schema.json")
        .read_text(encoding="utf-8")
    )


def _culprit(c: Culprit) -> dict[str, Any]:
    return {
        "module": c.module,
        "path": c.path,
        "distribution": c.distribution,
        "version": c.version,
        "seen": c.seen.value,
        "reenabled": c.reenabled,
        "gil": c.gil.value,
        "init": c.init.value if c.init else None,
        "detail": c.detail,
        "raised": c.raised,
        "chain": list(c.chain),
        "frames": [
            {
                "module": f.module,
                "path": f.path,
                "line": f.line,
                "origin": f.origin,
                "distribution": f.distribution,
            }
            for f in c.frames
        ],
    }


def _process(p: GuardedProcess) -> dict[str, Any]:
    return {
        "pid": p.pid,
        "parent_pid": p.parent_pid,
        "main": p.main,
        "kind": p.kind,
        "argv": list(p.argv),
        "executable": p.executable,
        "python_version": p.python_version,
        "free_threaded": p.free_threaded,
        "gil_at_start": p.gil_at_start,
        "gil_at_exit": p.gil_at_exit,
        "python_gil": p.python_gil,
        "warnings_error": p.warnings_error,
        "extensions": p.extensions,
        "status": p.status.value,
        "culprits": [_culprit(c) for c in p.culprits],
        "notes": list(p.notes),
    }


def run_document(report: GuardReport) -> dict[str, Any]:
    return {
        "schema": RUN_SCHEMA,
        "tool": {"name": "ftaudit", "version": report.tool_version},
        "command": list(report.command),
        "command_exit": report.command_exit,
        "exit_code": report.exit_code,
        "gate": report.gate,
        "allow_gil": report.allow_gil,
        "status": report.status.value,
        "processes": [_process(p) for p in report.processes],
        "notes": list(report.notes),
    }


def render_json(report: GuardReport) -> str:
    return json.dumps(run_document(report), indent=2) + "\n"


_STATUS_TEXT = {
    RunStatus.FREE: "free-threaded: no module it loaded needs the GIL",
    RunStatus.GIL: "the GIL was re-enabled",
    RunStatus.UNKNOWN: "could not tell whether the GIL stays off",
    RunStatus.NOT_FREE_THREADED: "not a free-threaded interpreter",
}


def verdict_text(c: Culprit, raised: str = "import raised {} (-W error)") -> str:
    """What a culprit did, in words; `raised` says how an import that raised is worded
    (the exception's name goes in its braces)."""
    if c.raised:
        return raised.format(c.raised.split(":", 1)[0])
    if c.reenabled:
        return "re-enabled the GIL"
    if c.gil.value == "unknown":
        return "could not be judged"
    return f"would re-enable the GIL ({c.gil.value})"


def _where(c: Culprit) -> str:
    """Where the program's own code set off the import."""
    own = [f for f in c.frames if f.origin == "own" and Path(f.path).is_absolute()]
    if not own:
        return ""
    path = Path(own[-1].path)
    with contextlib.suppress(ValueError):
        path = path.relative_to(Path.cwd())
    return f"  ({path}:{own[-1].line})"


def render_text(report: GuardReport) -> str:
    lines: list[str] = []
    for p in report.processes:
        who = "main process" if p.main else p.kind
        extra = f" ({p.kind})" if p.main and p.kind != "program" else ""
        modules = f"{p.extensions} extension module{'' if p.extensions == 1 else 's'}"
        lines.append(
            f"ftaudit run: {who} {p.pid}{extra}, Python {p.python_version}"
            f"{'t' if p.free_threaded else ''}, {modules}: {_STATUS_TEXT[p.status]}"
        )
        for c in p.culprits:
            dist = f" [{c.distribution} {c.version}]" if c.distribution else ""
            lines.append(f"  {c.module}{dist}: {verdict_text(c)} ({c.seen.value})")
            lines.append(f"      {' -> '.join(c.chain)}{_where(c)}")
            lines.append(f"      {c.detail}")
        lines.extend(f"  note: {n}" for n in p.notes)
    lines.extend(f"ftaudit run: {n}" for n in report.notes)
    return "\n".join(lines) + "\n"
