"""Peak memory and time of `ftaudit inspect` on heavy wheels, each against its Linux twin.

    python benchmarks/heavy_wheels.py [--work DIR] [--only SUBSTRING] [--scan PROJECT]

Each wheel is downloaded once into --work (default benchmarks/.work/heavy, not committed)
with `pip download --no-deps --only-binary :all: --platform ... --python-version 3.13
--abi cp313t` (abi3 for a project with no other build), then read by `ftaudit inspect`
in a child process of its own, whose peak resident memory and CPU time come from the
kernel (os.wait4). `--scan PROJECT` also
measures `ftaudit scan PROJECT --platform all` (the project needs its environment: see
the README's "Two commands").

Targets: at most 1 GiB peak for each, and a macOS or Windows wheel no slower than four
times its Linux twin.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEAK_TARGET = 1 << 30
SCAN_PEAK_TARGET = 2 << 30
SLOWER_TARGET = 4.0
LINUX = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux2014_x86_64")
LINUX_ALL = (*LINUX, "manylinux_2_17_x86_64")


@dataclass(frozen=True)
class Wheel:
    label: str
    requirement: str
    platforms: tuple[str, ...]
    twin: str | None = None  # the label of the Linux wheel it is compared with
    abi: str = "cp313t"


MACOS_ARM64 = ("macosx_14_0_arm64", "macosx_11_0_arm64")
WHEELS = (
    Wheel("numpy linux", "numpy==2.3.0", LINUX_ALL),
    Wheel("numpy macos-arm64", "numpy==2.3.0", MACOS_ARM64, twin="numpy linux"),
    Wheel("numpy macos-x86_64", "numpy==2.3.0", ("macosx_14_0_x86_64",), twin="numpy linux"),
    # Rust (PyO3); the index holds no cp313t universal2 wheel of a Rust project, so
    # pydantic-core's arm64 one and cryptography's abi3 universal2 one (both slices read,
    # as for any universal2 wheel) stand for macOS.
    Wheel("pydantic-core linux", "pydantic-core==2.41.4", LINUX_ALL),
    Wheel(
        "pydantic-core macos-arm64",
        "pydantic-core==2.41.4",
        MACOS_ARM64,
        twin="pydantic-core linux",
    ),
    Wheel("cryptography linux", "cryptography==48.0.1", LINUX_ALL, abi="abi3"),
    Wheel(
        "cryptography macos-universal2",
        "cryptography==48.0.1",
        ("macosx_10_9_universal2",),
        twin="cryptography linux",
        abi="abi3",
    ),
    Wheel("jaxlib linux", "jaxlib==0.10.2", LINUX_ALL),
    Wheel("pyarrow linux", "pyarrow==24.0.0", LINUX_ALL),
    # Over 190 MiB, its extension module alone 500 MB; abi3, read like any other.
    Wheel("triton linux", "triton==3.9.0", LINUX_ALL, abi="abi3"),
    Wheel("torch linux", "torch==2.12.0", LINUX_ALL),
)


@dataclass(frozen=True)
class Measure:
    peak_bytes: int
    cpu_seconds: float
    wall_seconds: float
    status: int


def download(wheel: Wheel, work: Path) -> Path:
    name = wheel.requirement.split("==")[0].replace("-", "_")
    version = wheel.requirement.split("==")[1]
    found = _find(work, name, version, wheel.platforms, wheel.abi)
    if found is not None:
        return found
    platforms = [arg for p in wheel.platforms for arg in ("--platform", p)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary",
            ":all:",
            *platforms,
            "--python-version",
            "3.13",
            "--abi",
            wheel.abi,
            "-d",
            str(work),
            wheel.requirement,
        ],
        check=True,
    )
    found = _find(work, name, version, wheel.platforms, wheel.abi)
    if found is None:
        raise SystemExit(f"heavy_wheels: pip downloaded no {wheel.label} wheel")
    return found


def _find(work: Path, name: str, version: str, platforms: tuple[str, ...], abi: str) -> Path | None:
    for path in sorted(work.glob(f"{name}-{version}-*{abi}*.whl")):
        if any(p in path.name for p in platforms):
            return path
    return None


def measure(argv: list[str]) -> Measure:
    """Run a child and read its peak resident memory and CPU time from the kernel."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.stderr is not None:
        err = child.stderr.read().decode(errors="replace").strip()
        child.stderr.close()
        if child.returncode not in (0, 1) and err:
            print(err.splitlines()[-1], file=sys.stderr)
    return Measure(
        peak_bytes=usage.ru_maxrss * 1024,  # KiB on Linux
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        wall_seconds=wall,
        status=child.returncode,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=HERE / ".work" / "heavy")
    parser.add_argument("--only", default="", help="measure only wheels whose label has this")
    parser.add_argument("--scan", type=Path, help="also measure `ftaudit scan` of a project")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ftaudit = [sys.executable, "-m", "ftaudit"]
    results: dict[str, dict[str, object]] = {}
    failed = False
    for wheel in WHEELS:
        if args.only not in wheel.label:
            continue
        path = download(wheel, args.work)
        m = measure([*ftaudit, "inspect", "--format", "json", "-q", str(path)])
        results[wheel.label] = {
            "wheel": path.name,
            "wheel_mib": round(path.stat().st_size / 2**20, 1),
            "peak_mib": round(m.peak_bytes / 2**20),
            "cpu_seconds": round(m.cpu_seconds, 2),
            "wall_seconds": round(m.wall_seconds, 2),
            "exit": m.status,
        }
        within = m.peak_bytes <= PEAK_TARGET and m.status in (0, 1)
        if wheel.twin in results:
            twin_cpu = float(results[wheel.twin]["cpu_seconds"])  # type: ignore[arg-type]
            ratio = m.cpu_seconds / max(twin_cpu, 0.01)
            results[wheel.label]["times_its_linux_twin"] = round(ratio, 2)
            within = within and ratio <= SLOWER_TARGET
        failed = failed or not within
        print(
            f"{wheel.label:28} {results[wheel.label]['wheel_mib']:>7} MiB wheel  "
            f"peak {results[wheel.label]['peak_mib']:>5} MiB  cpu {m.cpu_seconds:7.2f} s  "
            f"wall {m.wall_seconds:7.2f} s  exit {m.status}"
            + (
                f"  x{results[wheel.label]['times_its_linux_twin']} its twin"
                if "times_its_linux_twin" in results[wheel.label]
                else ""
            )
            + ("" if within else "  OVER TARGET")
        )
    if args.scan is not None:
        m = measure([*ftaudit, "scan", str(args.scan), "--platform", "all", "-q"])
        results["scan"] = {
            "project": str(args.scan),
            "peak_mib": round(m.peak_bytes / 2**20),
            "cpu_seconds": round(m.cpu_seconds, 2),
            "wall_seconds": round(m.wall_seconds, 2),
            "exit": m.status,
        }
        within = m.peak_bytes <= SCAN_PEAK_TARGET
        failed = failed or not within
        print(
            f"scan {args.scan}: peak {m.peak_bytes >> 20} MiB  cpu {m.cpu_seconds:.2f} s  "
            f"wall {m.wall_seconds:.2f} s  exit {m.status}" + ("" if within else "  OVER TARGET")
        )
    (args.work / "heavy-results.json").write_text(json.dumps(results, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
