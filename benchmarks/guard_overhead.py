"""The runtime guard's cost on a program's import time: with and without `ftaudit run`'s hook.

    python benchmarks/guard_overhead.py --python FT_PYTHON [--modules 2000] [--extensions 200]
        [--runs 15] [--import numpy,scipy,pandas]

It builds a program whose import graph is the size of numpy, scipy and pandas together
(by default 2,000 pure-Python modules in 200 packages, each package with one compiled
extension module built from fixtures/ext/gilmod.c, declaring Py_MOD_GIL_NOT_USED), or, with
--import, imports real packages installed for that interpreter. Each run is a fresh
interpreter that times its own `import` (start-up and exit excluded), unguarded and then
under the hook exactly as `ftaudit run` installs it (a sitecustomize on PYTHONPATH, one
record file per process); the medians and their ratio are printed. What the guard does at
exit (reading binaries the GIL did not decide) is not on the import path and not counted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ftaudit.guard import hook  # noqa: E402 - after the repository is on sys.path

MODULE = '''\
"""A module of the synthetic import graph: some classes and functions to compile."""
import os

CONSTANT_{i} = {i}


class Thing{i}:
    def __init__(self, value=CONSTANT_{i}):
        self.value = value

    def double(self):
        return self.value * 2

    def __repr__(self):
        return "Thing{i}(%r)" % (self.value,)


def helper_{i}(items):
    return [Thing{i}(x).double() for x in items if x % 3 != {r}]


TABLE_{i} = {{str(k): k * {i} for k in range(20)}}
'''


def build_graph(root: Path, python: str, modules: int, extensions: int) -> str:
    """A package `biggraph` of `extensions` subpackages; returns the statement to time."""
    out = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    suffix = out.stdout.strip()
    include = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    so = root / f"_ext{suffix}"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O2",
            "-DVARIANT=1",
            "-DMODNAME=_ext",
            "-I",
            include,
            str(REPO / "fixtures" / "ext" / "gilmod.c"),
            "-o",
            str(so),
        ],
        check=True,
    )
    top = root / "biggraph"
    top.mkdir()
    per_package = max(1, modules // max(1, extensions))
    lines = []
    for p in range(extensions):
        pkg = top / f"pkg{p}"
        pkg.mkdir()
        # PyInit__ext: the same binary is a different module in each package
        shutil.copyfile(so, pkg / so.name)
        body = ["from . import _ext"]
        for m in range(per_package):
            i = p * per_package + m
            (pkg / f"mod{m}.py").write_text(MODULE.format(i=i, r=i % 3))
            body.append(f"from . import mod{m}")
        (pkg / "__init__.py").write_text("\n".join(body) + "\n")
        lines.append(f"from . import pkg{p}")
    (top / "__init__.py").write_text("\n".join(lines) + "\n")
    return "import biggraph"


TIMER = """\
import time
t = time.perf_counter()
{statement}
print(time.perf_counter() - t)
"""


def one_run(python: str, code: str, cwd: Path, env: dict[str, str]) -> float:
    proc = subprocess.run(
        [python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"the program failed:\n{proc.stderr}")
    return float(proc.stdout.strip().splitlines()[-1])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--python", default=os.environ.get("FT_PYTHON", sys.executable))
    parser.add_argument("--modules", type=int, default=2000)
    parser.add_argument("--extensions", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--import", dest="imports", help="real packages to import instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftaudit-guard-bench-") as tmp:
        root = Path(tmp)
        if args.imports:
            names = [n.strip() for n in args.imports.split(",") if n.strip()]
            statement = "\n".join(f"import {n}" for n in names)
            what = ", ".join(names)
        else:
            statement = build_graph(root, args.python, args.modules, args.extensions)
            what = f"{args.modules} modules and {args.extensions} extension modules"
        code = TIMER.format(statement=statement)
        guard_dir = root / "guard"
        guard_dir.mkdir()
        shutil.copyfile(hook.__file__, guard_dir / "sitecustomize.py")
        records = root / "records"
        records.mkdir()
        # cached bytecode, as an installed package has it
        skip = {hook.RECORDS_ENV, "PYTHONDONTWRITEBYTECODE"}
        plain_env = {k: v for k, v in os.environ.items() if k not in skip}
        guarded_env = {
            **plain_env,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(guard_dir), plain_env.get("PYTHONPATH", "")) if p
            ),
            hook.RECORDS_ENV: str(records),
        }
        one_run(args.python, code, root, plain_env)  # compile every module once
        plain, guarded = [], []
        for _ in range(args.runs):  # interleaved: drift in the machine's load hits both
            plain.append(one_run(args.python, code, root, plain_env))
            guarded.append(one_run(args.python, code, root, guarded_env))
        loads = sum(
            1
            for f in records.glob("*.rec")
            for line in f.read_text().splitlines()
            if line.startswith("('load'")
        )
    per_run = loads // args.runs  # the warm-up run is unguarded
    print(f"import of {what} on {args.python}, {args.runs} runs each:")
    print(f"  {'':20} {'median':>10} {'fastest':>10}")
    print(f"  {'without the guard':20} {_ms(statistics.median(plain))} {_ms(min(plain))}")
    print(f"  {'with the guard':20} {_ms(statistics.median(guarded))} {_ms(min(guarded))}")
    ratio = statistics.median(guarded) / statistics.median(plain)
    fastest = min(guarded) / min(plain)
    print(f"  {'ratio':20} {ratio:10.3f} {fastest:10.3f}   ({per_run} loads recorded per run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
