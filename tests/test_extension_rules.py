"""Rules of the extension reader that no single fixture variant shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.build import AARCH64_FLAGS
from ftaudit.inspect import walk
from ftaudit.inspect.extension import (
    inspect_binary,
    load_image,
    module_name,
    tagged_free_threaded,
)
from ftaudit.model import Extension, Gil
from tests.helpers import toolchain


def test_module_names() -> None:
    assert module_name("pkg/sub/_x.cpython-313t-x86_64-linux-gnu.so") == "pkg.sub._x"
    assert module_name("mypy/__init__.cpython-314t-x86_64-linux-gnu.so") == "mypy"
    assert module_name("pkg-1.0.data/platlib/top.abi3.so") == "top"
    assert module_name("pkg\\_win.cp314t-win_amd64.pyd") == "pkg._win"


def test_abi_tag_in_file_names() -> None:
    assert tagged_free_threaded("x.cpython-313t-x86_64-linux-gnu.so") is True
    assert tagged_free_threaded("x.cpython-313-x86_64-linux-gnu.so") is False
    assert tagged_free_threaded("x.cp314t-win_amd64.pyd") is True
    assert tagged_free_threaded("x.abi3.so") is False
    assert tagged_free_threaded("x.so") is None


def _judge(path: Path) -> Extension:
    found = inspect_binary(path.name, path.read_bytes())
    assert isinstance(found, Extension)
    return found


def test_the_name_of_the_cffi_backend_does_not_hide_a_declaration(
    ft_python: str, tmp_path: Path
) -> None:
    """A module that embeds a cffi submodule (cryptography's _rust) declares its own."""
    so = toolchain.compile_module(
        ft_python, 1, "_generated", tmp_path, flags=("-O2", "-DCFFI_LIKE")
    )
    assert _judge(so).gil is Gil.NOT_USED


def test_the_cffi_backend_itself_is_read_like_any_module(ft_python: str, tmp_path: Path) -> None:
    so = toolchain.compile_module(
        ft_python, 1, "_cffi_backend", tmp_path, flags=("-O2", "-DCFFI_LIKE")
    )
    assert _judge(so).gil is Gil.NOT_USED


@pytest.mark.ft
@pytest.mark.parametrize(
    ("variant", "where", "name", "expected"),
    [
        (10, 1, "_large_const", Gil.NOT_USED),  # slots in .data.rel.ro
        (10, 2, "_large_const_after", Gil.NOT_USED),
        (4, 1, "_large_runtime", Gil.NOT_USED),  # slots written after the call
        (4, 2, "_large_runtime_after", Gil.UNKNOWN),  # written before: it could change them
        (2, 1, "_large_used", Gil.UNKNOWN),  # slots in .data: it could change them
    ],
)
def test_a_large_setup_routine_is_stepped_over_and_what_it_could_change_is_unknown(
    ft_python: str, tmp_path: Path, variant: int, where: int, name: str, expected: Gil
) -> None:
    """pybind11 3's PyInit calls get_internals (about 11,000 instructions, no declaring
    call in reach) before PyModuleDef_Init. Walking through the fixture's stand-in spends
    the whole budget; a second walk steps over it. What it could have written (writable
    data, slots the path wrote before the call) is then unknown, never not_used; what it
    cannot (.data.rel.ro, read-only once relocated; slots written after it) stays known."""
    so = toolchain.compile_module(
        ft_python, variant, name, tmp_path, flags=("-O2", f"-DLARGE_SETUP={where}")
    )
    ext = _judge(so)
    assert ext.gil is expected, ext.detail
    re_enabled = toolchain.gil_enabled_after_import(ft_python, name, tmp_path)
    assert re_enabled == (variant == 2), ext.detail


def test_relro_data_is_read_only_and_data_is_not(ft_python: str, tmp_path: Path) -> None:
    """PT_GNU_RELRO: the loader makes .data.rel.ro read-only after relocating it, before
    any init code runs; .data stays writable."""
    so = toolchain.compile_module(ft_python, 10, "_relro", tmp_path, flags=("-O2",))
    image = load_image(so.read_bytes())
    assert image is not None
    spans = {name: start for name, start, _size in image.sections}
    assert not image.is_writable(spans[".data.rel.ro"])
    assert image.is_writable(spans[".data"])


@pytest.mark.ft
@pytest.mark.parametrize(("variant", "expected"), [(5, Gil.NOT_USED), (6, Gil.USED)])
def test_a_flag_passed_the_way_pyo3_passes_it(
    ft_python: str, tmp_path: Path, variant: int, expected: Gil
) -> None:
    """PyO3 hands `gil_used` to PyUnstable_Module_SetGIL through a closure: a pointer to
    the flag, copied 16 bytes at a time beside a pointer the walk cannot know, then
    `cmp byte [flag], 0; sete`. Both halves of that are followed."""
    name = f"_closure_{variant}"
    so = toolchain.compile_module(
        ft_python, variant, name, tmp_path, flags=("-O2", "-DCLOSURE_COPY")
    )
    ext = _judge(so)
    assert ext.gil is expected, ext.detail
    assert toolchain.gil_enabled_after_import(ft_python, name, tmp_path) == (variant == 6)


@pytest.mark.ft
@pytest.mark.parametrize(("variant", "expected"), [(5, Gil.NOT_USED), (6, Gil.USED)])
def test_a_declaration_reached_only_through_a_function_pointer(
    ft_python: str, tmp_path: Path, variant: int, expected: Gil
) -> None:
    """PyO3's once-cell: PyInit calls a large make_module that reaches the declaring code
    only through a closure's vtable. The first walk steps over make_module and finds no
    declaration; the second counts calls through pointers as ones that may declare."""
    name = f"_once_cell_{variant}"
    so = toolchain.compile_module(ft_python, variant, name, tmp_path, flags=("-O2", "-DONCE_CELL"))
    ext = _judge(so)
    assert ext.gil is expected, ext.detail
    assert toolchain.gil_enabled_after_import(ft_python, name, tmp_path) == (variant == 6)
    # A verdict from a walk whose budget ended first says that it rests on fewer paths.
    image = load_image(so.read_bytes())
    assert image is not None
    image.ensure_relocated()
    walked = walk.walk(image, image.exports[f"PyInit_{name}"])
    assert ("budget ended before every path" in ext.detail) == walked.exhausted


@pytest.mark.ft
def test_a_compare_exchange_that_succeeds_on_a_first_import(ft_python: str, tmp_path: Path) -> None:
    """PyO3 records the first interpreter to import a module with a compare-exchange on a
    static that starts at -1 (x86 `lock cmpxchg`, AArch64 `casal` then `cmn x8, #1`):
    on a first import it succeeds, so the side that declares otherwise is not a path the
    import can take. Paths that differ only in an argument register are not merged."""
    flags = ("-O2", "-DFIRST_IMPORT_CAS")
    so = toolchain.compile_module(ft_python, 5, "_first_cas", tmp_path / "x86", flags=flags)
    ext = _judge(so)
    assert ext.gil is Gil.NOT_USED, ext.detail
    assert not toolchain.gil_enabled_after_import(ft_python, "_first_cas", so.parent)
    toolchain.need_tool("ld.lld")
    arm = toolchain.compile_module(
        ft_python,
        5,
        "_first_cas",
        tmp_path / "aarch64",
        cc="clang",
        flags=(*AARCH64_FLAGS, "-march=armv8.1-a", *flags),
    )
    arm_ext = _judge(arm)
    assert arm_ext.gil is Gil.NOT_USED, arm_ext.detail
