"""Report formats: each a pure function from a Report to text."""

from __future__ import annotations

import enum
from typing import NoReturn

from ftaudit.model import Report
from ftaudit.report import json as json_format
from ftaudit.report import terminal


def assert_never(value: NoReturn) -> NoReturn:
    """Exhaustiveness check (typing.assert_never is 3.11+)."""
    raise AssertionError(f"unhandled value: {value!r}")


class OutputFormat(str, enum.Enum):
    TABLE = "table"
    JSON = "json"


def render(
    report: Report,
    fmt: OutputFormat,
    *,
    width: int = 120,
    color: bool = False,
    only_problems: bool = False,
) -> str:
    if fmt is OutputFormat.TABLE:
        return terminal.render_report(report, width=width, color=color, only_problems=only_problems)
    if fmt is OutputFormat.JSON:
        return json_format.render_report(report)
    assert_never(fmt)
