"""Time `ftaudit scan --offline` of an environment against `pip list` of the same one.

    python benchmarks/scan_vs_pip_list.py --python /path/to/python [--runs 7]

The environment must hold at least 100 distributions (the script says how many it has).
Both commands run as subprocesses, several times; the medians and their ratio are printed.
`ftaudit scan --offline` reads every distribution's metadata and RECORD, and every
installed binary that the target would load, so this measures the real work of a scan
that needs no network.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return statistics.median(times), times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--python", required=True, help="interpreter of the environment")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--target", default="3.13t,3.14t")
    args = parser.parse_args()
    ftaudit = shutil.which("ftaudit")
    if ftaudit is None:
        sys.exit("ftaudit is not on PATH: pip install . first")
    listed = subprocess.run(
        [args.python, "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    count = len(json.loads(listed.stdout))
    if count < 100:
        sys.exit(f"{args.python}: {count} distributions; the benchmark wants at least 100")
    with tempfile.TemporaryDirectory() as cache:
        scan = [
            ftaudit,
            "scan",
            "--python",
            args.python,
            "--offline",
            "--target",
            args.target,
            "--format",
            "json",
            "-o",
            str(Path(cache) / "r.json"),
            "--quiet",
            "--cache-dir",
            cache,
            "--fail-on",
            "none",
        ]
        pip = [args.python, "-m", "pip", "list", "--format", "json"]
        pip_median, pip_times = timed(pip, args.runs)
        scan_median, scan_times = timed(scan, args.runs)
        report = json.loads((Path(cache) / "r.json").read_text())
    inspected = sum(len(p["extensions"]) for p in report["packages"])
    print(f"environment: {args.python} ({count} distributions)")
    print(
        f"ftaudit scan --offline --target {args.target}: median {scan_median:.3f}s "
        f"({', '.join(f'{t:.2f}' for t in scan_times)}); "
        f"{len(report['packages'])} packages, {inspected} extension modules read"
    )
    print(
        f"pip list:                 median {pip_median:.3f}s "
        f"({', '.join(f'{t:.2f}' for t in pip_times)})"
    )
    print(f"ratio scan / pip list: {scan_median / pip_median:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
