"""Damaged and hostile binaries: a verdict or a BinaryFormatError, never a crash or a hang."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ftaudit.errors import BinaryFormatError
from ftaudit.inspect.extension import inspect_binary
from ftaudit.model import Extension, Gil, Library
from tests.helpers import toolchain


@pytest.fixture(scope="module")
def sample(ft_python: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("sample")
    return toolchain.compile_module(ft_python, 5, "sample", out).read_bytes()  # single-phase


def _judge(data: bytes) -> str:
    try:
        found = inspect_binary("sample.cpython-313t-x86_64-linux-gnu.so", data)
    except BinaryFormatError:
        return "error"
    assert isinstance(found, Extension | Library)
    return "library" if isinstance(found, Library) else found.gil.value


def test_unharmed_sample(sample: bytes) -> None:
    assert _judge(sample) == Gil.NOT_USED.value


@pytest.mark.parametrize("seed", range(4))
def test_byte_flips(sample: bytes, seed: int) -> None:
    rng = random.Random(seed)
    outcomes = set()
    for _ in range(60):
        data = bytearray(sample)
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        outcomes.add(_judge(bytes(data)))
    assert outcomes <= {"error", "library", *(g.value for g in Gil)}


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.1, 0.3, 0.5, 0.9, 0.999])
def test_truncation(sample: bytes, fraction: float) -> None:
    cut = sample[: int(len(sample) * fraction)]
    assert _judge(cut) in {"error", "library", *(g.value for g in Gil)}


def test_header_fields_pointing_everywhere(sample: bytes) -> None:
    """Program/section header offsets and counts set to extremes."""
    for offset in (0x20, 0x28, 0x36, 0x38, 0x3C, 0x3E):  # e_phoff, e_shoff, sizes, counts
        for value in (b"\xff" * 8, b"\x00" * 8, b"\x7f\xff\xff\xff\xff\xff\xff\x7f"):
            data = bytearray(sample)
            width = 8 if offset in (0x20, 0x28) else 2
            data[offset : offset + width] = value[:width]
            assert _judge(bytes(data)) in {"error", "library", *(g.value for g in Gil)}


def test_non_elf_inputs(tmp_path: Path) -> None:
    for blob in (b"", b"\x7fELF", b"MZ" + b"\0" * 100, b"\xcf\xfa\xed\xfe" + b"\0" * 100):
        with pytest.raises(BinaryFormatError):
            inspect_binary("x.so", blob)


WHEELS = Path(__file__).parent / "data" / "wheels"


def _member(wheel: str, suffix: str) -> tuple[str, bytes]:
    import zipfile

    with zipfile.ZipFile(next(WHEELS.glob(wheel))) as zf:
        name = next(n for n in zf.namelist() if n.endswith(suffix))
        return name, zf.read(name)


@pytest.mark.parametrize(
    ("wheel", "suffix"),
    [
        ("markupsafe-3.0.3-cp313-cp313t-win_amd64.whl", ".pyd"),
        ("markupsafe-3.0.3-cp313-cp313t-macosx_11_0_arm64.whl", ".so"),
    ],
)
def test_pe_and_macho_survive_damage(wheel: str, suffix: str) -> None:
    """Real PE and Mach-O modules, byte-flipped and truncated: a verdict or an error."""
    name, original = _member(wheel, suffix)
    assert isinstance(inspect_binary(name, original), Extension)
    rng = random.Random(7)
    allowed = {"error", "library", *(g.value for g in Gil)}
    for _ in range(150):
        data = bytearray(original)
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        for blob in (bytes(data), original[: rng.randrange(len(original))]):
            try:
                found = inspect_binary(name, blob)
            except BinaryFormatError:
                continue
            verdict = "library" if isinstance(found, Library) else found.gil.value
            assert verdict in allowed
