"""The ELF, Mach-O and PE readers, through the whole judgement of one binary.

Seeds: the binaries inside the real wheels of tests/data/wheels, and the fixture modules
committed under tests/fuzz/seeds/<target>/ (built from fixtures/ext by fixtures/build.py:
see tests/fuzz/seeds/README.md).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from ftaudit.errors import BinaryFormatError
from ftaudit.inspect.extension import inspect_binary
from tests.fuzz.harness import Mutator, Target
from tests.fuzz.mutate import mutate_elf, mutate_macho, mutate_pe

WHEELS = Path(__file__).resolve().parents[1] / "data" / "wheels"
_LIMIT = 64 * 1024  # larger binaries make each input slow: fewer inputs, no more coverage


def wheel_binaries(*suffixes: str) -> list[bytes]:
    out = []
    for wheel in sorted(WHEELS.glob("*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if info.filename.endswith(suffixes) and info.file_size <= _LIMIT:
                    out.append(zf.read(info))
    return out


def _judge(path: str) -> Callable[[bytes], object]:
    def run(data: bytes) -> object:
        return inspect_binary(path, data)

    return run


def _target(name: str, path: str, seeds: list[bytes], mutator: Mutator, parser: str) -> Target:
    return Target(
        name=name,
        run=_judge(path),
        seeds=seeds,
        clean_errors=(BinaryFormatError,),
        mutators=(mutator,),
        instrument=("ftaudit", parser),
    )


TARGETS = {
    t.name: t
    for t in (
        _target(
            "elf",
            "pkg/_core.cpython-313t-x86_64-linux-gnu.so",
            [b for b in wheel_binaries(".so") if b[:4] == b"\x7fELF"],
            mutate_elf,
            "elftools",
        ),
        _target(
            "macho",
            "pkg/_core.cpython-313t-darwin.so",
            [b for b in wheel_binaries(".so") if b[:4] != b"\x7fELF"],
            mutate_macho,
            "macholib",
        ),
        _target(
            "pe", "pkg/_core.cp313t-win_amd64.pyd", wheel_binaries(".pyd"), mutate_pe, "pefile"
        ),
    )
}
