"""Large wheel members are searched chunk by chunk before anything holds them whole.

torch's libtorch_cuda.so (462 MB) and libtorch_cpu.so (447 MB) were read whole to learn
they export no init function, and `ftaudit inspect` of the wheel peaked at 3.4 GB. An ELF
file keeps each exported name whole in its dynamic string table, so a member whose bytes
never say PyInit_ or PyModExport_ is a library: it is judged from the search alone, with
the size and CRC checks of a whole read. The threshold is lowered here so that compiled
fixtures of a few kilobytes take that path."""

from __future__ import annotations

import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from ftaudit.inspect import artifact
from ftaudit.inspect.archive import Archive, MemberError, _Search
from ftaudit.inspect.extension import NO_INIT_EXPORT
from ftaudit.model import Extension, Library
from tests.helpers import toolchain
from tests.helpers.wheels import build_wheel

LIB = "pkg/libhelper.so"
MOD = "pkg/mod.cpython-313t-x86_64-linux-gnu.so"


@pytest.fixture(scope="module")
def wheel(ft_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("large")
    source = work / "helper.c"
    source.write_text("int helper(int x) { return x * 3 + 1; }\n")
    lib = work / "libhelper.so"
    cc = toolchain.need_tool("gcc")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", str(source), "-o", str(lib)], check=True)
    mod = toolchain.compile_module(ft_python, 5, "mod", work / "mod")
    files = {LIB: lib.read_bytes(), MOD: mod.read_bytes()}
    return build_wheel(work / "dist", "pkg", "1.0", "cp313-cp313t-linux_x86_64", files)


@pytest.fixture
def read_whole(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every member searched first; the names of those read whole."""
    monkeypatch.setattr(artifact, "SEARCH_FIRST_BYTES", 0)
    read: list[str] = []
    whole = Archive.read

    def recording(self: Archive, info: zipfile.ZipInfo, cap: int = 1 << 29) -> bytes:
        read.append(info.filename)
        return whole(self, info, cap)

    monkeypatch.setattr(Archive, "read", recording)
    return read


def test_a_library_is_judged_without_being_read_whole(wheel: Path, read_whole: list[str]) -> None:
    facts = artifact.inspect_wheel(wheel)
    libraries = {lib.path: lib for lib in facts.libraries}
    assert libraries[LIB] == Library(path=LIB, why=NO_INIT_EXPORT)
    assert LIB not in read_whole
    # The extension module names its init function: it is read and judged as ever.
    (ext,) = facts.extensions
    assert isinstance(ext, Extension)
    assert ext.path == MOD and MOD in read_whole
    assert facts.unreadable == ()


def test_the_search_judges_as_a_whole_read_does(
    wheel: Path, read_whole: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    searched = artifact.inspect_wheel(wheel)
    read_whole.clear()
    monkeypatch.setattr(artifact, "SEARCH_FIRST_BYTES", 1 << 40)  # nothing searched first
    assert artifact.inspect_wheel(wheel) == searched
    assert LIB in read_whole


def test_a_corrupt_member_stays_unreadable(
    wheel: Path, tmp_path: Path, read_whole: list[str]
) -> None:
    """The search checks the CRC as a whole read does."""
    data = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo(LIB)
    name_len, extra_len = struct.unpack_from("<2H", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0xFF
    broken = tmp_path / wheel.name
    broken.write_bytes(bytes(data))
    facts = artifact.inspect_wheel(broken)
    assert [path for path, _ in facts.unreadable] == [LIB]
    assert LIB not in {lib.path for lib in facts.libraries}


def test_a_name_split_between_chunks_is_found() -> None:
    search = _Search((b"PyInit_", b"PyModExport_"), 100)
    for chunk in (b"\x7fEL", b"F..PyI", b"n", b"it_mod\0"):
        search.feed(chunk)
    assert search.found and search.head == b"\x7fELF"
    missing = _Search((b"PyInit_",), 100)
    for chunk in (b"PyIni", b"x_PyInit"):
        missing.feed(chunk)
    assert not missing.found


def test_more_bytes_than_the_directory_says_are_refused() -> None:
    search = _Search((b"PyInit_",), 4)
    with pytest.raises(MemberError):
        search.feed(b"12345")
