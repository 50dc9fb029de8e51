"""Windows PE and macOS Mach-O fixtures (thin, chained fixups, universal2), every variant,
free-threaded and GIL: the static verdict against the source's intent.

No Windows or macOS interpreter runs here, so these are checked against the source; the
same C variants are checked against the real interpreter on Linux (test_fixtures_gil)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.build import (
    DATA_ONLY_EXPECTED,
    DATA_ONLY_TARGETS,
    I686_VARIANTS,
    PORTABLE_TARGETS,
    PORTABLE_VARIANTS,
    PY315_VARIANTS,
    Built,
    build_data_only,
    build_i686,
    build_portable,
    build_py315,
    missing_portable_tools,
)
from ftaudit.inspect.extension import inspect_binary
from ftaudit.model import BinaryFormat, Extension, Init, Library
from tests.helpers import toolchain

TARGETS = [t.name for t in PORTABLE_TARGETS] + ["macho-universal2"]
CASES = [(t, v, ft) for t in TARGETS for v in PORTABLE_VARIANTS for ft in (True, False)]


@pytest.fixture(scope="module")
def portable(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, bool], Built]:
    absent = missing_portable_tools()
    if absent:
        toolchain.missing(f"toolchain missing for PE/Mach-O fixtures: {', '.join(absent)}")
    out = tmp_path_factory.mktemp("portable")
    return {(b.toolchain, b.variant, "313t" in b.path.name): b for b in build_portable(out)}


@pytest.mark.parametrize(("target", "variant", "ft"), CASES)
def test_portable_fixture(
    portable: dict[tuple[str, str, bool], Built], target: str, variant: str, ft: bool
) -> None:
    b = portable[(target, variant, ft)]
    found = inspect_binary(b.path.name, b.path.read_bytes())
    if b.expected == "library":
        assert isinstance(found, Library)
        return
    assert isinstance(found, Extension), found
    assert found.gil.value == b.expected, (b.path, found.detail)
    assert found.format is (BinaryFormat.PE if target.startswith("pe") else BinaryFormat.MACHO)
    assert found.free_threaded_build is ft
    assert found.module == variant


def test_universal_binary_with_disagreeing_slices(
    portable: dict[tuple[str, str, bool], Built], tmp_path: Path
) -> None:
    """Slices that declare different things give `unknown`, never the better of the two."""
    import subprocess

    used = portable[("macho-arm64-chained", "multi_used", True)].path
    not_used = portable[("macho-x86_64-chained", "multi_not_used", True)].path
    # same module name in both slices, or the reader would not accept the definitions
    renamed = tmp_path / "multi_used.cpython-313t-darwin.so"
    data = not_used.read_bytes().replace(b"multi_not_used", b"multi_used\0\0\0\0")
    (tmp_path / "x86.so").write_bytes(data)
    subprocess.run(
        ["llvm-lipo-14", "-create", str(used), str(tmp_path / "x86.so"), "-output", str(renamed)],
        check=True,
        capture_output=True,
    )
    found = inspect_binary(renamed.name, renamed.read_bytes())
    assert isinstance(found, Extension)
    assert found.gil.value == "unknown" and "disagree" in found.detail


@pytest.fixture(scope="module")
def py315(tmp_path_factory: pytest.TempPathFactory) -> list[Built]:
    absent = missing_portable_tools()
    if absent:
        toolchain.missing(f"toolchain missing for 3.15 fixtures: {', '.join(absent)}")
    return build_py315(tmp_path_factory.mktemp("py315"))


def test_python_315_slot_ids_and_modexport(py315: list[Built]) -> None:
    """3.15: Py_mod_gil is 87 in the unified numbering; PyModExport_ returns PySlots."""
    assert len(py315) == 3 * len(PY315_VARIANTS)
    for b in py315:
        found = inspect_binary(b.path.name, b.path.read_bytes())
        assert isinstance(found, Extension), b.path
        assert found.gil.value == b.expected, (b.toolchain, b.variant, found.detail)
        assert (found.init is Init.EXPORT) == b.variant.startswith("export"), found.init


def test_i686_linux_modules(tmp_path: Path) -> None:
    """32-bit x86: arguments on the stack, position-independent code through a pc thunk."""
    absent = missing_portable_tools()
    if absent:
        toolchain.missing(f"toolchain missing for i686 fixtures: {', '.join(absent)}")
    built = build_i686(tmp_path)
    assert len(built) == 2 * len(I686_VARIANTS)
    for b in built:
        found = inspect_binary(b.path.name, b.path.read_bytes())
        verdict = "library" if isinstance(found, Library) else found.gil.value
        assert verdict == b.expected, (b.path, getattr(found, "detail", found))


def test_architectures_without_a_code_reader(tmp_path: Path) -> None:
    """armv7, ppc64le and win32: the definition is found in the data by its name; a static
    Py_mod_gil slot is read, anything init code could still change stays unknown."""
    absent = missing_portable_tools()
    if absent:
        toolchain.missing(f"toolchain missing for armv7/ppc64le/win32 fixtures: {absent}")
    built = build_data_only(tmp_path)
    assert len(built) == 2 * len(DATA_ONLY_TARGETS) * len(DATA_ONLY_EXPECTED)
    for b in built:
        found = inspect_binary(b.path.name, b.path.read_bytes())
        verdict = "library" if isinstance(found, Library) else found.gil.value
        assert verdict == b.expected, (b.path, getattr(found, "detail", found))
        if verdict in ("not_used", "used") and isinstance(found, Extension):
            assert "read from the data" in found.detail
