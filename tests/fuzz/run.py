"""Run the fuzz targets, each in a child process under the limits of tests/fuzz/harness.py.

    python -m tests.fuzz.run                 # every target, FTAUDIT_FUZZ_SECONDS each
    python -m tests.fuzz.run elf zip-wheel   # some targets
    python -m tests.fuzz.run --replay        # only the seeds and committed regressions
    python -m tests.fuzz.run --list

Exit status 1 when any input broke the invariant; each such input is saved under
tests/fuzz/failures/<target>/ with what happened.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz import harness
from tests.fuzz.mutate import generic_mutation

REPO = harness.HERE.parents[1]
_MAX_RESTARTS = 8  # a child killed this often by inputs stops the target
_WALL_PER_INPUT = 6 * harness.CPU_PER_INPUT  # backstop for an input that sleeps or blocks
_MAX_FAILURES = 16


@dataclass
class Outcome:
    """What fuzzing one target found, summed over its child processes."""

    name: str
    engine: str = "none"
    seconds: float = 0.0
    inputs: int = 0
    failures: list[str] = field(default_factory=list)  # one line each, with the saved file

    def line(self) -> str:
        found = f", {len(self.failures)} FAILURES" if self.failures else ""
        return f"fuzz {self.name}: {self.engine}, {self.seconds:.1f} s, {self.inputs} inputs{found}"


def fuzz_seconds() -> float:
    return float(os.environ.get("FTAUDIT_FUZZ_SECONDS", harness.DEFAULT_SECONDS))


# --- parent -------------------------------------------------------------------------------


def run_target(name: str, module: str, seconds: float, *, replay: bool = False) -> Outcome:
    """Fuzz `name` for `seconds` of wall time, start-up included (or replay its seeds),
    restarting the child when an input kills it."""
    outcome = Outcome(name)
    target = harness.load_targets([module])[name]
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix=f"ftaudit-fuzz-{name}-") as tmp:
        work = Path(tmp)
        for _attempt in range(_MAX_RESTARTS):
            left = max(1.0, deadline - time.monotonic())
            cmd = [
                sys.executable,
                "-m",
                "tests.fuzz.run",
                "--child",
                module,
                name,
                "--deadline",
                f"{time.time() + left:.3f}",
                "--instrument",
                ",".join(target.instrument),
                "--workdir",
                str(work),
            ]
            if replay:
                cmd.append("--replay")
            started = time.monotonic()
            proc = subprocess.run(
                cmd, cwd=REPO, capture_output=True, text=True, timeout=left + 300, check=False
            )
            outcome.seconds += time.monotonic() - started
            _collect(outcome, work)
            if proc.returncode == 0:
                break
            if not _died(proc):
                outcome.failures.append(f"the child exited {proc.returncode}: {_tail(proc.stderr)}")
                break
            _save(outcome, work / "current", _death(proc))
            if time.monotonic() >= deadline or replay:
                break
    return outcome


def _died(proc: subprocess.CompletedProcess[str]) -> bool:
    """Killed by the CPU limit or a signal, or ended by libFuzzer's wall-clock alarm."""
    return proc.returncode < 0 or proc.returncode == _TIMEOUT_EXIT


def _death(proc: subprocess.CompletedProcess[str]) -> str:
    if proc.returncode == -signal.SIGXCPU:
        return f"used more than {harness.CPU_PER_INPUT} s of CPU"
    if proc.returncode == _TIMEOUT_EXIT:
        return f"ran more than {_WALL_PER_INPUT} s"
    return f"killed the process ({signal.Signals(-proc.returncode).name}): {_tail(proc.stderr)}"


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def _collect(outcome: Outcome, work: Path) -> None:
    """What the child left in its work directory (it may have been killed, and libFuzzer
    ends the process itself, so nothing is returned)."""
    engine, count, record = work / "engine", work / "count", work / "failures.jsonl"
    if engine.is_file():
        outcome.engine = engine.read_text()
    if count.is_file():
        outcome.inputs += int.from_bytes(count.read_bytes()[:8] or b"\0", "little")
        count.unlink()
    if record.is_file():
        outcome.failures.extend(json.loads(x) for x in record.read_text().splitlines())
        record.unlink()


def _save(outcome: Outcome, current: Path, what: str) -> None:
    data = current.read_bytes() if current.is_file() else b""
    outcome.failures.append(_store(outcome.name, data, what))


def _store(name: str, data: bytes, what: str) -> str:
    """Keep a failing input where a developer finds it; return its one-line report."""
    where = harness.FAILURES_DIR / name
    where.mkdir(parents=True, exist_ok=True)
    path = where / hashlib.sha256(data).hexdigest()[:16]
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(what + "\n")
    return f"{what} [{path.relative_to(REPO)}]"


# --- child --------------------------------------------------------------------------------

_TIMEOUT_EXIT = 70  # libFuzzer's -timeout_exitcode


class _Child:
    """One target run in this process, under the address-space and CPU limits."""

    def __init__(self, target: harness.Target, work: Path) -> None:
        self.target = target
        self.work = work
        self.inputs = 0
        self.failures: list[str] = []
        self._seen: set[str] = set()
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
        self._current = os.open(work / "current", flags, 0o600)
        self._count = os.open(work / "count", flags, 0o600)
        self._record = work / "failures.jsonl"

    def one(self, data: bytes) -> None:
        """Run one input: written down first (so an input that kills us is known), with
        the CPU limit set to what this input may use."""
        os.ftruncate(self._current, 0)
        os.pwrite(self._current, data, 0)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(usage.ru_utime + usage.ru_stime) + 1
        _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (spent + harness.CPU_PER_INPUT, hard))
        self.inputs += 1
        os.pwrite(self._count, self.inputs.to_bytes(8, "little"), 0)
        escaped = self.target.passes(data)
        if escaped is not None:
            self._fail(data, escaped)

    def _fail(self, data: bytes, exc: BaseException) -> None:
        frames = traceback.extract_tb(exc.__traceback__)
        last = frames[-1] if frames else None
        key = f"{type(exc).__name__}@{last.filename}:{last.lineno}" if last else repr(exc)
        if key in self._seen or len(self.failures) >= _MAX_FAILURES:
            return
        self._seen.add(key)
        where = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
        text = "".join(traceback.format_exception(exc))
        line = _store(self.target.name, data, f"{type(exc).__name__}{where}: {exc}"[:300])
        Path(harness.FAILURES_DIR / self.target.name / f"{key_hash(key)}.traceback").write_text(
            text
        )
        self.failures.append(line)
        with open(self._record, "a") as fh:
            fh.write(json.dumps(line) + "\n")


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (harness.ADDRESS_SPACE, harness.ADDRESS_SPACE))


def _load(module: str, name: str, instrument: list[str] | None) -> harness.Target:
    import importlib

    if instrument:
        import atheris

        # Coverage counts only in the target's own code and the parsers it drives: they
        # are imported for the first time here, under instrumentation.
        with atheris.instrument_imports(include=instrument):
            loaded = importlib.import_module(module)
    else:
        loaded = importlib.import_module(module)
    target: harness.Target = loaded.TARGETS[name]
    return target


def _atheris() -> bool:
    if os.environ.get("FTAUDIT_FUZZ_ENGINE", "") == "builtin":
        return False
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def child(args: argparse.Namespace) -> int:
    _limit_memory()
    work = Path(args.workdir)
    use_atheris = _atheris() and not args.replay
    target = _load(args.module, args.name, args.instrument.split(",") if use_atheris else None)
    seconds = args.deadline - time.time()  # what start-up left
    run = _Child(target, work)
    seeds = target.all_seeds()
    max_len = target.max_len or 2 * max((len(s) for s in seeds), default=4096)
    if args.replay:
        (work / "engine").write_text("replay of the seeds")
        for seed in seeds:
            run.one(seed)
        return 0
    if use_atheris:
        (work / "engine").write_text("atheris (libFuzzer, coverage-guided)")
        _fuzz_atheris(target, run, seeds, max_len, seconds, work)
        return 0  # not reached: libFuzzer exits
    (work / "engine").write_text("built-in mutator (atheris not installed)")
    _fuzz_builtin(target, run, seeds, max_len, seconds)
    return 0


def _mutate(target: harness.Target, data: bytes, rng: random.Random, max_len: int) -> bytes:
    if target.mutators and rng.random() < 0.7:
        out = rng.choice(target.mutators)(data, rng)
    else:
        out = generic_mutation(data, rng)
    return out[:max_len]


def _fuzz_builtin(
    target: harness.Target, run: _Child, seeds: list[bytes], max_len: int, seconds: float
) -> None:
    rng = random.Random(int(os.environ.get("FTAUDIT_FUZZ_SEED", "0")))
    deadline = time.monotonic() + seconds
    for seed in seeds:
        run.one(seed)
    pool = seeds or [b""]
    while time.monotonic() < deadline:
        data = rng.choice(pool)
        for _ in range(rng.randint(1, 4)):
            data = _mutate(target, data, rng, max_len)
        run.one(data)


def _fuzz_atheris(
    target: harness.Target,
    run: _Child,
    seeds: list[bytes],
    max_len: int,
    seconds: float,
    work: Path,
) -> None:
    import atheris

    corpus = work / "corpus"
    corpus.mkdir(exist_ok=True)
    for seed in seeds:
        (corpus / hashlib.sha256(seed).hexdigest()[:16]).write_bytes(seed)

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if target.mutators and rng.random() < 0.5:
            return rng.choice(target.mutators)(data, rng)[:max_size]
        mutated: bytes = atheris.Mutate(data, max_size)
        return mutated

    argv = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={max(1, int(seconds))}",
        f"-timeout={_WALL_PER_INPUT}",
        f"-timeout_exitcode={_TIMEOUT_EXIT}",
        "-rss_limit_mb=0",  # RLIMIT_AS is the limit, so a MemoryError is what we see
        "-malloc_limit_mb=0",
        f"-max_len={max_len}",
        "-print_final_stats=1",
        f"-artifact_prefix={work}/",
        f"-seed={int(os.environ.get('FTAUDIT_FUZZ_SEED', '0')) or 1}",
    ]
    setup: dict[str, object] = {"custom_mutator": mutator} if target.mutators else {}
    atheris.Setup(argv, run.one, **setup)
    atheris.Fuzz()


# --- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run")
    parser.add_argument("targets", nargs="*")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--replay", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--child", nargs=2, metavar=("MODULE", "NAME"))
    parser.add_argument("--workdir")
    parser.add_argument("--deadline", type=float, help="child: stop at this time.time()")
    parser.add_argument("--instrument", default="ftaudit")
    args = parser.parse_args(argv)
    if args.child:
        args.module, args.name = args.child
        if args.deadline is None:
            args.deadline = time.time() + (args.seconds or fuzz_seconds())
        return child(args)
    modules = {
        name: module
        for module in harness.target_modules()
        for name in harness.load_targets([module])
    }
    if args.list:
        for name, module in sorted(modules.items()):
            sys.stdout.write(f"{name}\t{module}\n")
        return 0
    chosen = args.targets or sorted(modules)
    unknown = [t for t in chosen if t not in modules]
    if unknown:
        parser.error(f"no such target: {', '.join(unknown)}")
    seconds = args.seconds or fuzz_seconds()
    failed = False
    for name in chosen:
        outcome = run_target(name, modules[name], seconds, replay=args.replay)
        sys.stdout.write(outcome.line() + "\n")
        sys.stdout.flush()
        for line in outcome.failures:
            sys.stdout.write(f"  {line}\n")
        failed |= bool(outcome.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
