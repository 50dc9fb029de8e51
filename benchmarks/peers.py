"""ftaudit side by side with its peers, each on the input it accepts, cold and warm.

    python benchmarks/peers.py [--work DIR] [--peer-python PY] [--env-python PY] [--runs N]

The peers (abi3t-doctor, uv-readiness, python-ft-deps) are installed with pip, from the
index pip is configured with, into a venv of their own under --work (default
benchmarks/.work/peers, not committed), made with --peer-python (python-ft-deps needs
Python >= 3.12). The inputs are built once under --work:

* a uv project of 12 direct dependencies, compiled ones among them, locked with `uv lock`;
* its requirements.txt (`uv export --no-hashes`);
* a venv of --env-python (3.11) with those requirements installed by pip.

Each tool reads the input it accepts, and ftaudit (`scan --target 3.13t`) reads the same:

    uv-readiness 3.13t --project P          ftaudit scan P
    abi3t-doctor tree --target 3.13t R      ftaudit scan -r R
    python-ft-deps (in P; runs uv export)   ftaudit scan P
    abi3t-doctor env --target 3.13t --path S ftaudit scan ENV

Cold is an empty cache (each tool's cache pointed at a new directory: XDG_CACHE_HOME,
UV_CACHE_DIR, abi3t-doctor --cache-dir, ftaudit --cache-dir), warm the same cache again.
Every run is a child process of its own, measured by the kernel (os.wait4): wall and CPU
seconds and peak resident memory; --runs of each, medians. Bytes downloaded are counted
once more per tool by a cold run through a CONNECT proxy on 127.0.0.1 (HTTPS_PROXY):
bytes the proxy relayed to the tool, TLS included. For ftaudit its report's
`stats.bytes_fetched` is given too.

What the tools read differs, and the table says so: ftaudit finds each package's wheel
for the target and reads its extension modules (by HTTP ranges); abi3t-doctor `tree` and
python-ft-deps read the index's file lists (wheel tags), uv-readiness relocks with uv
for the target and reads trove classifiers, abi3t-doctor `env` reads the installed files'
tags and names.

Figures go to benchmarks/peers-results.json; a table of ratios (ftaudit / the fastest
peer on the same input) is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = ("abi3t-doctor", "uv-readiness", "python-ft-deps")
# A small service's stack: numeric, serialization, HTTP, validation; most are compiled.
DEPENDENCIES = (
    "numpy",
    "pandas",
    "pyyaml",
    "orjson",
    "httpx",
    "pydantic",
    "msgpack",
    "markupsafe",
    "cffi",
    "zstandard",
    "regex",
    "psutil",
)
TARGET = "3.13t"


# -- a counting proxy ---------------------------------------------------------------------


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.lock = threading.Lock()
        self.down = 0
        self.up = 0

    def count(self, down: int, up: int) -> None:
        with self.lock:
            self.down += down
            self.up += up


class _Tunnel(socketserver.BaseRequestHandler):
    """CONNECT host:port, then relay both ways, counting what goes to the client."""

    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target = head.split(b" ", 2)[:2]
        if method != b"CONNECT":
            client.sendall(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = target.decode().rpartition(":")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        server = self.server
        assert isinstance(server, _Proxy)
        with upstream:
            peers = {client: upstream, upstream: client}
            while True:
                ready, _, _ = select.select(list(peers), [], [], 60)
                if not ready:
                    return
                for sock in ready:
                    try:
                        data = sock.recv(65536)
                        if data:
                            peers[sock].sendall(data)
                    except OSError:  # a reset by either side ends the tunnel
                        return
                    if not data:
                        return
                    if sock is upstream:
                        server.count(len(data), 0)
                    else:
                        server.count(0, len(data))


# -- running one child --------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    rss: int
    code: int
    bytes_fetched: int | None = None


@dataclass
class Case:
    tool: str
    input: str
    reads: str
    argv: list[str]
    cwd: Path
    env_of: object  # Callable[[Path], dict[str, str]]: the environment for a cache dir
    cold: list[Run] = field(default_factory=list)
    warm: list[Run] = field(default_factory=list)
    proxied_bytes: int | None = None
    exit_codes: set[int] = field(default_factory=set)


def run(argv: list[str], cwd: Path, env: dict[str, str], report: Path | None) -> Run:
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-1500:].decode(errors="replace")
    code = proc.returncode
    if code not in (0, 1):
        print(f"  {argv[0]} ... exit {code}:\n{tail}", file=sys.stderr)
    fetched = None
    if report is not None and report.is_file():
        fetched = json.loads(report.read_text()).get("stats", {}).get("bytes_fetched")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, code, fetched)


def _sh(argv: list[str], **kwargs: object) -> None:
    print("  $ " + " ".join(str(a) for a in argv), file=sys.stderr)
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


# -- inputs -------------------------------------------------------------------------------


def peer_venv(work: Path, python: str) -> Path:
    venv = work / "peer-venv"
    if not all((venv / "bin" / tool).exists() for tool in PEERS):
        print(f"installing {', '.join(PEERS)} into {venv} ...", file=sys.stderr)
        _sh([python, "-m", "venv", "--clear", str(venv)])
        _sh([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PEERS])
    return venv


def inputs(work: Path, uv: str, env_python: str) -> tuple[Path, Path, Path]:
    project = work / "project"
    lock = project / "uv.lock"
    build_env = {**os.environ, "UV_CACHE_DIR": str(work / "build-cache" / "uv")}
    if not lock.is_file():
        project.mkdir(parents=True, exist_ok=True)
        deps = "".join(f'    "{d}",\n' for d in DEPENDENCIES)
        (project / "pyproject.toml").write_text(
            '[project]\nname = "service"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
            f"dependencies = [\n{deps}]\n\n[tool.uv]\npackage = false\n"
        )
        _sh([uv, "lock", "--project", str(project)], env=build_env)
    reqs = work / "requirements.txt"
    if not reqs.is_file():
        out = subprocess.run(
            [uv, "export", "--frozen", "--no-hashes", "--no-emit-project",
             "--project", str(project)],
            check=True, capture_output=True, text=True, env=build_env,
        ).stdout  # fmt: skip
        reqs.write_text(out)
    env = work / "env311"
    if not (env / "installed").is_file():
        _sh([env_python, "-m", "venv", "--clear", str(env)])
        _sh([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(reqs)])
        (env / "installed").write_text("")
    return project, reqs, env


def site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python3.*/site-packages"))


# -- the benchmark -------------------------------------------------------------------------


def _median(runs: list[Run], attr: str) -> float:
    return statistics.median(float(getattr(r, attr)) for r in runs)


def summary(case: Case) -> dict[str, object]:
    out: dict[str, object] = {
        "tool": case.tool,
        "input": case.input,
        "reads": case.reads,
        "command": " ".join(case.argv),
        "exit_codes": sorted(case.exit_codes),
        "bytes_via_proxy_cold": case.proxied_bytes,
    }
    for phase, runs in (("cold", case.cold), ("warm", case.warm)):
        out[phase] = {
            "wall_s": round(_median(runs, "wall"), 3),
            "cpu_s": round(_median(runs, "cpu"), 3),
            "peak_rss_mib": round(_median(runs, "rss") / 2**20, 1),
            "walls": [round(r.wall, 3) for r in runs],
        }
        fetched = [r.bytes_fetched for r in runs if r.bytes_fetched is not None]
        if fetched:
            out[phase]["bytes_fetched"] = int(statistics.median(fetched))  # type: ignore[index]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=HERE / ".work" / "peers")
    parser.add_argument(
        "--peer-python",
        default=shutil.which("python3.13") or shutil.which("python3.12"),
        help="Python >= 3.12 for the peers' venv",
    )
    parser.add_argument("--env-python", default=shutil.which("python3.11"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-proxy-count", action="store_true", help="skip counting bytes")
    args = parser.parse_args()
    if not args.peer_python or not args.env_python:
        parser.error("need --peer-python (>= 3.12) and --env-python (3.11)")
    work: Path = args.work.resolve()
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        parser.error("uv not found (it is in the test extras)")
    venv = peer_venv(work, args.peer_python)
    # pip compiles what it installs; an editable checkout run with PYTHONDONTWRITEBYTECODE
    # would compile ftaudit's sources on every run, which no installed ftaudit does.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(HERE.parent / "ftaudit")], check=True
    )
    project, reqs, env = inputs(work, uv, args.env_python)
    site = site_packages(env)
    bin_ = venv / "bin"
    caches = work / "caches"
    ftaudit = [sys.executable, "-m", "ftaudit", "scan", "--target", TARGET, "--fail-on", "none"]

    # The peers shell out to `uv`: theirs comes first on PATH, then the peer Python's own
    # directory, where `uv lock --python 3.13` finds an interpreter (it skips venvs; it
    # must not download one).
    base = Path(os.path.realpath(args.peer_python)).parent
    path = os.pathsep.join((str(bin_), str(base), os.environ["PATH"]))

    def peer_env(cache: Path) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": path,
            "UV_PYTHON_DOWNLOADS": "never",
            "XDG_CACHE_HOME": str(cache / "xdg"),
            "UV_CACHE_DIR": str(cache / "uv"),
            "NO_COLOR": "1",
        }

    def ft_env(cache: Path) -> dict[str, str]:
        return {**os.environ, "XDG_CACHE_HOME": str(cache / "xdg"), "NO_COLOR": "1"}

    def ft(input_: str, *argv: str) -> Case:
        return Case(
            "ftaudit", input_, "the wheels' extension modules (ranges), lock/metadata",
            [*ftaudit, "--format", "json", "-o", "{cache}/report.json", "--cache-dir",
             "{cache}/ftaudit", *argv],
            work, ft_env,
        )  # fmt: skip

    cases = [
        Case(
            "uv-readiness", "uv.lock", "uv lock for the target; trove classifiers",
            [str(bin_ / "uv-readiness"), "--json", "--project", str(project), TARGET],
            work, peer_env,
        ),
        Case(
            "python-ft-deps", "uv.lock", "uv export; each project's file list (wheel tags)",
            [str(bin_ / "python-ft-deps")], project, peer_env,
        ),
        ft("uv.lock", str(project)),
        Case(
            "abi3t-doctor tree", "requirements.txt", "each project's JSON (wheel tags)",
            [str(bin_ / "abi3t-doctor"), "tree", "--target", TARGET, "--format", "json",
             "--cache-dir", "{cache}/abi3t", str(reqs)],
            work, peer_env,
        ),
        ft("requirements.txt", "-r", str(reqs)),
        Case(
            "abi3t-doctor env", "3.11 environment", "installed files' names and tags",
            [str(bin_ / "abi3t-doctor"), "env", "--target", TARGET, "--format", "json",
             "--path", str(site)],
            work, peer_env,
        ),
        ft("3.11 environment", str(env)),
    ]  # fmt: skip

    def argv_for(case: Case, cache: Path) -> list[str]:
        return [a.replace("{cache}", str(cache)) for a in case.argv]

    def once(case: Case, cache: Path, extra: dict[str, str] | None = None) -> Run:
        cache.mkdir(parents=True, exist_ok=True)
        env_of = case.env_of
        assert callable(env_of)
        environ = {**env_of(cache), **(extra or {})}
        report = cache / "report.json" if case.tool == "ftaudit" else None
        if report is not None:
            report.unlink(missing_ok=True)
        result = run(argv_for(case, cache), case.cwd, environ, report)
        case.exit_codes.add(result.code)
        return result

    for round_ in range(args.runs):
        for n, case in enumerate(cases):
            cache = caches / f"{n}"
            shutil.rmtree(cache, ignore_errors=True)
            cold = once(case, cache)
            warm = once(case, cache)
            case.cold.append(cold)
            case.warm.append(warm)
            print(
                f"[{round_ + 1}/{args.runs}] {case.tool:18} {case.input:18} "
                f"cold {cold.wall:6.2f}s  warm {warm.wall:6.2f}s",
                file=sys.stderr,
            )

    if not args.no_proxy_count:
        proxy = _Proxy()
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        extra = {"HTTPS_PROXY": url, "https_proxy": url, "NO_PROXY": "", "no_proxy": ""}
        for n, case in enumerate(cases):
            cache = caches / f"proxy-{n}"
            shutil.rmtree(cache, ignore_errors=True)
            with proxy.lock:
                proxy.down = proxy.up = 0
            once(case, cache, extra)
            time.sleep(0.2)  # let the relays see the tool's connections close
            case.proxied_bytes = proxy.down
        proxy.shutdown()

    lock_packages = (project / "uv.lock").read_text().count("[[package]]")
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().machine}",
        "target": TARGET,
        "runs": args.runs,
        "project": {"direct": list(DEPENDENCIES), "locked_packages": lock_packages},
        "installed_distributions": len(list(site.glob("*.dist-info"))),
        "peer_versions": _versions(venv),
        "cases": [summary(c) for c in cases],
    }
    results["ratios"] = ratios(cases)
    (HERE / "peers-results.json").write_text(json.dumps(results, indent=2) + "\n")
    table(cases, results["ratios"])  # type: ignore[arg-type]
    return 0


def _versions(venv: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    wanted = {*PEERS, "uv"}
    return {p["name"]: p["version"] for p in json.loads(out) if p["name"] in wanted}


def ratios(cases: list[Case]) -> list[dict[str, object]]:
    rows = []
    for input_ in dict.fromkeys(c.input for c in cases):
        mine = next(c for c in cases if c.input == input_ and c.tool == "ftaudit")
        peers = [c for c in cases if c.input == input_ and c.tool != "ftaudit"]
        row: dict[str, object] = {"input": input_}
        for phase in ("cold", "warm"):
            best = min(peers, key=lambda c: _median(getattr(c, phase), "wall"))
            ours = _median(getattr(mine, phase), "wall")
            theirs = _median(getattr(best, phase), "wall")
            row[phase] = {
                "fastest_peer": best.tool,
                "ftaudit_s": round(ours, 3),
                "peer_s": round(theirs, 3),
                "ratio": round(ours / theirs, 2),
            }
        rows.append(row)
    return rows


def table(cases: list[Case], rows: list[dict[str, dict[str, object]]]) -> None:
    print(
        f"{'tool':18} {'input':18} {'cold s':>7} {'warm s':>7} {'cpu c/w':>11} {'MiB':>6} "
        f"{'proxy bytes':>12} {'own count':>12}"
    )
    for c in cases:
        s = summary(c)
        cold, warm = s["cold"], s["warm"]
        assert isinstance(cold, dict) and isinstance(warm, dict)
        own = cold.get("bytes_fetched")
        counted = f"{own:,}" if isinstance(own, int) else "-"
        proxied = f"{c.proxied_bytes:,}" if c.proxied_bytes is not None else "not measured"
        cpu = f"{cold['cpu_s']:.2f}/{warm['cpu_s']:.2f}"
        print(
            f"{c.tool:18} {c.input:18} {cold['wall_s']:7.2f} {warm['wall_s']:7.2f} {cpu:>11} "
            f"{cold['peak_rss_mib']:6.1f} {proxied:>12} {counted:>12}"
        )
    print()
    print(f"{'input':18} {'cold: ftaudit / fastest peer':36} {'warm: ftaudit / fastest peer':36}")
    for row in rows:
        cells = []
        for phase, target in (("cold", 2.0), ("warm", 1.0)):
            r = row[phase]
            ok = "ok" if float(str(r["ratio"])) <= target else "MISSED"
            cells.append(f"{r['ratio']}x ({r['fastest_peer']}) {ok}")
        print(f"{row['input']:18} {cells[0]:36} {cells[1]:36}")


if __name__ == "__main__":
    sys.exit(main())
