"""Which package index to ask: pip's own answer, read from pip at run time.

pip's configuration (its files, their order, PIP_* variables) is pip's to define, so pip
itself is asked: its `Configuration` class, in the scanned interpreter when that has pip
(so a venv's own pip.conf counts), else in ftaudit's interpreter. When nothing is
configured, the index is pip's own default, also read from pip. No index URL is written
into ftaudit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from ftaudit.errors import UsageError

_ASK_PIP = r"""
import json
from pip._internal.configuration import Configuration
from pip._internal.models.index import PyPI
c = Configuration(isolated=False)
c.load()
print(json.dumps({"default": PyPI.simple_url, "items": dict(c.items())}))
"""


@dataclass(frozen=True, slots=True)
class IndexConfig:
    index_url: str
    extra_index_urls: tuple[str, ...]
    cert: str | None

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.index_url, *self.extra_index_urls)


def _ask(python: str) -> dict[str, object] | None:
    try:
        proc = subprocess.run(
            [python, "-I", "-c", _ASK_PIP], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return None
    return answer if isinstance(answer, dict) else None


def _option(items: dict[str, str], name: str) -> str | None:
    # pip's precedence: environment, then the install command's section, then global.
    for section in (":env:", "install", "global"):
        value = items.get(f"{section}.{name}")
        if value is not None:
            return value
    return None


def pip_index_config(
    python: str | None,
    index_url: str | None = None,
    extra_index_urls: tuple[str, ...] = (),
) -> IndexConfig:
    """The index URLs to use: the command line first, then pip's configuration."""
    answer = None
    for candidate in dict.fromkeys(p for p in (python, sys.executable) if p):
        answer = _ask(candidate)
        if answer is not None:
            break
    items: dict[str, str] = {}
    default = None
    if answer is not None:
        raw_items = answer.get("items")
        if isinstance(raw_items, dict):
            items = {str(k): str(v) for k, v in raw_items.items()}
        default = str(answer.get("default") or "") or None
    chosen = index_url or _option(items, "index-url") or default
    if not chosen:
        raise UsageError(
            "no package index configured and pip is not available to say its default: "
            "pass --index-url URL"
        )
    extras = extra_index_urls or tuple((_option(items, "extra-index-url") or "").split())
    return IndexConfig(
        index_url=chosen,
        extra_index_urls=tuple(u for u in extras if u != chosen),
        cert=_option(items, "cert"),
    )
