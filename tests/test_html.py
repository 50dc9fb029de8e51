"""The HTML report in a real browser (headless Chromium): it renders without console
errors, the table sorts and filters, and a screenshot shows the summary and the badges."""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.helpers import toolchain
from tests.helpers.index_server import IndexServer
from tests.helpers.png import read_png
from tests.test_advice import _render, project  # noqa: F401 - the fixture project

pytestmark = pytest.mark.ft
GIL_RED = (0xC6, 0x28, 0x28)
READY_GREEN = (0x2E, 0x7D, 0x32)


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    exe = toolchain.need_tool("chromium")
    return subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, bool]] = []
        self.statuses: dict[str, str] = {}
        self.ready = False
        self.count = ""
        self._in_count = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "tr" and "pkg" in classes:
            self.rows.append((a.get("data-name") or "", "hidden" not in classes))
            self.statuses[a.get("data-name") or ""] = a.get("data-statuses") or ""
        if tag == "body" and a.get("data-ready") == "1":
            self.ready = True
        self._in_count = a.get("id") == "count"

    def handle_data(self, data: str) -> None:
        if self._in_count:
            self.count += data
            self._in_count = False


def _view(page: Path, fragment: str = "") -> _Rows:
    proc = _chromium("--dump-dom", page.as_uri() + fragment)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _console(proc.stderr) == []
    rows = _Rows()
    rows.feed(proc.stdout)
    assert rows.ready, "the page's script did not finish"
    return rows


@pytest.fixture
def page(project: Path, index_server: IndexServer, tmp_path: Path) -> Path:  # noqa: F811
    text = _render(project, index_server, tmp_path, "html")
    path = tmp_path / "report.html"
    path.write_text(text)
    return path


def test_the_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "url(" not in text and "@import" not in text
    assert "Content-Security-Policy" in text


def test_sorting_and_filtering_in_chromium(
    page: Path,
    project: Path,  # noqa: F811
    index_server: IndexServer,
    tmp_path: Path,
) -> None:
    default = _view(page)
    # The same verdicts as the JSON report.
    doc = json.loads(_render(project, index_server, tmp_path, "json"))
    assert default.statuses == {p["name"]: p["targets"]["3.13t"]["status"] for p in doc["packages"]}
    names = [n for n, _shown in default.rows]
    # Blockers first, as in every format.
    assert names == [
        "ftfix-none",
        "ftfix-single",
        "ftfix-sdist",
        "ftfix-old",
        "ftfix-gil",
        "ftfix-uses-single",
    ]
    assert default.count == "6 of 6 packages"

    by_name = _view(page, "#sort=package&dir=asc")
    assert [n for n, _ in by_name.rows] == sorted(names)
    by_name_desc = _view(page, "#sort=package&dir=desc")
    assert [n for n, _ in by_name_desc.rows] == sorted(names, reverse=True)
    ready_first = _view(page, "#sort=3.13t&dir=desc")
    assert ready_first.rows[0][0] == "ftfix-uses-single"

    only_gil = _view(page, "#status=gil")
    assert [n for n, shown in only_gil.rows if shown] == ["ftfix-single"]
    assert only_gil.count == "1 of 6 packages"
    problems = _view(page, "#status=problems&q=ftfix-s")
    assert [n for n, shown in problems.rows if shown] == ["ftfix-single", "ftfix-sdist"]


def test_console_errors_would_be_caught(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    proc = _chromium("--dump-dom", broken.as_uri())
    assert any("undefinedFunction" in line for line in _console(proc.stderr))


def test_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1280,900", page.as_uri())
    assert proc.returncode == 0 and _console(proc.stderr) == [], proc.stderr[-2000:]
    width, height, colors = read_png(shot)
    assert (width, height) == (1280, 900)
    # The summary bar and the badges: the gil red and the ready green are on screen.
    assert GIL_RED in colors and READY_GREEN in colors


def test_printed_to_pdf_the_advice_is_there(page: Path, tmp_path: Path) -> None:
    """Detail rows are collapsed on screen; a printed or saved-as-PDF report still holds
    every package's reasons and advice."""
    from pypdf import PdfReader

    pdf = tmp_path / "report.pdf"
    proc = _chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri())
    assert proc.returncode == 0 and pdf.is_file(), proc.stderr[-2000:]
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(pdf).pages).split())
    assert "Keep it out of the main process's imports" in text  # the isolate advice
    assert "every status" not in text  # the screen's controls are not printed
    html = page.read_text()
    # Advice text quoting code shows it as code, not backticks.
    assert "`" not in html.split("<script>")[0].split("<style>")[1].split("</style>")[1]
