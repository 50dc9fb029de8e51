"""Fuzz every reader of untrusted bytes for a bounded time, under the real limits.

Each target runs in a child process with a 2 GiB address space and 10 s of CPU per input
(tests/fuzz/harness.py); FTAUDIT_FUZZ_SECONDS sets the seconds per target (default 20).
"""

from __future__ import annotations

import sys

import pytest

from tests.fuzz import harness
from tests.fuzz.run import fuzz_seconds, run_target

MODULES = {
    name: module for module in harness.target_modules() for name in harness.load_targets([module])
}


def test_every_target_has_seeds_and_clean_errors() -> None:
    for target in harness.load_targets().values():
        assert target.all_seeds(), target.name
        assert target.clean_errors, target.name
        assert not set(target.clean_errors) & {MemoryError, RecursionError, Exception}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_seeds_and_regressions_replay_cleanly(name: str) -> None:
    outcome = run_target(name, MODULES[name], 600, replay=True)
    assert outcome.inputs == len(harness.load_targets([MODULES[name]])[name].all_seeds())
    assert not outcome.failures, outcome.failures


@pytest.mark.parametrize("name", sorted(MODULES))
def test_fuzz(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_target(name, MODULES[name], fuzz_seconds())
    with capsys.disabled():
        sys.stdout.write(f"\n{outcome.line()}\n")
    assert outcome.inputs > 0
    assert not outcome.failures, "\n".join(outcome.failures)


def test_the_limits_are_real() -> None:
    """An input that allocates what a header claims, or loops, is caught, not survived:
    the child's limits turn it into a reported failure."""
    outcome = run_target("selftest-memory", "tests.fuzz.selftest", 30, replay=True)
    assert any("MemoryError" in f for f in outcome.failures), outcome.failures
    outcome = run_target("selftest-cpu", "tests.fuzz.selftest", 60, replay=True)
    assert any("CPU" in f for f in outcome.failures), outcome.failures
