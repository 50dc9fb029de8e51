"""Hostile wheels and binaries: each a member's `unknown` with its reason or a one-line
error with exit 2, never a traceback, never an allocation of what a header claims.

The inputs under tests/data/hardening/ are minimal reproductions of inputs that once
broke ftaudit; the others are built here.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fixtures.build import _PE_IMPORTS
from ftaudit.cli import main
from ftaudit.errors import BinaryFormatError, InputError
from ftaudit.inspect.artifact import inspect_file, inspect_installed, inspect_wheel
from ftaudit.inspect.extension import inspect_binary
from ftaudit.model import ArtifactFacts, BinaryFormat, Extension, Gil, Init
from ftaudit.report.terminal import render_inspect
from tests.helpers import toolchain
from tests.helpers.wheels import build_wheel

DATA = Path(__file__).parent / "data" / "hardening"
SEEDS = Path(__file__).parent / "fuzz" / "seeds"
REPO = Path(__file__).resolve().parents[1]
TAG = "cp313-cp313t-manylinux_2_17_x86_64"
ELF_USED = SEEDS / "elf" / "gilmod-multi_used.so"  # fixtures/ext/gilmod.c variant 2


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def inspect_json(wheel: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code, out, err = run(["inspect", str(wheel), "--format", "json"], capsys)
    assert code == 0, err
    doc: dict[str, object] = json.loads(out)
    return doc


def unreadable(facts: ArtifactFacts) -> dict[str, str]:
    return dict(facts.unreadable)


# --- the reproductions ---------------------------------------------------------------------


def test_member_named_with_rich_markup_prints_as_it_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    wheel = DATA / f"markup-1.0-{TAG}.whl"
    code, out, err = run(["inspect", str(wheel)], capsys)
    assert code == 0, err
    assert "unreadable: markup/[/].so — " in out


def test_names_and_reasons_are_never_markup() -> None:
    ext = Extension(
        path="x/[/].so",
        module="x.[bold]m[/bold]",
        gil=Gil.USED,
        init=Init.MULTI_PHASE,
        format=BinaryFormat.ELF,
        free_threaded_build=True,
        detail="slot at [/] [red]here",
    )
    facts = ArtifactFacts(
        artifact="[/]-1.0.whl",
        tags=("[x]",),
        extensions=(ext,),
        unreadable=(("a/[/]b.so", "why [/]"),),
    )
    text = render_inspect(facts, width=200)
    for shown in ("[/]-1.0.whl  [[x]]", "x.[bold]m[/bold]", "slot at [/] [red]here", "a/[/]b.so"):
        assert shown in text, text


def test_corrupt_deflate_member_is_unreadable(capsys: pytest.CaptureFixture[str]) -> None:
    doc = inspect_json(DATA / f"zlib-error-1.0-{TAG}.whl", capsys)
    assert doc["unreadable"] == [
        {
            "path": "zerr/m.so",
            "why": "cannot read: corrupt member (deflate: Error -3 while decompressing data: "
            "invalid literal/lengths set)",
        }
    ]


@pytest.mark.parametrize(
    ("wheel", "message"),
    [
        ("zipversion", "not a readable wheel (zip file version 7.7)"),
        ("badutf8", "not a readable wheel (a member name is not valid UTF-8)"),
    ],
)
def test_unreadable_zip_directory_is_one_line(
    capsys: pytest.CaptureFixture[str], wheel: str, message: str
) -> None:
    name = f"{wheel}-1.0-{TAG}.whl"
    code, out, err = run(["inspect", str(DATA / name)], capsys)
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [f"ftaudit: error: {name}: {message}"]


def _limited_inspect(path: Path) -> subprocess.CompletedProcess[str]:
    """`ftaudit inspect` in a child whose address space is 2 GiB: an allocation of what a
    header claims fails there, as it would on a small machine."""
    limit = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
        "from ftaudit.cli import main; sys.exit(main(['inspect', sys.argv[1], "
        "'--format', 'json']))"
    )
    return subprocess.run(
        [sys.executable, "-c", limit, str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_huge_relasz_and_memsz_in_bounded_memory() -> None:
    proc = _limited_inspect(DATA / "elf-relasz-multi_used.cpython-313t-x86_64-linux-gnu.so")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    (entry,) = json.loads(proc.stdout)["unreadable"]
    assert "overlaps the one at 0x1000" in entry["why"]


def _patched_elf(tmp_path: Path, relasz: int, last_memsz: int) -> Path:
    """The fixture module with DT_RELASZ and the last PT_LOAD's p_memsz set: the segment
    overlaps nothing, so the file stays a valid layout that merely claims a lot."""
    data = bytearray(ELF_USED.read_bytes())
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        at = phoff + i * phentsize
        (p_type,) = struct.unpack_from("<I", data, at)
        if p_type == 1:
            loads.append(at)
        elif p_type == 2:
            dynamic = struct.unpack_from("<Q", data, at + 8)[0]
    assert loads and dynamic is not None
    struct.pack_into("<Q", data, loads[-1] + 40, last_memsz)
    for at in range(dynamic, len(data) - 16, 16):
        (tag,) = struct.unpack_from("<q", data, at)
        if tag == 8:  # DT_RELASZ
            struct.pack_into("<Q", data, at + 8, relasz)
        if tag == 0:
            break
    out = tmp_path / "_core.cpython-313t-x86_64-linux-gnu.so"
    out.write_bytes(bytes(data))
    return out


def test_claimed_table_sizes_are_clamped_to_the_file(tmp_path: Path) -> None:
    """A DT_RELASZ of 416 MiB and a last segment of 2**40 bytes: read as far as the file
    goes, the tables are the real ones and the verdict is unchanged."""
    so = _patched_elf(tmp_path, 0x1A000000, 1 << 40)
    proc = _limited_inspect(so)
    assert proc.returncode == 0, proc.stderr
    (ext,) = json.loads(proc.stdout)["extensions"]
    assert ext["gil"] == "used", ext


# --- sizes checked before reading ----------------------------------------------------------


def test_a_3gb_binary_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "huge.cpython-313t-x86_64-linux-gnu.so"
    with open(big, "wb") as fh:
        fh.write(b"\x7fELF")
        fh.truncate(3 << 30)  # sparse: costs no disk, and reading it would cost 3 GB
    with pytest.raises(InputError, match=r"3221225472 bytes is larger than ftaudit reads"):
        inspect_file(big)


@pytest.mark.parametrize("suffix", [".so", ".whl"])
def test_inspect_command_reads_no_more_than_it_judges(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ftaudit inspect` of a 3 GB binary or a FIFO: one line and exit 2, found before any
    byte is read (in a child under a 1 GiB address-space cap, so reading it would fail)."""
    big = tmp_path / f"huge{suffix}"
    with open(big, "wb") as fh:
        fh.write(b"\x7fELF")
        fh.truncate(3 << 30)
    fifo = tmp_path / "pipe.cpython-313t-x86_64-linux-gnu.so"
    os.mkfifo(fifo)
    for path, message in ((big, "larger than ftaudit reads"), (fifo, "not a regular file")):
        if path is big and suffix == ".whl":
            message = "huge.whl: not a readable wheel"
        proc = subprocess.run(
            ["prlimit", f"--as={1 << 30}", sys.executable, "-m", "ftaudit", "inspect", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_installed_files_that_are_not_regular_files(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "_zero.so").symlink_to("/dev/zero")  # endless if read
    os.mkfifo(site / "pkg" / "_fifo.so")  # blocks forever if opened for reading
    facts = inspect_installed("pkg", site, ["pkg/_zero.so"])
    assert unreadable(facts) == {"pkg/_zero.so": "cannot read: _zero.so: not a regular file"}


# --- archive errors, one member at a time --------------------------------------------------


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return bytearray(buf.getvalue())


def _central(data: bytearray, index: int = 0) -> int:
    pos = -1
    for _ in range(index + 1):
        pos = data.index(b"PK\x01\x02", pos + 1)
    return pos


def _judged(tmp_path: Path, data: bytes) -> ArtifactFacts:
    wheel = tmp_path / f"demo-1.0-{TAG}.whl"
    wheel.write_bytes(data)
    return inspect_wheel(wheel)


ELF_MEMBER = "demo/_core.cpython-313t-x86_64-linux-gnu.so"


def test_a_healthy_member_of_each_compression_is_judged(tmp_path: Path) -> None:
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, 14):
        facts = _judged(tmp_path, bytes(_zip([(ELF_MEMBER, ELF_USED.read_bytes())], method)))
        assert [e.gil for e in facts.extensions] == [Gil.USED], (method, facts.unreadable)


def test_encrypted_member(tmp_path: Path) -> None:
    data = _zip([(ELF_MEMBER, ELF_USED.read_bytes())])
    struct.pack_into("<H", data, _central(data) + 8, 0x1)
    assert unreadable(_judged(tmp_path, bytes(data))) == {
        ELF_MEMBER: "cannot read: encrypted member"
    }


def test_unsupported_compression_method(tmp_path: Path) -> None:
    data = _zip([(ELF_MEMBER, ELF_USED.read_bytes())])
    struct.pack_into("<H", data, _central(data) + 10, 99)  # AE-x
    assert unreadable(_judged(tmp_path, bytes(data))) == {
        ELF_MEMBER: "cannot read: unsupported compression method 99"
    }


def test_crc_mismatch(tmp_path: Path) -> None:
    data = _zip([(ELF_MEMBER, ELF_USED.read_bytes())], zipfile.ZIP_STORED)
    at = data.index(b"\x7fELF") + 0x400
    data[at] ^= 0xFF
    assert unreadable(_judged(tmp_path, bytes(data))) == {
        ELF_MEMBER: "cannot read: corrupt member (CRC mismatch)"
    }


def test_duplicate_names(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = _zip([(ELF_MEMBER, ELF_USED.read_bytes()), (ELF_MEMBER, b"\x7fELF")])
    found = _judged(tmp_path, bytes(data)).unreadable
    assert found == ((ELF_MEMBER, "cannot read: the archive holds two members of this name"),) * 2


def test_members_sharing_their_data(tmp_path: Path) -> None:
    """Many directory entries over one compressed stream: the overlapping zip bomb."""
    data = _zip([(ELF_MEMBER, ELF_USED.read_bytes()), ("demo/_other.so", b"\x7fELF" * 8)])
    first, second = _central(data), _central(data, 1)
    offset = struct.unpack_from("<I", data, first + 42)[0]
    struct.pack_into("<I", data, second + 42, offset)
    reasons = unreadable(_judged(tmp_path, bytes(data)))
    assert reasons[ELF_MEMBER] == (
        "cannot read: member data overlaps another member (a zip bomb's trick)"
    )


def test_data_running_into_the_next_member(tmp_path: Path) -> None:
    data = _zip([(ELF_MEMBER, ELF_USED.read_bytes()), ("demo/_other.so", b"\x7fELF" * 8)])
    size = struct.unpack_from("<I", data, _central(data) + 20)[0]
    struct.pack_into("<I", data, _central(data) + 20, size + 64)  # compressed size
    reasons = unreadable(_judged(tmp_path, bytes(data)))
    assert reasons[ELF_MEMBER] == (
        "cannot read: member data overlaps another member or the zip directory"
    )


def test_local_header_naming_another_file(tmp_path: Path) -> None:
    data = _zip([(ELF_MEMBER, ELF_USED.read_bytes())])
    at = data.index(ELF_MEMBER.encode())  # the local header's copy comes first
    data[at : at + 4] = b"evil"
    assert unreadable(_judged(tmp_path, bytes(data))) == {
        ELF_MEMBER: "cannot read: local header names another file than the zip directory"
    }


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, 14])
def test_a_directory_lying_about_the_size_cannot_inflate_a_bomb(
    tmp_path: Path, method: int
) -> None:
    """256 MiB of zeros declared as 1 KiB: decompression stops at 1 KiB + 1 byte."""
    wheel = tmp_path / f"bomb-1.0-{TAG}.whl"
    with (
        zipfile.ZipFile(wheel, "w", method) as zf,
        zf.open("bomb/_x.so", "w", force_zip64=False) as fh,
    ):
        chunk = b"\x7fELF" + bytes(1 << 20)
        for _ in range(256):
            fh.write(chunk)
    data = bytearray(wheel.read_bytes())
    struct.pack_into("<I", data, _central(data) + 24, 1024)  # uncompressed size
    assert unreadable(_judged(tmp_path, bytes(data))) == {
        "bomb/_x.so": "cannot read: member size does not match the zip directory"
    }


# --- Windows DLLs --------------------------------------------------------------------------


def _pe_tools() -> None:
    from fixtures.build import missing_portable_tools

    missing = missing_portable_tools()
    if missing:
        toolchain.missing(f"clang, lld-link and llvm-dlltool ({', '.join(missing)} missing)")


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def _build_handover(work: Path, variant: int) -> tuple[bytes, bytes]:
    work.mkdir(parents=True)
    cc = ["clang", "--target=x86_64-pc-windows-msvc", "-ffreestanding", "-O2", "-c"]
    link = ["lld-link", "/dll", "/noentry", "/nodefaultlib", "/machine:x64"]
    portable = REPO / "fixtures" / "ext" / "portable.c"
    dll = work / "libhandover-0a1b2c3d.dll"
    defs = {
        "python313t": list(_PE_IMPORTS),
        dll.stem: ["Wrapped_PyInit_handed"],
    }
    libs = {}
    for name, exports in defs.items():
        (work / f"{name}.def").write_text(f"LIBRARY {name}.dll\nEXPORTS\n" + "\n".join(exports))
        libs[name] = work / f"{name}.lib"
        _run(["llvm-dlltool", "-m", "i386:x86-64", "-d", str(work / f"{name}.def"), "-l",
              str(libs[name])])  # fmt: skip
    _run(
        [
            *cc,
            f"-DVARIANT={variant}",
            "-DMODNAME=handed",
            "-DFT",
            "-DPyInit_handed=Wrapped_PyInit_handed",
            str(portable),
            "-o",
            str(work / "lib.o"),
        ]
    )
    _run([*link, f"/out:{dll}", str(work / "lib.o"), str(libs["python313t"])])
    _run([*cc, str(DATA / "handover_pe.c"), "-o", str(work / "mod.o")])
    pyd = work / "handed.cp313t-win_amd64.pyd"
    _run([*link, f"/out:{pyd}", str(work / "mod.o"), str(libs[dll.stem])])
    return pyd.read_bytes(), dll.read_bytes()


@pytest.mark.parametrize(("variant", "expected"), [(1, Gil.NOT_USED), (2, Gil.USED)])
def test_init_handed_to_a_dll_in_libs(tmp_path: Path, variant: int, expected: Gil) -> None:
    _pe_tools()
    pyd, dll = _build_handover(tmp_path / "build", variant)
    wheel = build_wheel(
        tmp_path / "dist",
        "fthand",
        "1.0",
        "cp313-cp313t-win_amd64",
        {
            "fthand/__init__.py": b"",
            "fthand/handed.cp313t-win_amd64.pyd": pyd,
            "fthand.libs/libhandover-0a1b2c3d.dll": dll,
        },
    )
    facts = inspect_wheel(wheel)
    (ext,) = facts.extensions
    assert (ext.module, ext.gil) == ("fthand.handed", expected), ext.detail
    assert "init handed to Wrapped_PyInit_handed in fthand.libs/libhandover-0a1b2c3d.dll" in (
        ext.detail
    )
    assert [lib.path for lib in facts.libraries] == ["fthand.libs/libhandover-0a1b2c3d.dll"]
    assert facts.import_names == ("fthand",)


def test_a_dll_is_a_library_whatever_it_exports(tmp_path: Path) -> None:
    """A .dll exporting PyInit_x is still no module: Python imports only .pyd files."""
    pyd = next(SEEDS.glob("pe/portable-multi_used.pyd")).read_bytes()
    assert isinstance(inspect_binary("_core.pyd", pyd), Extension)
    wheel = build_wheel(tmp_path, "w", "1.0", "cp313-cp313t-win_amd64", {"w.libs/_core.dll": pyd})
    facts = inspect_wheel(wheel)
    assert facts.extensions == ()
    assert [(lib.path, lib.why) for lib in facts.libraries] == [
        ("w.libs/_core.dll", "a DLL: Python imports modules only from .pyd files")
    ]


# --- Mach-O tables that repeat -------------------------------------------------------------


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def test_bind_opcodes_cannot_claim_more_pointers_than_the_file_has() -> None:
    """BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB, a million times over, four times: a
    dozen bytes asking for four million pointer slots in a 4 KiB file."""
    from ftaudit.inspect.image import Image
    from ftaudit.inspect.macho import _binds, _Budget

    image = Image(arch="aarch64", pointer_size=8, little_endian=True, segments=[])
    stream = b"\x40_x\x00" + b"\x70" + _uleb(0)
    stream += (b"\xc0" + _uleb(1 << 20) + _uleb(0)) * 4
    with pytest.raises(BinaryFormatError, match="more binds than the file has words"):
        _binds(image, stream, [0], _Budget(4096))


def test_an_endless_leb128_is_corrupt() -> None:
    from ftaudit.inspect.macho import _uleb as read_uleb

    with pytest.raises(ValueError, match="longer than 64 bits"):
        read_uleb(b"\xff" * 100_000 + b"\x01", 0)
