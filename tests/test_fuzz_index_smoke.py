"""The index fuzz targets, in-process: every seed passes, and a fixed number of mutated
inputs (a seeded generator, so a failure is reproducible) are handled cleanly."""

from __future__ import annotations

import random

import pytest

from tests.fuzz.targets_index import TARGETS

ROUNDS = 300


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_pass(name: str) -> None:
    target = TARGETS[name]
    assert target.seeds
    for seed in target.seeds:
        target.run(seed)  # a seed is a valid input: not even a clean rejection


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutated_inputs_are_handled_cleanly(name: str) -> None:
    target = TARGETS[name]
    rng = random.Random(f"{name}-smoke")
    for i in range(ROUNDS):
        data = rng.choice(target.seeds)
        for _ in range(rng.randint(1, 4)):
            if target.mutators and rng.random() < 0.7:
                data = rng.choice(target.mutators)(data, rng)
            else:
                data = _flip(data, rng)
        try:
            target.run(data)
        except target.clean_errors:
            pass
        except Exception as exc:  # noqa: BLE001 - anything else is the finding
            pytest.fail(f"{name}: input {i} ({data[:200]!r}...) raised {exc!r}")


def _flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    at = rng.randrange(len(data))
    kind = rng.randrange(3)
    if kind == 0:
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
    if kind == 1:
        return data[:at] + data[at + rng.randint(1, 16) :]
    return data[:at] + data[at : at + rng.randint(1, 64)] * rng.randint(2, 8) + data[at:]
