"""A module whose init jumps into a library beside it (jaxlib's shape): the library's code
decides, and the verdict matches what the free-threaded interpreter does."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ftaudit.inspect.artifact import inspect_wheel
from ftaudit.model import Gil
from tests.conftest import FT_TAG
from tests.helpers import toolchain
from tests.helpers.wheels import build_wheel

pytestmark = pytest.mark.ft
SOURCE = Path(__file__).parent.parent / "fixtures" / "ext" / "handover.c"


def _build(ft_python: str, work: Path, value: str, *, with_library: bool = True) -> Path:
    cfg = toolchain.python_config(ft_python)
    cc = toolchain.need_tool("gcc")
    work.mkdir(parents=True)
    lib = work / "libhandover.so"
    base = [cc, "-shared", "-fPIC", "-O2", "-I", cfg["include"], str(SOURCE)]
    subprocess.run([*base, "-DLIBRARY", f"-DGIL_VALUE={value}", "-o", str(lib)], check=True)
    module = work / f"handed{cfg['suffix']}"
    link = ["-L", str(work), "-lhandover", "-Wl,-rpath,$ORIGIN"]
    subprocess.run([*base, *link, "-o", str(module)], check=True)
    files = {"fthand/__init__.py": b"", f"fthand/{module.name}": module.read_bytes()}
    if with_library:
        files["fthand/libhandover.so"] = lib.read_bytes()
    return build_wheel(work / "dist", "fthand", "1.0", FT_TAG, files)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Py_MOD_GIL_NOT_USED", Gil.NOT_USED), ("Py_MOD_GIL_USED", Gil.USED)],
)
def test_init_handed_to_a_library_beside_the_module(
    ft_python: str, tmp_path: Path, value: str, expected: Gil
) -> None:
    wheel = _build(ft_python, tmp_path / "build", value)
    (ext,) = inspect_wheel(wheel).extensions
    assert (ext.module, ext.gil) == ("fthand.handed", expected), ext.detail
    assert "init handed to Wrapped_PyInit_handed in fthand/libhandover.so" in ext.detail
    venv = toolchain.make_venv(ft_python, tmp_path / "venv")
    toolchain.pip_install(venv, wheel)
    reenabled = toolchain.gil_enabled_after_import(str(venv), "fthand.handed")
    assert reenabled is (expected is Gil.USED)


def test_without_the_library_it_is_unknown(ft_python: str, tmp_path: Path) -> None:
    wheel = _build(ft_python, tmp_path / "build", "Py_MOD_GIL_NOT_USED", with_library=False)
    (ext,) = inspect_wheel(wheel).extensions
    assert ext.gil is Gil.UNKNOWN
    assert "hands the module's creation to Wrapped_PyInit_handed" in ext.detail


@pytest.mark.parametrize(("variant", "expected"), [(1, Gil.NOT_USED), (2, Gil.USED)])
def test_a_definition_named_otherwise_still_counts(
    ft_python: str, tmp_path: Path, variant: int, expected: Gil
) -> None:
    """Multi-phase import names a module after its spec; m_name may differ."""
    from ftaudit.inspect.extension import inspect_binary

    so = toolchain.compile_module(
        ft_python, variant, "named", tmp_path, flags=("-O2", '-DDEF_NAME="elsewhere"')
    )
    found = inspect_binary(so.name, so.read_bytes())
    assert getattr(found, "gil", None) is expected, found
    reenabled = toolchain.gil_enabled_after_import(ft_python, "named", tmp_path)
    assert reenabled is (expected is Gil.USED)
