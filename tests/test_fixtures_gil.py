"""Every fixture module, every toolchain: the static verdict against the source's intent and
against what the free-threaded interpreter really does when it imports the module."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.build import PY315_ONLY, TOOLCHAINS, VARIANTS, Built, build_all, missing_tools
from ftaudit.inspect.extension import inspect_binary
from ftaudit.model import Extension, Gil, Library
from tests.helpers import toolchain

CASES = [
    (tc.name, variant)
    for tc in TOOLCHAINS
    for variant, (number, _ft, _gil) in VARIANTS.items()
    if number not in PY315_ONLY
]


def _build(python: str, out: Path) -> dict[tuple[str, str], Built]:
    absent = missing_tools()
    if absent:
        toolchain.missing(f"compilers/linkers missing: {', '.join(absent)}")
    return {(b.toolchain, b.variant): b for b in build_all(python, out)}


@pytest.fixture(scope="module")
def ft_built(
    ft_python: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Built]:
    return _build(ft_python, tmp_path_factory.mktemp("ft-fixtures"))


@pytest.fixture(scope="module")
def gil_built(
    gil_python: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Built]:
    return _build(gil_python, tmp_path_factory.mktemp("gil-fixtures"))


def _verdict(b: Built) -> str:
    found = inspect_binary(f"{b.variant}/{b.path.name}", b.path.read_bytes())
    if isinstance(found, Library):
        return "library"
    assert isinstance(found, Extension)
    return found.gil.value


@pytest.mark.ft
@pytest.mark.parametrize(("toolchain_name", "variant"), CASES)
def test_free_threaded_build(
    ft_built: dict[tuple[str, str], Built], ft_python: str, toolchain_name: str, variant: str
) -> None:
    b = ft_built[(toolchain_name, variant)]
    static = _verdict(b)
    assert static == b.expected, f"{b.path}: static {static}, source says {b.expected}"
    if static == "library" or not b.native:
        return  # a library is not imported; a cross build cannot be, here
    found = inspect_binary(b.path.name, b.path.read_bytes())
    assert isinstance(found, Extension) and found.free_threaded_build is True
    re_enabled = toolchain.gil_enabled_after_import(ft_python, variant, b.path.parent)
    assert re_enabled == (static != Gil.NOT_USED.value), (
        f"{b.path}: ftaudit says {static}, the interpreter "
        f"{'re-enabled' if re_enabled else 'kept disabled'} the GIL"
    )


@pytest.mark.parametrize(("toolchain_name", "variant"), CASES)
def test_gil_build(
    gil_built: dict[tuple[str, str], Built], toolchain_name: str, variant: str
) -> None:
    b = gil_built[(toolchain_name, variant)]
    assert _verdict(b) == b.expected
    found = inspect_binary(b.path.name, b.path.read_bytes())
    if isinstance(found, Extension):
        assert found.free_threaded_build is False
