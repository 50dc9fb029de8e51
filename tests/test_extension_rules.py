"""Rules of the extension reader that no single fixture variant shows."""

from __future__ import annotations

from pathlib import Path

from ftaudit.inspect.extension import inspect_binary, module_name, tagged_free_threaded
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


def test_cffi_generated_module_is_unknown_with_the_reason(ft_python: str, tmp_path: Path) -> None:
    so = toolchain.compile_module(
        ft_python, 1, "_generated", tmp_path, flags=("-O2", "-DCFFI_LIKE")
    )
    ext = _judge(so)
    assert ext.gil is Gil.UNKNOWN
    assert "cffi" in ext.detail and "_cffi_backend" in ext.detail


def test_the_cffi_backend_itself_is_read_like_any_module(ft_python: str, tmp_path: Path) -> None:
    so = toolchain.compile_module(
        ft_python, 1, "_cffi_backend", tmp_path, flags=("-O2", "-DCFFI_LIKE")
    )
    assert _judge(so).gil is Gil.NOT_USED
