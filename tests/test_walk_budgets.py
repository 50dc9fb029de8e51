"""The code walk's budgets: whatever a binary holds, a walk ends, and says which budget
ended when one did; a module whose walk ended before a verdict is `unknown` with that
reason, never `not_used`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from ftaudit.errors import BinaryFormatError
from ftaudit.inspect import elf, walk
from ftaudit.inspect.artifact import inspect_wheel
from ftaudit.inspect.elf import load_elf
from ftaudit.inspect.extension import inspect_binary, load_image
from ftaudit.inspect.walk import machine, memory
from ftaudit.model import Extension, Gil

DATA = Path(__file__).parent / "data"
# A 15 KB ELF whose PyInit lies in the zero fill of an executable segment that claims
# 0x250c000000000000 bytes: decoded, zeros are `add [rax], al` without end.
ZERO_FILL = DATA / "hardening" / "walk_zero_fill.cpython-313t-x86_64-linux-gnu.so"
# Ten mutated copies of the same file in one wheel.
MUTATED_WHEEL = DATA / "hardening" / "dosslow-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl"
# A Windows single-phase module whose walk reaches PyUnstable_Module_SetGIL after a
# few thousand instructions.
REGRESS = DATA / "wheels" / "regress-2025.10.1-cp313-cp313t-win_amd64.whl"


def _member(wheel: Path, suffix: str) -> tuple[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(suffix))
        return name, zf.read(name)


def test_code_in_a_segments_zero_fill_is_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    # The loader refuses the file (its segment claims to reach over the next one) ...
    with pytest.raises(BinaryFormatError, match="overlaps"):
        inspect_binary(ZERO_FILL.name, ZERO_FILL.read_bytes())
    # ... and were it laid out anyway, the walk would not decode the zero fill.
    monkeypatch.setattr(elf, "_check_layout", lambda segments: None)
    image = load_elf(ZERO_FILL.read_bytes())
    image.ensure_relocated()
    walked = walk.walk(image, image.exports["PyInit_multi_used"])
    # It ends on its own, at once: no budget had to stop it.
    assert not walked.exhausted and walked.stopped is None
    assert walked.steps < 100
    found = inspect_binary(ZERO_FILL.name, ZERO_FILL.read_bytes())
    assert isinstance(found, Extension) and found.gil is Gil.UNKNOWN


def test_a_wheel_of_mutated_copies_is_read_without_any_budget_ending() -> None:
    facts = inspect_wheel(MUTATED_WHEEL)
    assert not facts.extensions
    assert len(facts.unreadable) == 10
    for _path, why in facts.unreadable:
        assert "overlaps" in why and "budget" not in why, why


def test_a_walk_over_its_written_memory_budget_is_unknown_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, data = _member(REGRESS, ".pyd")
    assert inspect_binary(name, data).gil is Gil.USED  # type: ignore[union-attr]
    monkeypatch.setattr(memory, "MAX_MEMORY_BYTES", 256)
    found = inspect_binary(name, data)
    assert isinstance(found, Extension)
    assert found.gil is Gil.UNKNOWN
    assert found.detail.endswith(
        "no call to it was reached from PyInit_regress "
        "(the walk's budget of 256 bytes of written memory ended)"
    )


def test_the_cpu_budget_ends_the_walk_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _, data = _member(REGRESS, ".pyd")
    image = load_image(data)
    assert image is not None
    image.ensure_relocated()
    entry = image.exports["PyInit_regress"]
    monkeypatch.setattr(machine, "WALK_CPU_SECONDS", 0.0)
    walked = walk.walk(image, entry)
    assert walked.exhausted and walked.final
    assert walked.stopped == "the walk's budget of 0 s of CPU time ended"
    # The budget is looked at every few hundred instructions, not after each.
    assert walked.steps >= machine._CPU_CHECK_EVERY


def test_a_walk_that_ends_on_instructions_or_paths_says_which() -> None:
    _, data = _member(REGRESS, ".pyd")
    image = load_image(data)
    assert image is not None
    image.ensure_relocated()
    walked = walk.walk(image, image.exports["PyInit_regress"])
    assert walked.exhausted and not walked.final
    assert walked.stopped in (
        f"the walk's budget of {machine.MAX_STEPS:,} instructions ended",
        f"the walk's budget of {machine.MAX_PATHS} paths ended",
    )


def test_an_artifacts_modules_share_one_cpu_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel of many modules cannot cost many times one module's budget: every walk of
    its binaries draws on one pool, and a walk that finds it dry stops with its reason."""
    charged: list[float] = []
    real_charge = walk.CpuPool.charge

    def spy(self: walk.CpuPool, spent: float) -> bool:
        charged.append(spent)
        return real_charge(self, spent)

    monkeypatch.setattr(walk.CpuPool, "charge", spy)
    inspect_wheel(REGRESS)
    assert charged  # the wheel's walks were charged to its pool

    _, data = _member(REGRESS, ".pyd")
    image = load_image(data)
    assert image is not None
    image.ensure_relocated()
    walked = walk.walk(image, image.exports["PyInit_regress"], pool=walk.CpuPool(0.0, "dry"))
    assert walked.exhausted and walked.final and walked.stopped == "dry"


def test_a_cpu_pool_is_shared_across_threads() -> None:
    pool = walk.CpuPool(1.0, "spent")
    assert pool.charge(0.4) and pool.charge(0.4)
    assert not pool.charge(0.4)
