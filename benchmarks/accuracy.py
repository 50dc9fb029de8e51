"""Measure how often ftaudit's static verdicts are right, against the interpreter itself.

    python benchmarks/accuracy.py --ft-python PY [--corpus benchmarks/corpus.txt]
                                  [--work DIR] [--limit N]

For every package in the corpus it takes the newest release with a cp313t manylinux x86_64
wheel from the package index pip is configured with, and:

1. reads the wheel with ftaudit (`inspect_wheel`): one verdict per extension module;
2. installs it (with its dependencies) into a venv of the free-threaded interpreter, and
   imports each extension module there, in one process per package started with `-v`:
   CPython then prints "# loading module 'X', which requires the GIL" for *every* module
   that re-enables the GIL (the RuntimeWarning names only the first);
3. reads the same release's macOS (arm64, x86_64) and Windows (amd64, arm64) cp313t
   wheels with ftaudit and compares their verdicts module by module with the Linux ones.

It prints the confusion table and the figures (agreement on modules that import, false
`not_used` — the dangerous error — and the `unknown` share), the cross-platform agreement,
the `unknown` share per platform (Linux: of the modules that import; another platform: of
its modules whose Linux twin imports, so that its truth is known),
and the time `ftaudit inspect` takes on the largest wheel against installing and
importing it. Results go to benchmarks/accuracy-results.json. Downloads are cached in
--work (default benchmarks/.work), not committed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ftaudit.cache import Cache
from ftaudit.index import select
from ftaudit.index.http import Http, fetch_artifact
from ftaudit.index.pipconfig import pip_index_config
from ftaudit.index.simple import Index, IndexFile
from ftaudit.inspect.artifact import inspect_wheel
from ftaudit.model import ArtifactFacts, Gil, Target
from ftaudit.targets import extension_loadable

HERE = Path(__file__).resolve().parent
T313 = Target(major=3, minor=13)
GENERIC_LINUX = "linux-x86_64"  # the generic manylinux list, not this machine's glibc
OTHER_PLATFORMS = ("macos-arm64", "macos-x86_64", "windows-amd64", "windows-arm64")
UNKNOWN_TARGET_PERCENT = 0.5  # per platform
REQUIRES_GIL = re.compile(r"# loading module '([^']+)', which requires the GIL")
PROBE = r"""
import importlib, json, sys
results = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        results[name] = "ok"
    except BaseException as exc:  # a module that cannot load says nothing either way
        results[name] = f"{type(exc).__name__}: {exc}"[:200]
print("PROBE" + json.dumps(results))
"""


@dataclass
class PackageResult:
    name: str
    version: str = ""
    wheel: str = ""
    skipped: str = ""
    verdicts: dict[str, str] = field(default_factory=dict)  # module -> gil
    imported: dict[str, str] = field(default_factory=dict)  # module -> ok / error
    requires_gil: list[str] = field(default_factory=list)
    platforms: dict[str, dict[str, str]] = field(default_factory=dict)
    inspect_seconds: float = 0.0
    install_import_seconds: float = 0.0
    fresh_check_seconds: float = 0.0  # the largest wheel only: venv + install + import
    wheel_bytes: int = 0


def newest_with_wheel(index: Index, entry: str, platform: str) -> tuple[str, IndexFile] | None:
    """The newest release of a corpus entry with a cp313t wheel; an entry `name==version`
    names the release (an older one the reader must also get right)."""
    name, _, pinned = entry.partition("==")
    releases = select.group_releases(name, index.files(name))
    for version in sorted(releases, reverse=True):
        if version.is_prerelease or (pinned and str(version) != pinned):
            continue
        wheel = select.best_wheel(releases[version], T313, platform)
        if wheel is not None and "cp313t" in wheel.filename:
            return str(version), wheel
    return None


def wheel_for(index: Index, name: str, version: str, platform: str) -> IndexFile | None:
    releases = select.group_releases(name, index.files(name))
    for v, release in releases.items():
        if str(v) == version:
            wheel = select.best_wheel(release, T313, platform)
            return wheel if wheel is not None and "cp313t" in wheel.filename else None
    return None


def fetch(index: Index, cache: Cache, wheel: IndexFile) -> Path:
    return fetch_artifact(index.http, cache, wheel.url, wheel.filename, wheel.sha256)


def verdicts(facts: ArtifactFacts) -> dict[str, str]:
    """Module -> verdict, for the files a 3.13t interpreter would load."""
    return {e.module: e.gil.value for e in facts.extensions if extension_loadable(e.path, T313)}


def probe(venv_python: Path, modules: list[str]) -> tuple[dict[str, str], list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    proc = subprocess.run(
        [str(venv_python), "-v", "-c", PROBE, *modules],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PROBE")), None)
    if line is None:
        crashed = f"interpreter exited {proc.returncode} before reporting"
        return dict.fromkeys(modules, crashed), []
    return json.loads(line[5:]), REQUIRES_GIL.findall(proc.stderr)


def run_package(name: str, index: Index, cache: Cache, venv_python: Path) -> PackageResult:
    result = PackageResult(name=name)
    try:
        found = newest_with_wheel(index, name, GENERIC_LINUX)
    except Exception as exc:  # noqa: BLE001 - a benchmark records and goes on
        result.skipped = f"index: {exc}"
        return result
    if found is None:
        result.skipped = "no cp313t manylinux x86_64 wheel"
        return result
    result.version, wheel = found
    result.wheel = wheel.filename
    path = fetch(index, cache, wheel)
    result.wheel_bytes = path.stat().st_size
    start = time.perf_counter()
    facts = inspect_wheel(path, wheel.filename)
    result.inspect_seconds = time.perf_counter() - start
    result.verdicts = verdicts(facts)
    if not result.verdicts:
        result.skipped = "no extension modules"
        return result
    start = time.perf_counter()
    install = subprocess.run(
        [str(venv_python), "-m", "pip", "install", "-q", "--only-binary=:all:", str(path)],
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        result.skipped = "install failed: " + (install.stderr.strip().splitlines() or ["?"])[-1]
    else:
        result.imported, result.requires_gil = probe(venv_python, sorted(result.verdicts))
    result.install_import_seconds = time.perf_counter() - start
    for platform in OTHER_PLATFORMS:
        other = wheel_for(index, name.partition("==")[0], result.version, platform)
        if other is not None:
            result.platforms[platform] = verdicts(
                inspect_wheel(fetch(index, cache, other), other.filename)
            )
    return result


def fresh_import_check(
    ft_python: str, work: Path, index: Index, cache: Cache, r: PackageResult
) -> float:
    """What an import-based check of one wheel costs: a new venv, pip install (from pip's
    own cache, as a second run would), and importing every extension module."""
    wheel = newest_with_wheel(index, r.name, GENERIC_LINUX)
    assert wheel is not None
    path = fetch(index, cache, wheel[1])
    venv = work / "fresh-venv"
    subprocess.run(["rm", "-rf", str(venv)], check=True)
    start = time.perf_counter()
    subprocess.run([ft_python, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--only-binary=:all:", str(path)],
        check=True,
        capture_output=True,
    )
    probe(python, sorted(r.verdicts))
    return time.perf_counter() - start


def summarise(results: list[PackageResult]) -> dict[str, object]:
    table: Counter[tuple[str, str]] = Counter()
    false_not_used: list[str] = []
    for r in results:
        gil_modules = set(r.requires_gil)
        for module, gil in r.verdicts.items():
            status = r.imported.get(module)
            if status is None:
                truth = "not probed"
            elif status != "ok":
                truth = "does not import"
            else:
                truth = "re-enables GIL" if module in gil_modules else "keeps GIL off"
            table[(gil, truth)] += 1
            if gil == Gil.NOT_USED.value and truth == "re-enables GIL":
                false_not_used.append(module)
    importing = sum(n for (_g, t), n in table.items() if t in ("re-enables GIL", "keeps GIL off"))
    known = sum(
        n
        for (g, t), n in table.items()
        if g != "unknown" and t in ("re-enables GIL", "keeps GIL off")
    )
    agree = table[("not_used", "keeps GIL off")] + sum(
        table[(g, "re-enables GIL")] for g in ("used", "undeclared")
    )
    unknown_importing = sum(table[("unknown", t)] for t in ("re-enables GIL", "keeps GIL off"))
    total_modules = sum(table.values())
    cross: Counter[str] = Counter()
    disagreements = []
    for r in results:
        for platform, other in r.platforms.items():
            for module, gil in r.verdicts.items():
                if module not in other:
                    cross["missing on " + platform] += 1
                elif other[module] == gil:
                    cross["agree"] += 1
                else:
                    cross["disagree"] += 1
                    disagreements.append(
                        f"{module} ({platform}): linux {gil}, {platform} {other[module]}"
                    )
    return {
        "unknown_by_platform": unknown_by_platform(results),
        "packages": len(results),
        "packages_measured": sum(1 for r in results if r.verdicts and not r.skipped),
        "modules": total_modules,
        "modules_that_import": importing,
        "confusion": {f"{g} / {t}": n for (g, t), n in sorted(table.items())},
        "agreement_percent": round(100 * agree / known, 2) if known else None,
        "false_not_used": false_not_used,
        "unknown_percent_of_importing": round(100 * unknown_importing / importing, 2)
        if importing
        else None,
        "cross_platform": dict(cross),
        "cross_platform_disagreements": disagreements,
    }


def unknown_by_platform(results: list[PackageResult]) -> dict[str, dict[str, object]]:
    """Per platform, how many modules with a known truth were read and how many of them
    came out `unknown`: on Linux the modules that import in 3.13t, elsewhere the modules
    whose Linux twin does (the same source, so the same truth)."""
    counts: dict[str, Counter[str]] = {"linux": Counter()}
    counts.update((p, Counter()) for p in OTHER_PLATFORMS)
    for r in results:
        known = {m for m, status in r.imported.items() if status == "ok"}
        for module in known & set(r.verdicts):
            counts["linux"]["modules"] += 1
            counts["linux"]["unknown"] += r.verdicts[module] == Gil.UNKNOWN.value
        for platform, other in r.platforms.items():
            for module in known & set(other):
                counts[platform]["modules"] += 1
                counts[platform]["unknown"] += other[module] == Gil.UNKNOWN.value
    out: dict[str, dict[str, object]] = {}
    for platform, c in counts.items():
        share = round(100 * c["unknown"] / c["modules"], 2) if c["modules"] else None
        out[platform] = {"modules": c["modules"], "unknown": c["unknown"], "percent": share}
    return out


def print_summary(summary: dict[str, object], results: list[PackageResult]) -> None:
    print(
        f"\npackages: {summary['packages']} ({summary['packages_measured']} measured), "
        f"extension modules: {summary['modules']}, that import: "
        f"{summary['modules_that_import']}"
    )
    print("\nconfusion (ftaudit verdict / what the 3.13t interpreter did):")
    for key, n in summary["confusion"].items():  # type: ignore[attr-defined]
        print(f"  {key:45} {n:6}")
    print(f"\nagreement on modules that import (known verdicts): {summary['agreement_percent']}%")
    print(
        f"false not_used (must be 0): {len(summary['false_not_used'])} "  # type: ignore[arg-type]
        f"{summary['false_not_used']}"
    )
    print(f"unknown share of modules that import: {summary['unknown_percent_of_importing']}%")
    print(f"\nunknown share per platform (target <= {UNKNOWN_TARGET_PERCENT}% each):")
    for platform, c in summary["unknown_by_platform"].items():  # type: ignore[attr-defined]
        share = "n/a" if c["percent"] is None else f"{c['percent']}%"
        print(f"  {platform:15} {c['unknown']:4} of {c['modules']:5} modules  {share}")
    print(f"cross-platform (macOS, Windows vs Linux): {summary['cross_platform']}")
    for line in summary["cross_platform_disagreements"][:20]:  # type: ignore[index]
        print(f"  {line}")
    measured = [r for r in results if r.fresh_check_seconds and r.wheel_bytes]
    if measured:
        largest = max(measured, key=lambda r: r.wheel_bytes)
        print(
            f"\nlargest wheel: {largest.wheel} ({largest.wheel_bytes / 1e6:.1f} MB, "
            f"{len(largest.verdicts)} extension modules): ftaudit inspect "
            f"{largest.inspect_seconds:.2f}s; an import-based check (new venv, pip install, "
            f"import every module) {largest.fresh_check_seconds:.2f}s; ratio "
            f"{largest.inspect_seconds / largest.fresh_check_seconds:.2f}"
        )
    skipped = [r for r in results if r.skipped]
    if skipped:
        print("\nnot measured:")
        for r in skipped:
            print(f"  {r.name}: {r.skipped}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ft-python", required=True, help="a free-threaded CPython 3.13")
    parser.add_argument("--corpus", type=Path, default=HERE / "corpus.txt")
    parser.add_argument("--work", type=Path, default=HERE / ".work")
    parser.add_argument("--limit", type=int, default=0, help="only the first N packages")
    parser.add_argument("--output", type=Path, default=HERE / "accuracy-results.json")
    args = parser.parse_args()
    names = [line.split("#")[0].strip() for line in args.corpus.read_text().splitlines()]
    names = [n for n in names if n][: args.limit or None]
    args.work.mkdir(parents=True, exist_ok=True)
    venv = args.work / "ftvenv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([args.ft_python, "-m", "venv", str(venv)], check=True)
    venv_python = venv / "bin" / "python"
    cache = Cache(args.work / "cache")
    config = pip_index_config(sys.executable)
    index = Index(config.urls, Http(cert=config.cert), cache, offline=False)
    results = []
    for i, name in enumerate(names, 1):
        r = run_package(name, index, cache, venv_python)
        flag = r.skipped or f"{len(r.verdicts)} modules, {len(r.requires_gil)} need the GIL"
        print(f"[{i}/{len(names)}] {name} {r.version}: {flag}", flush=True)
        results.append(r)
    largest = max((r for r in results if r.imported), key=lambda r: r.wheel_bytes, default=None)
    if largest is not None:
        largest.fresh_check_seconds = fresh_import_check(
            args.ft_python, args.work, index, cache, largest
        )
    summary = summarise(results)
    summary["date"] = time.strftime("%Y-%m-%d")
    summary["interpreter"] = subprocess.run(
        [str(venv_python), "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    args.output.write_text(
        json.dumps({"summary": summary, "packages": [r.__dict__ for r in results]}, indent=1) + "\n"
    )
    print_summary(summary, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
