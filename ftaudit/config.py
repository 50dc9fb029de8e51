"""``[tool.ftaudit]`` in pyproject.toml: the project's policy; command-line flags win.

```toml
[tool.ftaudit]
targets = ["3.13t", "3.14t"]
platforms = ["linux-x86_64", "windows-amd64"]
fail-on = ["gil", "blocked", "unknown"]
index-url = "https://pypi.internal.example/simple/"
extra-index-url = ["https://mirror.internal.example/simple/"]
allow-incomplete = false   # true: a package the run could not check does not fail it
gil-guard = true           # the pytest plugin: fail a test whose imports re-enable the GIL
ignore = [
  { package = "legacy-gil-thing", reason = "runs in worker processes", expires = "2027-03-31" },
  { package = "other", reason = "replaced in #123", targets = ["3.13t"] },
]
```

A typo in a key or a status is an error naming the file, never a silently ignored line:
a policy that does not apply is worse than none. An ignore without a reason is refused;
one past its expiry date stops hiding anything and fails the run until it is renewed or
removed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ftaudit.errors import InputError
from ftaudit.model import Ignore, Policy, Status
from ftaudit.sources.lockfile import url_problem
from ftaudit.sources.pyproject import load_toml, tool_table

KEYS = frozenset(
    {
        "targets",
        "platforms",
        "fail-on",
        "index-url",
        "extra-index-url",
        "ignore",
        "allow-incomplete",
        "gil-guard",  # read by the pytest plugin (ftaudit/guard/plugin.py)
    }
)
IGNORE_KEYS = frozenset({"package", "reason", "expires", "targets"})
DEFAULT_FAIL_ON = frozenset({Status.BLOCKED, Status.GIL})


def load_policy(pyproject: Path) -> Policy:
    """The policy of the project whose pyproject.toml this is (empty when it has none)."""
    if not pyproject.is_file():
        return Policy()
    table = tool_table(load_toml(pyproject), pyproject, "ftaudit")
    if table is None:
        return Policy()
    where = f"{pyproject}: [tool.ftaudit]"
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})")
    fail_on = table.get("fail-on")
    return Policy(
        path=str(pyproject),
        targets=_names(table.get("targets"), f"{where}.targets"),
        platforms=_names(table.get("platforms"), f"{where}.platforms"),
        fail_on=None
        if fail_on is None
        else parse_statuses(_names(fail_on, f"{where}.fail-on") or "", f"{where}.fail-on"),
        index_url=_url(table.get("index-url"), f"{where}.index-url"),
        extra_index_urls=tuple(
            _url(u, f"{where}.extra-index-url") or ""
            for u in _strings(table.get("extra-index-url", []), f"{where}.extra-index-url")
        ),
        ignore=tuple(
            _ignore(item, f"{where}.ignore[{i}]")
            for i, item in enumerate(_list(table.get("ignore", []), f"{where}.ignore"))
        ),
        allow_incomplete=_bool(table.get("allow-incomplete"), f"{where}.allow-incomplete"),
    )


def parse_statuses(text: str, what: str) -> frozenset[Status]:
    out = set()
    for item in text.split(","):
        name = item.strip().lower()
        if not name or name == "none":
            continue
        try:
            out.add(Status(name))
        except ValueError:
            names = ", ".join(s.value for s in Status)
            raise InputError(f"{what}: invalid status {name!r}: expected some of {names}") from None
    return frozenset(out)


def _ignore(item: object, where: str) -> Ignore:
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected a table {{package, reason, expires}}")
    unknown = sorted(set(item) - IGNORE_KEYS)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r}")
    package = _string(item.get("package"), f"{where}.package")
    reason = _string(item.get("reason"), f"{where}.reason")
    if not package:
        raise InputError(f"{where}: 'package' is required")
    if not reason or not reason.strip():
        raise InputError(f"{where}: 'reason' is required: say why {package} may be ignored")
    expires = item.get("expires")
    if isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires)
        except ValueError:
            raise InputError(f"{where}.expires: {expires!r} is not a date (YYYY-MM-DD)") from None
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    if expires is not None and not isinstance(expires, dt.date):
        raise InputError(f"{where}.expires: expected a date (YYYY-MM-DD)")
    return Ignore(
        package=canonicalize_name(package),
        reason=reason.strip(),
        expires=expires,
        targets=tuple(_strings(item.get("targets", []), f"{where}.targets")),
    )


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InputError(f"{where}: expected an array")
    return value


def _url(value: object, where: str) -> str | None:
    text = _string(value, where)
    if text is not None and (problem := url_problem(text)):
        raise InputError(f"{where}: invalid URL {text!r} ({problem})")
    return text


def _bool(value: object, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InputError(f"{where}: expected true or false")


def _string(value: object, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InputError(f"{where}: expected a string")


def _strings(value: object, where: str) -> Sequence[str]:
    items = _list(value, where)
    if not all(isinstance(v, str) for v in items):
        raise InputError(f"{where}: expected an array of strings")
    return items


def _names(value: object, where: str) -> str | None:
    """A list of names or one comma-separated string, as the command line takes them."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ",".join(_strings(value, where))
