"""The part of the guard that runs inside the guarded process: record each extension load.

`ftaudit run` copies this file, as ``sitecustomize.py``, into a temporary directory it puts
first on ``PYTHONPATH``; the pytest plugin calls `install` in its own process. Either way
it wraps ``ExtensionFileLoader.create_module`` (where CPython runs a module's init and
decides whether to turn the GIL back on) and writes, for each extension module created:
its name and file, whether the GIL was on before and after, what the creation raised, and
the importing frames. Nothing is judged here: reading binaries is for the other side, at
exit. Everything that lands in a record is a plain literal (``repr``, read back with
``ast.literal_eval``), so this module imports nothing the interpreter has not already
imported at start-up (``atexit`` aside, a built-in): the program imports what it would
import without the guard, in the same order.

It runs under whatever Python the program starts, so it keeps to old syntax and never
lets an error of its own escape into the program.
"""

import os
import sys

# Neither typing nor __future__ is imported at start-up, so neither is imported here: the
# annotations are strings, and mypy reads this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    Write = Callable[[str, dict[str, object]], None]

RECORDS_ENV = "FTAUDIT_RUN_RECORDS"  # the directory each process writes its record file to
MAX_FRAMES = 256
_IMPORTLIB = ("<frozen importlib", "<frozen zipimport")


class _Guard:
    write: "Write | None" = None
    started = 0  # extension creations begun, all threads
    active = 0  # in progress now
    lock: object = None


def _gil_enabled() -> "bool | None":
    probe = getattr(sys, "_is_gil_enabled", None)
    return None if probe is None else bool(probe())


def _frames(frame: "FrameType | None") -> "list[tuple[str, str, int]]":
    """(module, file, line) of each frame that is not the import machinery's, outermost
    first, one per run of frames of the same module (its last: the line that led on)."""
    out: list[tuple[str, str, int]] = []
    while frame is not None and len(out) < MAX_FRAMES:
        filename = frame.f_code.co_filename
        if not filename.startswith(_IMPORTLIB) and filename != __file__:
            name = frame.f_globals.get("__name__")
            name = name if isinstance(name, str) else "?"
            if name == "__main__":  # `python -m pkg`: its spec names the module
                spec_name = getattr(frame.f_globals.get("__spec__"), "name", None)
                name = spec_name if isinstance(spec_name, str) else name
            if not out or out[-1][0] != name:
                out.append((name, filename, frame.f_lineno or 0))
        frame = frame.f_back
    out.reverse()
    return out


def _emit(kind: str, data: "dict[str, object]") -> None:
    if _Guard.write is None:
        return
    try:
        _Guard.write(kind, data)
    except Exception:  # noqa: BLE001, S110 - the program must never see the guard fail
        pass


def _file_writer(directory: str) -> "Write":
    """Append each record to this process's file (a forked child opens its own). The
    descriptor stays open, but before each write it must still be the file opened: the
    program may close descriptors it did not open, and one it reuses for a file of its
    own must never receive a record. A crash or ``os._exit`` loses nothing written."""
    held = {"pid": -1, "fd": -1, "id": (-1, -1)}

    def reopen() -> int:
        path = os.path.join(directory, "%d.rec" % os.getpid())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        info = os.fstat(fd)
        held.update(pid=os.getpid(), fd=fd, id=(info.st_dev, info.st_ino))
        return fd

    def current() -> int:
        fd = held["fd"]
        if held["pid"] != os.getpid():
            return reopen()  # the parent's descriptor is the parent's file
        try:
            info = os.fstat(fd)  # type: ignore[arg-type]
        except OSError:
            return reopen()
        if (info.st_dev, info.st_ino) != held["id"]:
            return reopen()  # closed and reused for something else: leave that alone
        return fd  # type: ignore[return-value]

    def write(kind: str, data: "dict[str, object]") -> None:
        line = repr((kind, data)) + "\n"  # repr escapes every newline inside
        os.write(current(), line.encode("utf-8", "backslashreplace"))

    return write


def _start_record(forked: bool) -> "dict[str, object]":
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "forked": forked,
        "argv": list(getattr(sys, "orig_argv", sys.argv)),
        "executable": sys.executable,
        "version": "%d.%d.%d" % sys.version_info[:3],
        "abiflags": getattr(sys, "abiflags", ""),
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "path": [p for p in sys.path if isinstance(p, str)],
        "gil": _gil_enabled(),
        "python_gil": os.environ.get("PYTHON_GIL"),
        "x_gil": getattr(sys, "_xoptions", {}).get("gil"),
        "warnoptions": list(sys.warnoptions),
    }


def _loader_type() -> "type | None":
    machinery = sys.modules.get("_frozen_importlib_external")
    found = getattr(machinery, "ExtensionFileLoader", None)
    return found if isinstance(found, type) else None


def _already_loaded(loader_type: type) -> None:
    """Extension modules loaded before the hook (by a .pth file, or before the plugin)."""
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None)
        if isinstance(getattr(spec, "loader", None), loader_type) and origin:
            _emit("before", {"module": name, "path": str(origin)})


def _wrap(create: "Callable[[object, object], object]") -> "Callable[[object, object], object]":
    def create_module(self: object, spec: object) -> object:
        lock = _Guard.lock
        alone = True
        started = 0
        if lock is not None:
            with lock:  # type: ignore[attr-defined]
                _Guard.started += 1
                _Guard.active += 1
                started, alone = _Guard.started, _Guard.active == 1
        before = _gil_enabled()
        raised = None
        try:
            return create(self, spec)
        except BaseException as exc:
            raised = "%s: %s" % (type(exc).__name__, exc)
            raise
        finally:
            after = _gil_enabled()
            if lock is not None:
                with lock:  # type: ignore[attr-defined]
                    _Guard.active -= 1
                    alone = alone and _Guard.started == started
            try:
                frames = _frames(sys._getframe(1))
            except Exception:  # noqa: BLE001 - a frame it cannot read must not fail the import
                frames = []
            _emit(
                "load",
                {
                    "module": str(getattr(spec, "name", "?")),
                    "path": str(getattr(spec, "origin", "") or ""),
                    "before": before,
                    "after": after,
                    "raised": raised,
                    # another thread created an extension module meanwhile: the flip seen
                    # here may be its own
                    "concurrent": not alone,
                    "frames": frames,
                },
            )

    create_module.__wrapped__ = create  # type: ignore[attr-defined]
    create_module.__ftaudit_guard__ = True  # type: ignore[attr-defined]
    return create_module


def install(write: "Write") -> bool:
    """Wrap the extension loader and send each record to `write(kind, data)`; False when
    this interpreter has no loader to wrap."""
    loader_type = _loader_type()
    if loader_type is None:
        return False
    thread = sys.modules.get("_thread")
    _Guard.lock = thread.allocate_lock() if thread is not None else None
    _Guard.write = write
    _emit("start", _start_record(False))
    _already_loaded(loader_type)
    original = loader_type.create_module  # type: ignore[attr-defined]
    if not getattr(original, "__ftaudit_guard__", False):
        loader_type.create_module = _wrap(original)  # type: ignore[attr-defined]
    return True


def uninstall() -> None:
    """Put the loader back (the plugin, at the end of its session)."""
    _Guard.write = None
    loader_type = _loader_type()
    current = getattr(loader_type, "create_module", None)
    if loader_type is not None and getattr(current, "__ftaudit_guard__", False):
        loader_type.create_module = current.__wrapped__  # type: ignore[attr-defined,union-attr]


def _after_fork() -> None:
    # A forked child is a process of its own: its records go to its own file.
    _emit("start", _start_record(True))


def _at_exit() -> None:
    _emit("exit", {"gil": _gil_enabled()})


def _chain_sitecustomize() -> None:
    """Run the sitecustomize this one hides (the environment's own, if any), then take
    the guard's directory off sys.path so the program imports what it would without it."""
    here = os.path.dirname(os.path.abspath(__file__))

    def mine(entry: str) -> bool:
        try:
            return os.path.abspath(entry or os.curdir) == here
        except Exception:  # noqa: BLE001 - an odd sys.path entry is simply not ours
            return False

    ours = sys.modules.pop("sitecustomize", None)
    sys.path[:] = [p for p in sys.path if not (isinstance(p, str) and mine(p))]
    try:
        # the environment's own: its effects are the point
        import sitecustomize  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as exc:
        if getattr(exc, "name", None) != "sitecustomize":
            raise
    finally:
        if "sitecustomize" not in sys.modules and ours is not None:
            sys.modules["sitecustomize"] = ours


def _main() -> None:
    directory = os.environ.get(RECORDS_ENV)
    if not directory or not os.path.isdir(directory):
        return
    try:
        if install(_file_writer(directory)):
            import atexit

            atexit.register(_at_exit)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_after_fork)
    except Exception:  # noqa: BLE001, S110 - without the guard the program still runs
        pass
    _chain_sitecustomize()


if __name__ == "sitecustomize":
    _main()
