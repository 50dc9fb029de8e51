"""`ftaudit schema` and the schema itself (the conftest validates every report with it)."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from ftaudit.cli import main
from ftaudit.model import Report, Status
from ftaudit.report.json import report_document
from ftaudit.targets import parse_targets
from tests.helpers.schema import validate_report


def test_schema_command_prints_the_shipped_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "ftaudit-report/1"
    statuses = schema["$defs"]["status"]["enum"]
    assert statuses == [s.value for s in Status]


def test_the_schema_rejects_what_the_contract_forbids() -> None:
    report = Report(
        tool_version="0",
        targets=parse_targets("3.14t"),
        platforms=("linux-x86_64",),
        sources=(),
        packages=(),
    )
    doc = report_document(report)
    validate_report(doc)
    for broken in (
        {k: v for k, v in doc.items() if k != "packages"},
        {**doc, "schema": "ftaudit-report/2"},
        {**doc, "summary": {"3.14t": {"ready": -1}}},
        {**doc, "targets": ["3.14"]},
    ):
        with pytest.raises(AssertionError):
            validate_report(broken)
