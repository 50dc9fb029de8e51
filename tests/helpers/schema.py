"""Every JSON report a test produces is checked against the schema ftaudit ships."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from ftaudit.report.json import report_schema


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(report_schema())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def validate_report(doc: dict[str, Any]) -> dict[str, Any]:
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10]
    )
    return doc
