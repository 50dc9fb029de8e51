"""Targets that break the invariant on purpose, so the tests see the limits act (not a
targets_* module: the runner does not fuzz them)."""

from __future__ import annotations

from tests.fuzz.harness import Target


def _allocate(data: bytes) -> None:
    bytes(3 << 30)  # more than RLIMIT_AS allows


def _spin(data: bytes) -> None:
    while True:
        pass


TARGETS = {
    "selftest-memory": Target("selftest-memory", _allocate, [b"x"], (ValueError,)),
    "selftest-cpu": Target("selftest-cpu", _spin, [b"x"], (ValueError,)),
}
