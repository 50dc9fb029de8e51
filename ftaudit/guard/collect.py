"""Read what the hook recorded in each guarded process and judge it, after the fact.

A load the GIL could flip on (it was off, and neither ``PYTHON_GIL=0`` nor ``-X gil=0``
holds it off) is decided by what the interpreter did: on, or still off. Every other load
(after the first flip nothing flips again; under ``PYTHON_GIL=0`` nothing ever does) is
decided by its binary, read by ftaudit's own static reader, as ``ftaudit inspect`` would.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftaudit.errors import FtauditError
from ftaudit.model import (
    Culprit,
    Extension,
    Frame,
    Gil,
    GuardedProcess,
    RunStatus,
    Seen,
)

GIL_WARNING = "global interpreter lock (GIL) has been enabled"
SITE_DIRS = ("site-packages", "dist-packages")
SITE_DIRS_SET = frozenset(SITE_DIRS)
Judged = Extension | str  # the reader's record, or why the binary could not be read
Judge = Callable[[str], Judged]


@dataclass(frozen=True, slots=True, kw_only=True)
class Load:
    module: str
    path: str
    before: bool | None  # the GIL, just before the module was created (None: cannot tell)
    after: bool | None
    raised: str | None
    concurrent: bool
    frames: tuple[tuple[str, str, int], ...]
    preloaded: bool = False  # loaded before the hook was installed


@dataclass(slots=True)
class ProcessLog:
    """Everything one process recorded."""

    start: dict[str, Any]
    loads: list[Load] = field(default_factory=list)
    exit: dict[str, Any] | None = None

    @property
    def pid(self) -> int:
        return int(self.start.get("pid", 0))

    @property
    def parent_pid(self) -> int:
        return int(self.start.get("ppid", 0))

    @property
    def could_flip(self) -> bool:
        """Whether a load could turn the GIL on in this process, so that its not doing
        so proves the module declared it runs without it."""
        held_off = "0" in (self.start.get("python_gil"), self.start.get("x_gil"))
        return self.free_threaded and not held_off

    @property
    def free_threaded(self) -> bool:
        return "t" in str(self.start.get("abiflags", "")) or self.start.get("gil") is False


def read_records(directory: Path) -> list[ProcessLog]:
    """Every process's log: one per ``start`` record (a forked child starts its own file;
    a pid the system reused starts a second log in the same file)."""
    logs: list[ProcessLog] = []
    for path in sorted(directory.glob("*.rec")):
        current: ProcessLog | None = None
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            record = _parse(line)
            if record is None:
                continue
            kind, data = record
            if kind == "start":
                current = ProcessLog(start=data)
                logs.append(current)
            elif current is None:
                continue
            elif kind in ("load", "before"):
                current.loads.append(parse_load(data, preloaded=kind == "before"))
            elif kind == "exit":
                current.exit = data
    return logs


def _parse(line: str) -> tuple[str, dict[str, Any]] | None:
    try:
        value = ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None  # a record cut short (the process was killed mid-write)
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict)):
        return None
    return str(value[0]), value[1]


def parse_load(data: dict[str, Any], *, preloaded: bool) -> Load:
    frames = tuple(
        (str(f[0]), str(f[1]), int(f[2]))
        for f in data.get("frames", ())
        if isinstance(f, tuple) and len(f) == 3
    )
    return Load(
        module=str(data.get("module", "?")),
        path=str(data.get("path", "")),
        before=data.get("before"),
        after=data.get("after"),
        raised=data.get("raised"),
        concurrent=bool(data.get("concurrent", False)),
        frames=frames,
        preloaded=preloaded,
    )


def read_binary(path: str) -> Judged:
    # imported here: the plugin imports this module in the process it guards
    from ftaudit.inspect.artifact import inspect_file

    try:
        facts = inspect_file(Path(path))
    except FtauditError as exc:
        return str(exc)
    if facts.extensions:
        return facts.extensions[0]
    if facts.unreadable:
        return facts.unreadable[0][1]
    return "not an extension module (no init function)"


# --- where each module comes from -----------------------------------------------------------


class Places:
    """Tell the program's own files from the standard library's and from installed
    distributions', by the guarded interpreter's own paths."""

    def __init__(self, log: ProcessLog) -> None:
        base = str(log.start.get("base_prefix") or log.start.get("prefix") or "")
        prefixes = {base, str(log.start.get("prefix") or "")} - {""}
        self.site = [
            os.path.normpath(p)
            for p in log.start.get("path", ())
            if isinstance(p, str) and Path(p).name in SITE_DIRS
        ]
        self.stdlib = [str(Path(p) / "lib") for p in prefixes]
        self._dists: dict[str, dict[str, tuple[str, str]]] = {}

    def origin(self, path: str) -> str:
        norm = os.path.normpath(path)
        if any(_under(norm, s) for s in self.site):
            return "third_party"
        if path.startswith("<frozen") or any(_under(norm, s) for s in self.stdlib):
            return "stdlib"
        return "own"

    def distribution(self, path: str) -> tuple[str, str] | None:
        """(name, version) of the installed distribution a file belongs to."""
        norm = os.path.normpath(path)
        for site in self.site:
            if _under(norm, site):
                rel = os.path.relpath(norm, site).replace(os.sep, "/")
                table = self._table(site)
                return table.get(rel) or table.get(rel.split("/", 1)[0])
        return None

    def _table(self, site: str) -> dict[str, tuple[str, str]]:
        """Each installed file, and each top-level name, of a site directory, mapped to
        its distribution (RECORD files only: nothing is imported)."""
        if site in self._dists:
            return self._dists[site]
        from importlib import metadata

        table: dict[str, tuple[str, str]] = {}
        try:
            dists = list(metadata.distributions(path=[site]))
        except OSError:
            dists = []
        for dist in dists:
            name = dist.metadata["Name"] if dist.metadata else None
            if not name:
                continue
            owner = (str(name), str(dist.version))
            for f in dist.files or ():
                rel = str(f).replace(os.sep, "/")
                if rel.startswith("..") or ".dist-info/" in rel or "__pycache__" in rel:
                    continue
                table.setdefault(rel, owner)
                top = rel.split("/", 1)[0]
                top = top.split(".", 1)[0] if "/" not in rel else top
                table.setdefault(top, owner)
        self._dists[site] = table
        return table


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def frames_of(load: Load, places: Places) -> tuple[Frame, ...]:
    out = []
    for module, path, line in load.frames:
        origin = places.origin(path)
        dist = places.distribution(path) if origin == "third_party" else None
        out.append(
            Frame(
                module=module,
                path=path,
                line=line,
                origin=origin,
                distribution=dist[0] if dist else None,
            )
        )
    return tuple(out)


def short_chain(frames: Sequence[Frame], module: str) -> tuple[str, ...]:
    """From the program's first own module: its own modules, then the first module of
    each distribution entered, then the extension module itself."""
    own = [i for i, f in enumerate(frames) if f.origin == "own"]
    # a file of the program's before `python -c` code (multiprocessing's bootstrap of a
    # worker is such code)
    files = [i for i in own if Path(frames[i].path).is_absolute()]
    start = (files or own or [0])[0]
    chain: list[str] = []
    last_dist: str | None = None
    for f in frames[start:]:
        if f.origin == "own":
            chain.append(_display(f))
            last_dist = None
        elif f.origin == "third_party" and (f.distribution is None or f.distribution != last_dist):
            chain.append(f.module)
            last_dist = f.distribution
    if not chain or chain[-1] != module:
        chain.append(module)
    return tuple(chain)


def _display(frame: Frame) -> str:
    """A script shows as its file name, ``python -c`` as ``__main__``."""
    # __mp_main__: the main script, as a multiprocessing worker imports it
    if frame.module in ("__main__", "__mp_main__") and Path(frame.path).is_absolute():
        return Path(frame.path).name
    return frame.module


# --- judging ----------------------------------------------------------------------------------


def needs_reading(log: ProcessLog) -> set[str]:
    """The binaries whose loads the interpreter's GIL did not decide."""
    return {
        load.path
        for load in log.loads
        if _runtime(log, load) is None and not _interpreter(log, load)
    }


def _runtime(log: ProcessLog, load: Load) -> bool | None:
    """True: this load turned the GIL on; False: it could have and did not; None: the
    GIL's state says nothing about this module."""
    if load.raised and GIL_WARNING in load.raised:
        return True  # -W error: the warning raised after the GIL was turned on
    if load.preloaded:
        # loaded before the hook, with the GIL still off when it came in
        return False if log.could_flip and log.start.get("gil") is False else None
    if not log.could_flip or load.concurrent or load.before is not False:
        return None
    return bool(load.after)


def _interpreter(log: ProcessLog, load: Load) -> bool:
    """A module of the interpreter's own standard library: every extension a
    free-threaded CPython ships declares that it runs without the GIL."""
    prefix = str(log.start.get("base_prefix") or "")
    if not prefix or not log.free_threaded:
        return False
    path = Path(os.path.normpath(load.path))
    return _under(str(path), str(Path(prefix) / "lib")) and not SITE_DIRS_SET & set(path.parts)


def judge_all(paths: Iterable[str], judge: Judge = read_binary) -> dict[str, Judged]:
    wanted = sorted(set(paths))
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(wanted), os.cpu_count() or 2)) as pool:
        return dict(zip(wanted, pool.map(judge, wanted), strict=True))


def judge_process(
    log: ProcessLog,
    read: Mapping[str, Judged],
    *,
    main: bool,
    kind: str,
) -> GuardedProcess:
    places = Places(log)
    culprits: list[Culprit] = []
    notes: list[str] = []
    for load in log.loads:
        flipped = _runtime(log, load)
        if flipped is False or (flipped is None and _interpreter(log, load)):
            continue
        binary = read.get(load.path)
        ext = binary if isinstance(binary, Extension) else None
        if flipped is None and ext is not None and ext.gil is Gil.NOT_USED:
            continue
        dist = places.distribution(load.path)
        frames = frames_of(load, places)
        if load.preloaded:
            chain: tuple[str, ...] = ("(loaded before the guard started)", load.module)
        else:
            chain = short_chain(frames, load.module)
        gil: Gil
        if flipped:
            # what the binary declares says how it fails; one read as not_used that flipped
            # the GIL all the same is a module the reader got wrong: unknown, not not_used
            seen = Seen.RUNTIME
            gil = ext.gil if ext and ext.gil is not Gil.NOT_USED else Gil.UNKNOWN
            detail = "the GIL was off, and creating this module turned it on"
            if ext is not None:
                detail += f"; its binary: {ext.gil.value}, {ext.init.value}: {ext.detail}"
        elif ext is not None:
            seen, gil = Seen.STATIC, ext.gil
            detail = f"its binary: {ext.init.value}: {ext.detail}"
        else:
            seen, gil = Seen.STATIC, Gil.UNKNOWN
            detail = f"its binary could not be read: {binary or 'not read'}"
        culprits.append(
            Culprit(
                module=load.module,
                path=load.path,
                distribution=dist[0] if dist else None,
                version=dist[1] if dist else None,
                seen=seen,
                reenabled=bool(flipped),
                gil=gil,
                init=ext.init if ext else None,
                detail=detail,
                raised=load.raised,
                chain=chain,
                frames=frames,
            )
        )
    start = log.start
    warnings_error = any(_errors_warnings(w) for w in start.get("warnoptions", ()))
    python_gil = start.get("python_gil")
    if start.get("x_gil") is not None:
        python_gil = str(start.get("x_gil"))
    if python_gil == "0":
        notes.append(
            "PYTHON_GIL=0 (or -X gil=0) holds the GIL off, so nothing flips it and no warning "
            "names a module: each module loaded was judged by its binary"
        )
    elif python_gil == "1":
        notes.append("PYTHON_GIL=1 (or -X gil=1) turned the GIL on from the start")
    if any(c.raised and GIL_WARNING in c.raised for c in culprits):
        notes.append(
            "-W error turns the GIL's RuntimeWarning into an exception: the import of the "
            "first module to need the GIL raised it (the GIL was turned on all the same)"
        )
    gil_at_exit = log.exit.get("gil") if log.exit is not None else None
    if log.exit is None:
        notes.append("it ended without running its exit handlers (os._exit, a signal, a crash)")
    status = _status(log, culprits, gil_at_exit, notes)
    return GuardedProcess(
        pid=log.pid,
        parent_pid=log.parent_pid,
        main=main,
        kind=kind,
        argv=tuple(str(a) for a in start.get("argv", ())),
        executable=str(start.get("executable", "")),
        python_version=str(start.get("version", "")),
        free_threaded=log.free_threaded,
        gil_at_start=start.get("gil"),
        gil_at_exit=gil_at_exit,
        python_gil=python_gil,
        warnings_error=warnings_error,
        extensions=len(log.loads),
        culprits=tuple(culprits),
        status=status,
        notes=tuple(notes),
    )


def _errors_warnings(option: object) -> bool:
    text = str(option)
    return text.split(":", 1)[0] == "error" and (
        text.count(":") < 2 or text.split(":")[2] in ("", "RuntimeWarning", "Warning")
    )


def _status(
    log: ProcessLog, culprits: Sequence[Culprit], gil_at_exit: bool | None, notes: list[str]
) -> RunStatus:
    if not log.free_threaded:
        return RunStatus.NOT_FREE_THREADED
    if any(c.reenabled or c.gil in (Gil.USED, Gil.UNDECLARED) for c in culprits):
        return RunStatus.GIL
    if culprits:
        return RunStatus.UNKNOWN
    if log.could_flip and log.start.get("gil") is False and gil_at_exit:
        notes.append(
            "the GIL was on at exit, though no extension module the guard saw load turned it "
            "on (a module loaded some other way?)"
        )
        return RunStatus.UNKNOWN
    return RunStatus.FREE


def process_kind(log: ProcessLog, parent: ProcessLog | None) -> str:
    argv = " ".join(str(a) for a in log.start.get("argv", ()))
    if log.start.get("forked"):  # its command line is its parent's
        if parent is not None and process_kind(parent, None) == "multiprocessing forkserver":
            return "multiprocessing forkserver worker"
        return "forked child"
    if "--multiprocessing-fork" in argv or "spawn_main" in argv:
        return "multiprocessing spawn worker"
    if "multiprocessing.forkserver" in argv:
        return "multiprocessing forkserver"
    if "multiprocessing.resource_tracker" in argv:
        return "multiprocessing resource tracker"
    return "program" if parent is None else "subprocess"


def judge_run(logs: Sequence[ProcessLog], judge: Judge = read_binary) -> list[GuardedProcess]:
    """Every process, the main ones (whose parent is no guarded process) first."""
    by_pid = {log.pid: log for log in logs}
    read = judge_all((p for log in logs for p in needs_reading(log) | _flipped_paths(log)), judge)
    out = []
    for log in logs:
        parent = by_pid.get(log.parent_pid)
        if parent is log:
            parent = None
        out.append(judge_process(log, read, main=parent is None, kind=process_kind(log, parent)))
    return sorted(out, key=lambda p: (not p.main, p.pid))


def _flipped_paths(log: ProcessLog) -> set[str]:
    # a module that turned the GIL on is read too, to say how it fails to declare
    return {load.path for load in log.loads if _runtime(log, load)}
