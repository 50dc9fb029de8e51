"""Fuzz targets for every reader of untrusted bytes, and the invariant they are held to.

The interface, for a module that adds targets
------------------------------------------------
A target module is ``tests/fuzz/targets_<area>.py``. It exports one name::

    TARGETS: dict[str, Target]      # keyed by Target.name

and nothing it does at import may need the network or a compiler: the runner imports it
in a fresh child process (under the limits below) and, with atheris, under coverage
instrumentation. A `Target` is:

``name``
    Unique across all modules, ``area-what`` (``elf``, ``zip-wheel``, ``simple-html``).
``run(data: bytes) -> object``
    Feeds one input to the reader under test and returns (the value is ignored). It may
    raise only an exception in ``clean_errors``; anything else is a finding.
``seeds: list[bytes]``
    Real inputs to start from (small real files: tests/data, binaries built once by
    fixtures/ and committed under tests/fuzz/seeds/). Every file in
    ``tests/fuzz/seeds/<name>/`` is added to them by the runner, so an input that once
    broke a reader is committed there and replayed on every run as a regression.
``clean_errors: tuple[type[BaseException], ...]``
    ftaudit's own errors (ftaudit/errors.py) that count as a clean rejection of bad
    input, e.g. ``(BinaryFormatError,)`` or ``(FtauditError,)``. Never ``MemoryError``,
    ``RecursionError`` nor ``Exception``.
``mutators``
    Optional structure-aware mutations, ``(data: bytes, rng: random.Random) -> bytes``,
    that know the format (set a header field to 2**40, lie in a zip directory). The
    engine mixes them with its generic byte-level mutations.
``instrument``
    Module prefixes whose Python code counts for coverage (``ftaudit`` plus the parsing
    libraries the target drives).

The invariant, checked for real
-------------------------------
Each target runs in its own child process (``python -m tests.fuzz.run --child NAME``)
with RLIMIT_AS at 2 GiB, so that an allocation a header merely claims fails as it would
on a small machine, and a CPU budget of 10 s per input (RLIMIT_CPU raised before each
input to what was used plus 10 s; SIGXCPU ends the child). The child writes each input to
``current`` in its work directory before running it, so an input that kills it is known.
An input passes when ``run`` returns or raises one of ``clean_errors``. It fails on any
other exception (MemoryError and RecursionError included), on using more than 10 s of
CPU, or on killing the process.

Engines: atheris (libFuzzer, coverage-guided over ``instrument``) when it is importable,
else a built-in mutational loop over the same seeds and mutators (also chosen with
``FTAUDIT_FUZZ_ENGINE=builtin``; ``FTAUDIT_FUZZ_SEED`` fixes the random seed). Each target
gets ``FTAUDIT_FUZZ_SECONDS`` seconds of wall time, start-up included (default 20); the
runner prints, per target, the engine, seconds and number of inputs tried, and any
failing input is saved under ``tests/fuzz/failures/<name>/`` (with its traceback) to be
fixed and then copied into ``seeds/<name>/``. Run ``python -m tests.fuzz.run --help``.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS_DIR = HERE / "seeds"
FAILURES_DIR = HERE / "failures"
ADDRESS_SPACE = 2 << 30  # bytes: RLIMIT_AS of the child
CPU_PER_INPUT = 10  # seconds of CPU one input may use
DEFAULT_SECONDS = 20

Mutator = Callable[[bytes, random.Random], bytes]


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    seeds: list[bytes]
    clean_errors: tuple[type[BaseException], ...]
    mutators: tuple[Mutator, ...] = ()
    instrument: tuple[str, ...] = ("ftaudit",)
    # inputs longer than this are not generated (default: twice the largest seed)
    max_len: int | None = field(default=None)

    def all_seeds(self) -> list[bytes]:
        """The target's seeds and every committed regression input for it."""
        extra = SEEDS_DIR / self.name
        files = sorted(p for p in extra.iterdir() if p.is_file()) if extra.is_dir() else []
        return [*self.seeds, *(p.read_bytes() for p in files)]

    def passes(self, data: bytes) -> BaseException | None:
        """None when `data` is handled cleanly; else the exception that escaped."""
        try:
            self.run(data)
        except self.clean_errors:
            return None
        except BaseException as exc:  # noqa: BLE001 - any other exception is the finding
            return exc
        return None


def target_modules() -> list[str]:
    """Every ``tests.fuzz.targets_*`` module, by name."""
    return sorted(
        f"tests.fuzz.{m.name}"
        for m in pkgutil.iter_modules([str(HERE)])
        if m.name.startswith("targets_")
    )


def load_targets(modules: list[str] | None = None) -> dict[str, Target]:
    out: dict[str, Target] = {}
    for name in modules if modules is not None else target_modules():
        found: dict[str, Target] = importlib.import_module(name).TARGETS
        for key, target in found.items():
            if key != target.name or key in out:
                raise ValueError(f"{name}: target {key!r} misnamed or defined twice")
            out[key] = target
    return out


def module_of(target: str) -> str:
    """The module that defines `target` (imported alone in the child)."""
    for name in target_modules():
        module = importlib.import_module(name)
        if target in module.TARGETS:
            return name
    raise KeyError(target)
