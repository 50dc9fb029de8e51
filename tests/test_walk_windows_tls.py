"""Thread-safe statics as MSVC compiles them for Windows: a function-local static's guard
is compared with an epoch in thread-local storage, reached through the thread's TEB
(gs:[0x58] on x64, [x18, #0x58] on ARM64), and only a guard newer than the epoch runs
the initialiser that fills the slot array. Read as the first import finds them (guard 0,
epoch INT_MIN from the TLS template), only the initialising path is feasible.

pybind11 modules built with MSVC for win_arm64 (matplotlib's, contourpy's, scipy's) have
this shape; before x18 was modelled the epoch was unknown, the path that skips the
initialiser was walked too, and the paths disagreed."""

from __future__ import annotations

import shutil
from pathlib import Path

import capstone
import pytest

from fixtures.build import build_tls_statics
from ftaudit.inspect.extension import inspect_binary, load_image
from ftaudit.model import Gil, Init
from tests.helpers import toolchain


def _teb_loads(path: Path, export: str) -> int:
    """How many loads of the TEB's TLS array (`ldr Xn, [x18, #0x58]`) the export holds."""
    image = load_image(path.read_bytes())
    assert image is not None
    start = image.exports[export]
    code = image.read(start, 64)
    assert code is not None
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    return sum(1 for insn in md.disasm(code, start) if insn.op_str.endswith("[x18, #0x58]"))


@pytest.mark.parametrize("arch", ["aarch64", "x86_64"])
@pytest.mark.parametrize(("used", "expected"), [(False, Gil.NOT_USED), (True, Gil.USED)])
def test_slots_behind_a_thread_local_epoch(
    tmp_path: Path, arch: str, used: bool, expected: Gil
) -> None:
    absent = [t for t in ("clang", "lld-link", "llvm-dlltool") if shutil.which(t) is None]
    if absent:
        toolchain.missing(f"toolchain missing for PE fixtures: {', '.join(absent)}")
    name = "tls_used" if used else "tls_not_used"
    pyd = build_tls_statics(tmp_path, arch, name, used=used)
    if arch == "aarch64":  # the shape under test: the epoch is reached through x18
        assert _teb_loads(pyd, f"PyInit_{name}") >= 1
    found = inspect_binary(pyd.name, pyd.read_bytes())
    assert (found.gil, found.init) == (expected, Init.MULTI_PHASE), found.detail
