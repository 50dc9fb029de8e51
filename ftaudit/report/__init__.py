"""Report formats: each a pure function from a Report to text."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from typing import NoReturn

from ftaudit.model import Location, Report, Status


def assert_never(value: NoReturn) -> NoReturn:
    """Exhaustiveness check (typing.assert_never is 3.11+)."""
    raise AssertionError(f"unhandled value: {value!r}")


class OutputFormat(str, enum.Enum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"
    GITHUB = "github"
    SARIF = "sarif"


def render(
    report: Report,
    fmt: OutputFormat,
    *,
    width: int = 120,
    color: bool = False,
    only_problems: bool = False,
    fail_on: Collection[Status] = (),
    located: Mapping[str, Location] | None = None,
    summary_written: bool = False,
) -> str:
    # Each format is imported when it is asked for: the command line starts faster.
    from ftaudit.report import github, html, markdown, sarif, terminal
    from ftaudit.report import json as json_format

    if fmt is OutputFormat.TABLE:
        return terminal.render_report(report, width=width, color=color, only_problems=only_problems)
    if fmt is OutputFormat.JSON:
        return json_format.render_report(report)
    if fmt is OutputFormat.MARKDOWN:
        return markdown.render_report(report)
    if fmt is OutputFormat.HTML:
        return html.render_report(report)
    if fmt is OutputFormat.GITHUB:
        return github.render_report(report, fail_on, located, summary_written=summary_written)
    if fmt is OutputFormat.SARIF:
        return sarif.render_report(report, fail_on, located)
    assert_never(fmt)
