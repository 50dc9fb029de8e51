"""AArch64 loads from a PC-relative literal (`ldr x8, #slot`), the form Apple's linkers give
GOT loads and stubs (`nop; ldr x16, #slot; br x16`) where the slot is near: the walk reads
the import's address from the slot and reaches the declaration behind it.

numpy's macOS arm64 wheels reach every import through such stubs; before the walk modelled
the literal load, none of their single-phase modules' declarations was reached."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import capstone
import pytest
from capstone import arm64_const

from fixtures.build import HERE
from ftaudit.inspect.extension import inspect_binary, load_image
from ftaudit.model import Gil, Init
from tests.helpers import toolchain

SOURCE = HERE / "ext" / "literal_loads.c"
_LINK = ("-arch", "arm64", "-platform_version", "macos", "11.0", "11.0", "-bundle")


def _build(work: Path, name: str, not_used: bool) -> Path:
    absent = [t for t in ("clang", "ld64.lld-19") if shutil.which(t) is None]
    if absent:
        toolchain.missing(f"toolchain missing for Mach-O fixtures: {', '.join(absent)}")
    obj, target = work / f"{name}.o", work / f"{name}.cpython-313t-darwin.so"
    defines = [f"-DMODNAME={name}"] + (["-DNOT_USED"] if not_used else [])
    compile_ = ["clang", "--target=arm64-apple-macos11", "-ffreestanding", "-O2", "-c"]
    subprocess.run([*compile_, *defines, str(SOURCE), "-o", str(obj)], check=True)
    link = ["ld64.lld-19", *_LINK, "-undefined", "dynamic_lookup", "-fixup_chains"]
    subprocess.run([*link, str(obj), "-o", str(target)], check=True)
    return target


def _literal_loads(path: Path, export: str) -> int:
    """How many `ldr Xn, #literal` the export's first instructions hold."""
    image = load_image(path.read_bytes())
    assert image is not None
    start = image.exports[export]
    code = image.read(start, 64)
    assert code is not None
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.detail = True
    return sum(
        1
        for insn in md.disasm(code, start)
        if insn.id == arm64_const.ARM64_INS_LDR
        and insn.operands[-1].type == arm64_const.ARM64_OP_IMM
    )


@pytest.mark.parametrize(("not_used", "expected"), [(True, Gil.NOT_USED), (False, Gil.USED)])
def test_declaration_behind_a_literal_load(tmp_path: Path, not_used: bool, expected: Gil) -> None:
    name = "lit_not_used" if not_used else "lit_used"
    so = _build(tmp_path, name, not_used)
    # The code has the shape under test: both imports' addresses come from literal loads
    # (if the linker stopped rewriting adrp pairs, this test would prove nothing).
    assert _literal_loads(so, f"PyInit_{name}") >= 2
    found = inspect_binary(so.name, so.read_bytes())
    assert found.gil is expected, found.detail
    assert found.init is Init.SINGLE_PHASE
    assert "PyUnstable_Module_SetGIL" in found.detail
