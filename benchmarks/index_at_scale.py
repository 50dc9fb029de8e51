"""What a scan costs against an index of real wheels: bytes fetched, cold and warm time,
--jobs, and the slow path of a server without Range support.

    python benchmarks/index_at_scale.py [--work DIR] [--count N] [--platforms P,P]

The newest cp313t wheels of the first N compiled packages of benchmarks/corpus.txt (for
each platform asked for) are downloaded once into --work (default
benchmarks/.work/index, not committed) with `pip download --no-deps --only-binary :all:`
from the index pip is configured with. A local index on 127.0.0.1 (the tests' own
IndexServer: PEP 691 pages, files with or without Range support, bytes sent counted)
serves them, and `ftaudit scan -r requirements.txt` pinning each runs in a child process
of its own, its peak resident memory from the kernel (os.wait4):

* cold, by ranges: an empty cache; bytes the server sent against the judged wheels' size
  (target <= 10%);
* warm: the same cache again (target >= 20x faster than cold);
* cold with --jobs 1, against --jobs 8;
* cold against a server that ignores Range (every wheel downloaded whole);
* with --lock N: a uv.lock of N packages (the real ones and generated pure-Python ones that
  require each other, locked by uv against the local index) scanned for 3.13t and 3.14t
  on every platform downloaded: peak memory (target <= 1 GiB) and time.

Figures go to benchmarks/index-at-scale-results.json and the README.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.index_server import IndexServer  # noqa: E402

PLATFORM_TAGS = {
    "linux-x86_64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "macos-arm64": ("macosx_14_0_arm64", "macosx_11_0_arm64"),
    "windows-amd64": ("win_amd64",),
}


def corpus() -> list[str]:
    names = []
    for line in (HERE / "corpus.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def download(names: list[str], platforms: list[str], where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    for platform in platforms:
        for name in names:
            have = [p for p in where.glob("*.whl") if _project(p) == _norm(name)]
            if any(_platform_of(p) == platform for p in have):
                continue
            args = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--python-version",
                "3.13",
                "--abi",
                "cp313t",
                "--implementation",
                "cp",
                "-d",
                str(where),
            ]
            for tag in PLATFORM_TAGS[platform]:
                args += ["--platform", tag]
            proc = subprocess.run([*args, name], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"  {name} ({platform}): no cp313t wheel", file=sys.stderr)


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _project(path: Path) -> str:
    return _norm(path.name.split("-", 1)[0])


def _platform_of(path: Path) -> str:
    tag = path.stem.rsplit("-", 1)[-1]
    if "manylinux" in tag or "linux" in tag:
        return "linux-x86_64"
    if "macosx" in tag:
        return "macos-arm64"
    return "windows-amd64"


def run(argv: list[str]) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds, peak RSS in bytes, exit code of one child."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        print(err[-2000:], file=sys.stderr)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, code


def installable(wheels_dir: Path, pins: dict[str, str]) -> dict[str, str]:
    """The real packages whose own requirements (extras aside) the local index can meet,
    so that uv can lock them all."""
    import zipfile

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    needs: dict[str, set[str]] = {}
    for wheel in wheels_dir.glob("*.whl"):
        name = canonicalize_name(wheel.name.split("-", 1)[0])
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            text = zf.read(meta).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith("Requires-Dist:"):
                req = Requirement(line.split(":", 1)[1].strip())
                if req.marker is None or "extra" not in str(req.marker):
                    needs.setdefault(name, set()).add(canonicalize_name(req.name))
    ok = {canonicalize_name(n): n for n in pins}
    changed = True
    while changed:
        changed = False
        for name in list(ok):
            if needs.get(name, set()) - set(ok):
                del ok[name]
                changed = True
    return {n: v for n, v in pins.items() if canonicalize_name(n) in ok}


def scale(
    work: Path,
    wheels_dir: Path,
    pins: dict[str, str],
    count: int,
    platforms: list[str],
    fresh: Callable[[str], Path],
) -> dict[str, object]:
    """A uv.lock of `count` packages against the local index, scanned for two targets on
    every platform: peak memory and time."""
    from tests.helpers.wheels import build_wheel

    pins = installable(wheels_dir, pins)
    generated = max(0, count - len(pins))
    rng = random.Random(11)
    names = [f"ftscale-{i:03d}" for i in range(generated)]
    for i, name in enumerate(names):
        # Each requires up to three later ones and sometimes a real package: a graph
        # with depth, fan-in and the real wheels deep inside it.
        later = names[i + 1 :]
        requires = rng.sample(later, min(3, len(later)))
        if pins and rng.random() < 0.2:
            requires.append(rng.choice(sorted(pins)))
        module = name.replace("-", "_")
        build_wheel(
            wheels_dir,
            name,
            "1.0",
            "py3-none-any",
            {f"{module}/__init__.py": b"VALUE = 1\n"},
            requires=tuple(requires),
        )
    project = work / "scale-project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    deps = ", ".join(f'"{n}"' for n in [*names[:20], *sorted(pins)])
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "scale"\nversion = "0"\nrequires-python = ">=3.11"\n'
        f"dependencies = [{deps}]\n"
    )
    with IndexServer(wheels_dir, ranges="ok") as index:
        uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
        proc = subprocess.run(
            [uv, "lock", "--index-url", index.url, "--directory", str(project)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SystemExit(f"uv lock failed: {proc.stderr[-2000:]}")
        lock = project / "uv.lock"
        locked = lock.read_text().count("[[package]]")
        print(
            f"scale: a uv.lock of {locked} packages, 3.13t and 3.14t on {', '.join(platforms)}",
            file=sys.stderr,
        )
        out = work / "scale.json"
        wall, cpu, peak, code = run(
            [
                sys.executable,
                "-m",
                "ftaudit",
                "scan",
                str(lock),
                "--target",
                "3.13t,3.14t",
                "--platform",
                ",".join(platforms),
                "--index-url",
                index.url,
                "--cache-dir",
                str(fresh("cache-scale")),
                "--format",
                "json",
                "-o",
                str(out),
                "-q",
                "--allow-incomplete",
            ]
        )
    print(
        f"    {wall:.1f} s ({cpu:.1f} s CPU), {peak / 2**20:.0f} MiB peak, exit {code}",
        file=sys.stderr,
    )
    return {
        "packages": locked,
        "targets": 2,
        "platforms": len(platforms),
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "peak_mib": round(peak / 2**20),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=HERE / ".work" / "index")
    parser.add_argument("--count", type=int, default=36)
    parser.add_argument("--platforms", default="linux-x86_64")
    parser.add_argument("--lock", type=int, default=0, metavar="N")
    parser.add_argument(
        "--lock-only", action="store_true", help="only the --lock scan (results merged)"
    )
    args = parser.parse_args()
    platforms = args.platforms.split(",")
    wheels_dir = args.work / "wheels"
    names = corpus()[: args.count]
    print(f"downloading the newest cp313t wheels of {len(names)} packages ...", file=sys.stderr)
    if not (args.lock_only and any(wheels_dir.glob("*.whl"))):
        download(names, platforms, wheels_dir)
    wheels = sorted(wheels_dir.glob("*.whl"))
    pins: dict[str, str] = {}
    for w in wheels:
        pins.setdefault(w.name.split("-", 1)[0], w.name.split("-")[1])
    reqs = args.work / "requirements.txt"
    reqs.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
    total = sum(w.stat().st_size for w in wheels)
    results: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"),
        "packages": len(pins),
        "wheels": len(wheels),
        "wheel_mib": round(total / 2**20, 1),
        "platforms": platforms,
    }

    def scan(index: IndexServer, cache: Path, *extra: str) -> dict[str, float]:
        out = args.work / "report.json"
        command = [sys.executable, "-m", "ftaudit", "scan", "-r", str(reqs)]
        command += ["--target", "3.13t", "--platform", ",".join(platforms)]
        command += ["--index-url", index.url, "--cache-dir", str(cache)]
        command += ["--format", "json", "-o", str(out), "-q", "--allow-incomplete", *extra]
        wall, cpu, peak, code = run(command)
        doc = json.loads(out.read_text())
        unknown = sum(
            1
            for p in doc["packages"]
            for v in [p["targets"].get("3.13t")]
            if v and v["status"] == "unknown"
        )
        stats = doc.get("stats", {})
        print(
            f"    {wall:.2f} s ({cpu:.2f} s CPU), {peak / 2**20:.0f} MiB peak, exit {code}, "
            f"{unknown} unknown, stats {stats}",
            file=sys.stderr,
        )
        # What the client received (a server's count includes what it pushed into a
        # connection the client had already closed).
        return {
            "wall": wall,
            "cpu": cpu,
            "peak_mib": peak / 2**20,
            "fetched_mib": stats.get("bytes_fetched", 0) / 2**20,
            "requests": stats.get("requests", 0),
        }

    def fresh(name: str) -> Path:
        cache = args.work / name
        shutil.rmtree(cache, ignore_errors=True)
        return cache

    out_file = HERE / "index-at-scale-results.json"
    if args.lock_only:
        kept = json.loads(out_file.read_text()) if out_file.is_file() else {}
        kept["lock"] = scale(args.work, wheels_dir, pins, args.lock, platforms, fresh)
        out_file.write_text(json.dumps(kept, indent=1) + "\n")
        print(json.dumps(kept, indent=1))
        return 0
    with IndexServer(wheels_dir, ranges="ok") as index:
        print("cold, by ranges, --jobs 8", file=sys.stderr)
        cache = fresh("cache-cold")
        cold = scan(index, cache)
        print("warm", file=sys.stderr)
        warm = scan(index, cache)
        print("cold, by ranges, --jobs 1", file=sys.stderr)
        one = scan(index, fresh("cache-one"), "--jobs", "1")
    with IndexServer(wheels_dir, ranges="none") as index:
        print("cold, a server without Range support", file=sys.stderr)
        whole = scan(index, fresh("cache-whole"))
    rounded = {
        k: {m: round(v, 2) for m, v in r.items()}
        for k, r in (("cold", cold), ("warm", warm), ("cold_jobs1", one), ("cold_no_ranges", whole))
    }
    results.update(
        runs=rounded,
        cold_fetched_share=round(cold["fetched_mib"] * 2**20 / total, 3),
        warm_vs_cold_wall=round(cold["wall"] / warm["wall"], 1),
        warm_vs_cold_cpu=round(cold["cpu"] / warm["cpu"], 1),
        jobs8_vs_jobs1_wall=round(one["wall"] / cold["wall"], 2),
        no_ranges_fetched_share=round(whole["fetched_mib"] * 2**20 / total, 3),
        load_average=os.getloadavg()[0],
    )
    if args.lock:
        results["lock"] = scale(args.work, wheels_dir, pins, args.lock, platforms, fresh)
    (HERE / "index-at-scale-results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
