"""The proof that a setter call has the last word (walk/proof.py), on modules shaped like
numpy's _multiarray_umath: PyInit creates the module, runs an init too large for any walk
to get through, then calls PyUnstable_Module_SetGIL(m, ...) and returns m.

Built from fixtures/ext/last_word.c for macOS arm64 and x86-64 (Mach-O) and Linux x86-64
(ELF). Only the shapes where the call is the last thing done to every module returned are
proved; every other shape (a call after it, a path around it, the setter told of another
module, a loop whose last turn sets USED) is no proof."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.build import HERE
from ftaudit.inspect.extension import inspect_binary, load_image
from ftaudit.inspect.walk.machine import Budget
from ftaudit.inspect.walk.proof import PROVED, prove
from ftaudit.model import Gil, Init
from tests.helpers import toolchain

SOURCE = HERE / "ext" / "last_word.c"
_MACOS = ("-platform_version", "macos", "11.0", "11.0", "-bundle", "-undefined")
TARGETS = {
    "macos-arm64": (
        "arm64-apple-macos11",
        ["ld64.lld-19", "-arch", "arm64", *_MACOS, "dynamic_lookup", "-fixup_chains"],
        "cpython-313t-darwin.so",
    ),
    "macos-x86_64": (
        "x86_64-apple-macos11",
        ["ld64.lld-19", "-arch", "x86_64", *_MACOS, "dynamic_lookup", "-fixup_chains"],
        "cpython-313t-darwin.so",
    ),
    "linux-x86_64": (
        "x86_64-linux-gnu",
        ["ld.lld", "-shared"],
        "cpython-313t-x86_64-linux-gnu.so",
    ),
}
PROVED_SHAPES = {1: "setter last", 7: "setter last, shared epilogue"}
UNPROVED_SHAPES = {
    2: "the setter says USED",
    3: "a call after the setter",
    4: "a path returns the module around the setter",
    5: "the setter is told of another module",
    6: "a loop whose last turn sets USED",
}


def _build(work: Path, target: str, shape: int) -> Path:
    triple, link, suffix = TARGETS[target]
    absent = [t for t in ("clang", link[0]) if shutil.which(t) is None]
    if absent:
        toolchain.missing(f"toolchain missing for the proof's fixtures: {', '.join(absent)}")
    name = f"lw{shape}"
    obj, so = work / f"{name}-{target}.o", work / target / f"{name}.{suffix}"
    so.parent.mkdir(exist_ok=True)
    compile_ = ["clang", f"--target={triple}", "-ffreestanding", "-fPIC", "-O2", "-c"]
    defines = [f"-DMODNAME={name}", f"-DSHAPE={shape}"]
    subprocess.run([*compile_, *defines, str(SOURCE), "-o", str(obj)], check=True)
    subprocess.run([*link, str(obj), "-o", str(so)], check=True)
    return so


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    work = tmp_path_factory.mktemp("last_word")
    shapes = [*PROVED_SHAPES, *UNPROVED_SHAPES]
    return {(t, s): _build(work, t, s) for t in TARGETS for s in shapes}


def _prove(so: Path) -> bool:
    image = load_image(so.read_bytes())
    assert image is not None
    image.ensure_relocated()
    entry = image.exports[f"PyInit_{so.name.split('.')[0]}"]
    return prove(image, entry, Budget()) is not None


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", PROVED_SHAPES)
def test_proved_when_the_setter_has_the_last_word(
    built: dict[tuple[str, int], Path], target: str, shape: int
) -> None:
    assert _prove(built[target, shape])


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", UNPROVED_SHAPES)
def test_no_proof_otherwise(built: dict[tuple[str, int], Path], target: str, shape: int) -> None:
    assert not _prove(built[target, shape]), UNPROVED_SHAPES[shape]


def test_inspect_proves_what_the_walk_cannot_reach(built: dict[tuple[str, int], Path]) -> None:
    """The walk spends its budget inside the large init and never reaches the setter (the
    proof's words in the detail are only given then); the proof makes it not_used. On
    macOS arm64, the platform numpy's module was unknown on (the same holds on the others,
    at a few seconds each)."""
    so = built["macos-arm64", 1]
    found = inspect_binary(so.name, so.read_bytes())
    assert found.gil is Gil.NOT_USED, found.detail
    assert found.init is Init.SINGLE_PHASE
    assert PROVED in found.detail
