"""Modules made by Cython, pybind11 and nanobind: the static verdict against the source and
against what the free-threaded interpreter does on import.

pybind11 3.x fills its slot array from its init code behind C++ static guards, and nanobind
allocates its definition on the heap: neither is visible in the file's data."""

from __future__ import annotations

import pytest

from fixtures.build import GENERATED, Built, build_generated
from ftaudit.inspect.extension import inspect_binary
from ftaudit.model import Extension, Gil
from tests.helpers import toolchain


def _build(python: str, tmp_path_factory: pytest.TempPathFactory, label: str) -> dict[str, Built]:
    for tool in ("gcc", "g++"):
        toolchain.need_tool(tool)
    return {b.variant: b for b in build_generated(python, tmp_path_factory.mktemp(label))}


@pytest.fixture(scope="module")
def ft_generated(ft_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    return _build(ft_python, tmp_path_factory, "gen-ft")


@pytest.fixture(scope="module")
def gil_generated(gil_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    return _build(gil_python, tmp_path_factory, "gen-gil")


@pytest.mark.ft
@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_free_threaded(ft_generated: dict[str, Built], ft_python: str, name: str) -> None:
    b = ft_generated[name]
    found = inspect_binary(b.path.name, b.path.read_bytes())
    assert isinstance(found, Extension)
    assert found.gil.value == b.expected, found.detail
    re_enabled = toolchain.gil_enabled_after_import(ft_python, name, b.path.parent)
    assert re_enabled == (found.gil is not Gil.NOT_USED), found.detail


@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_gil_build(gil_generated: dict[str, Built], name: str) -> None:
    b = gil_generated[name]
    found = inspect_binary(b.path.name, b.path.read_bytes())
    assert isinstance(found, Extension)
    assert found.gil.value == b.expected, found.detail
