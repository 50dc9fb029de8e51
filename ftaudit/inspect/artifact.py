"""Read an artifact (wheel, installed distribution, single binary) member by member.

Members are read straight out of the zip or off the disk into memory, never extracted
and never loaded. Zip members are bounded in size and ratio so that a hostile archive
cannot exhaust memory; a member that cannot be read becomes an `unreadable` entry, which
makes the package's verdict `unknown` with that reason.
"""

from __future__ import annotations

import email.parser
import os
import stat
import sys
import threading
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from ftaudit.errors import BinaryFormatError, InputError
from ftaudit.inspect.archive import MAX_MEMBER_BYTES, Archive
from ftaudit.inspect.extension import (
    NO_INIT_EXPORT,
    binary_format,
    inspect_binary,
    judge_handed_over,
    load_image,
)
from ftaudit.inspect.image import Image
from ftaudit.inspect.walk import CpuPool
from ftaudit.model import ArtifactFacts, BinaryFormat, Extension, Library

MAX_TEXT_BYTES = 16 * 1024 * 1024  # METADATA, WHEEL
# .dll: the libraries a Windows wheel bundles (delvewheel puts them in <name>.libs/)
BINARY_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")

Reader = Callable[[], bytes]
# Whether any of the byte strings occurs in a member, and its first bytes, read chunk by
# chunk; None when it cannot be streamed (the member is then read whole).
Finder = Callable[[tuple[bytes, ...]], "tuple[bool, bytes] | None"]


@dataclass(frozen=True, slots=True)
class Member:
    """A binary of an artifact: read whole, or searched without being held whole."""

    path: str
    read: Reader
    size: int = 0  # as its directory or the file system says: 0 when not known
    find: Finder | None = None


# Members larger than this are first searched for the names an extension module must
# export, so that a library of hundreds of megabytes (torch's libtorch_cuda.so) is
# judged without being held in memory whole.
SEARCH_FIRST_BYTES = 32 * 1024 * 1024
_EXPORT_NAMES = (b"PyInit_", b"PyModExport_")
# What reading a member can raise: it is then unreadable, not a crash.
_READ_ERRORS = (OSError, zipfile.BadZipFile, EOFError, InputError)


def is_binary_candidate(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return name.endswith(BINARY_SUFFIXES) or ".so." in name


def library_by_name(path: str) -> str | None:
    """Why a binary cannot be an extension module by its path alone, or None.

    Python imports a module only from a file ending in one of the interpreter's
    extension suffixes (``.so`` and its tagged forms, ``.pyd``), inside a directory that
    is a package or on the path: a versioned ``libx.so.13``, a ``.dylib`` and anything in
    the directories where auditwheel, delocate and delvewheel put bundled libraries
    (``pkg.libs/``, ``pkg/.libs/``, ``pkg/.dylibs/``, never packages: their names hold a
    dot) never are. Such a file is listed without being read, so that a library too large
    to read (CUDA's are over 500 MB) says nothing it cannot about the package. A ``.dll``
    is read: it is checked to be one (see `is_dll`)."""
    parts = path.replace("\\", "/").split("/")
    name = parts[-1].lower()
    if name.endswith(".dll"):
        return None
    where = next((d for d in parts[:-1] if d.endswith(".libs") or d == ".dylibs"), None)
    if where is not None:
        return f"in {where}/, a directory of bundled libraries: never imported as a module"
    if name.endswith(".dylib"):
        return "a .dylib: Python imports modules only from .so files"
    if ".so." in name and not name.endswith(".so"):
        return "a versioned .so name: Python imports modules only from files ending in .so"
    return None


def is_dll(path: str) -> bool:
    """A Windows library: Python imports extension modules only from .pyd files, so a
    .dll is never one, whatever it exports."""
    return path.lower().endswith(".dll")


# CPU time the walks of all of one artifact's binaries may take together: a backstop
# for a wheel of many modules, far above what the largest real wheels need (jaxlib's
# 82 MB wheel about 6 s); each file and each walk has its own, smaller budget too.
ARTIFACT_CPU_SECONDS = 60.0


def _gil_disabled() -> bool:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return is_enabled is not None and not is_enabled()


def _judge_member(member: Member, pool: CpuPool) -> Extension | Library | tuple[str, str] | None:
    """One member: its record, (path, reason) when unreadable, None when not a binary."""
    path = member.path
    why = library_by_name(path)
    if why is not None:
        return Library(path=path, why=f"{why} (not read)")
    try:
        if member.find is not None and member.size > SEARCH_FIRST_BYTES and not is_dll(path):
            searched = member.find(_EXPORT_NAMES)
            if searched is not None:
                named, head = searched
                fmt = binary_format(head)
                if fmt is None:
                    return None
                # An ELF or PE file keeps each exported name whole in its string table
                # (a Mach-O export trie may split one between its edges).
                if not named and fmt in (BinaryFormat.ELF, BinaryFormat.PE):
                    return Library(path=path, why=NO_INIT_EXPORT)
        data = member.read()
    except _READ_ERRORS as exc:
        return (path, f"cannot read: {exc}")
    if binary_format(data[:4]) is None:
        return None  # a linker script, a text file named .so: not code
    try:
        if is_dll(path):
            if load_image(data) is None:
                raise BinaryFormatError("not a Windows DLL")
            return Library(path=path, why="a DLL: Python imports modules only from .pyd files")
        return inspect_binary(path, data, pool)
    except BinaryFormatError as exc:
        return (path, str(exc))


def inspect_members(
    artifact: str,
    members: Iterable[Member],
    *,
    tags: tuple[str, ...] = (),
    classifiers: tuple[str, ...] = (),
    import_names: tuple[str, ...] = (),
) -> ArtifactFacts:
    items = list(members)
    cpu = CpuPool(
        ARTIFACT_CPU_SECONDS,
        f"the budget of {ARTIFACT_CPU_SECONDS:g} s of CPU time for {artifact} ended",
    )
    if _gil_disabled() and len(items) > 1:
        # Binaries are independent: on a free-threaded interpreter read them in parallel.
        # (Under the GIL threads would only add overhead.)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            found = list(pool.map(lambda member: _judge_member(member, cpu), items))
    else:
        found = [_judge_member(member, cpu) for member in items]
    extensions = [f for f in found if isinstance(f, Extension)]
    libraries = [f for f in found if isinstance(f, Library)]
    if any(e.handed_to for e in extensions):
        extensions = _follow_hand_overs(extensions, items)
    unreadable = [f for f in found if isinstance(f, tuple)]
    return ArtifactFacts(
        artifact=artifact,
        tags=tags,
        extensions=tuple(sorted(extensions, key=lambda e: e.path)),
        libraries=tuple(sorted(libraries, key=lambda e: e.path)),
        unreadable=tuple(unreadable),
        classifiers=classifiers,
        import_names=import_names,
    )


def _follow_hand_overs(extensions: list[Extension], items: list[Member]) -> list[Extension]:
    """Modules whose init jumps into a library beside them: judge the code there.

    Only the libraries whose bytes name a wanted symbol are read whole (the others are
    searched chunk by chunk when they can be), and only their exports decide where a
    symbol lives.
    """
    wanted = {s for e in extensions for s in e.handed_to}
    names = tuple(s.encode() + b"\0" for s in sorted(wanted))
    images: dict[str, tuple[Image, str]] = {}  # symbol -> (image exporting it, its path)
    for member in items:
        path = member.path
        try:
            searched = member.find(names) if member.find is not None else None
            if searched is not None and not searched[0]:
                continue
            data = member.read()
        except _READ_ERRORS:
            continue
        if not any(name in data for name in names):
            continue
        try:
            image = load_image(data)
        except BinaryFormatError:
            continue
        if image is None:
            continue
        for symbol in wanted & set(image.exports):
            images.setdefault(symbol, (image, path))
    out = []
    for ext in extensions:
        found = [images[s] + (s,) for s in ext.handed_to if s in images]
        if len(found) == 1:
            image, path, symbol = found[0]
            try:
                ext = judge_handed_over(ext, image, symbol, path)
            except BinaryFormatError as exc:
                ext = replace(ext, detail=f"{ext.detail} ({path}: {exc})")
        out.append(ext)
    return out


def top_level_names(paths: Iterable[str]) -> tuple[str, ...]:
    """The top-level modules and packages a distribution's files make importable
    (what ``import X`` names), from a wheel's member list or an installed RECORD."""
    out: set[str] = set()
    for path in paths:
        parts = path.replace("\\", "/").split("/")
        head = parts[0]
        if head in ("", ".", "..") or head.endswith((".dist-info", ".data", ".egg-info")):
            continue
        if len(parts) > 1:
            name = head
        elif head.endswith((".py", ".pyi")) or (is_binary_candidate(head) and not is_dll(head)):
            name = head.split(".", 1)[0]
        else:
            continue
        if name.isidentifier() and name != "__pycache__":
            out.add(name)
    return tuple(sorted(out))


def wheel_tags(filename: str) -> tuple[str, ...]:
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return ()
    return tuple(sorted(str(t) for t in tags))


def classifiers_from_metadata(text: str) -> tuple[str, ...]:
    msg = email.parser.HeaderParser().parsestr(text)
    return tuple(msg.get_all("Classifier") or ())


def inspect_wheel(
    source: Path | BinaryIO, display_name: str | None = None, size: int | None = None
) -> ArtifactFacts:
    """Every binary of a wheel: a path, or an open seekable file of `size` bytes (a
    remote wheel read by ranges: only the members judged are read)."""
    name = display_name or (source.name if isinstance(source, Path) else "wheel")
    with Archive(source, name, size) as archive:
        infos = archive.infos
        tags = wheel_tags(name)
        classifiers: tuple[str, ...] = ()
        wheel_file_tags: list[str] = []
        for info in infos:
            parts = info.filename.split("/")
            if len(parts) == 2 and parts[0].endswith(".dist-info"):
                if parts[1] == "METADATA":
                    classifiers = classifiers_from_metadata(
                        _text(archive, info, name).decode("utf-8", "replace")
                    )
                elif parts[1] == "WHEEL" and not tags:
                    text = _text(archive, info, name).decode("utf-8", "replace")
                    wheel_file_tags = [
                        line.split(":", 1)[1].strip()
                        for line in text.splitlines()
                        if line.startswith("Tag:")
                    ]
        lock = threading.Lock()
        members = [
            Member(
                info.filename,
                _reader(archive, info, lock),
                info.file_size,
                _finder(archive, info, lock),
            )
            for info in infos
            if not info.filename.endswith("/") and is_binary_candidate(info.filename)
        ]
        facts = inspect_members(
            name,
            members,
            tags=tags or tuple(sorted(wheel_file_tags)),
            classifiers=classifiers,
            import_names=top_level_names(i.filename for i in infos),
        )
        return replace(facts, placeholder=_placeholder(archive))


def _placeholder(archive: Archive) -> bool:
    """Whether the wheel installs no code: nothing beside its dist-info, or only empty
    ``__init__.py`` files (comments and blank lines at most). The directory decides
    first; a member is read only when every file is a small ``__init__.py`` (a wheel
    read by ranges fetches nothing more for this)."""
    inits = []
    for info in archive.infos:
        head = info.filename.split("/", 1)[0]
        if info.filename.endswith("/") or head.endswith(".dist-info"):
            continue
        if info.filename.rsplit("/", 1)[-1] != "__init__.py" or info.file_size > 4096:
            return False
        inits.append(info)
    for info in inits:
        try:
            text = archive.read(info, 4096)
        except InputError:
            return False
        if any(line.strip() and not line.lstrip().startswith(b"#") for line in text.splitlines()):
            return False
    return True


def wheel_metadata(source: Path | BinaryIO, display_name: str, size: int | None = None) -> bytes:
    """The wheel's ``*.dist-info/METADATA``, read out of the zip (nothing extracted)."""
    with Archive(source, display_name, size) as archive:
        for info in archive.infos:
            parts = info.filename.split("/")
            if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                return _text(archive, info, display_name)
    raise InputError(f"{display_name}: no .dist-info/METADATA in the wheel")


def _text(archive: Archive, info: zipfile.ZipInfo, name: str) -> bytes:
    """A metadata file of the wheel: the wheel is unreadable without it."""
    try:
        return archive.read(info, MAX_TEXT_BYTES)
    except InputError as exc:
        raise InputError(f"{name}: {info.filename}: {exc}") from exc


def _reader(archive: Archive, info: zipfile.ZipInfo, lock: threading.Lock) -> Reader:
    def read() -> bytes:
        with lock:  # one open file, one file position: members are read one at a time
            return archive.read(info)

    return read


def _finder(archive: Archive, info: zipfile.ZipInfo, lock: threading.Lock) -> Finder:
    def find(needles: tuple[bytes, ...]) -> tuple[bool, bytes] | None:
        with lock:
            return archive.find(info, needles)

    return find


def inspect_file(path: Path) -> ArtifactFacts:
    """One binary on its own (an .so, .pyd or .dylib)."""
    data = _read_file(path, str(path))
    if binary_format(data[:4]) is None:
        raise InputError(f"{path}: not an ELF, Mach-O or PE binary, nor a wheel")
    return inspect_members(path.name, [Member(path.name, lambda: data)])


def looks_like_wheel(path: Path) -> bool:
    """Whether `path` is a zip (by its first bytes, without reading the rest). Only a
    regular file is opened: opening a FIFO would wait for a writer."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False  # inspect_file says what it is
        with open(path, "rb") as fh:
            return fh.read(4)[:2] == b"PK"
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc


def _read_file(path: Path, name: str) -> bytes:
    """A file's bytes, its size checked before anything is read: a regular file no
    larger than a member of a wheel may be (not a device, a FIFO, or 3 GB)."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; it
        # changes nothing for a regular file.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError(f"{name}: not a regular file")
            if info.st_size > MAX_MEMBER_BYTES:
                raise InputError(
                    f"{name}: {info.st_size} bytes is larger than ftaudit reads "
                    f"({MAX_MEMBER_BYTES} at most)"
                )
            data = fh.read(MAX_MEMBER_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{name}: {exc.strerror or exc}") from exc
    if len(data) > MAX_MEMBER_BYTES:
        raise InputError(f"{name}: grew past {MAX_MEMBER_BYTES} bytes while being read")
    return data


def inspect_installed(
    artifact: str,
    root: Path,
    files: Iterable[str],
    classifiers: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> ArtifactFacts:
    """An installed distribution: the binaries its RECORD lists, relative to `root`."""
    files = list(files)
    members = [_file_member(root, rel) for rel in files if is_binary_candidate(rel)]
    return inspect_members(
        artifact, members, tags=tags, classifiers=classifiers, import_names=top_level_names(files)
    )


def _file_member(root: Path, rel: str) -> Member:
    path = root / rel

    def read() -> bytes:
        return _read_file(path, path.name)

    def find(needles: tuple[bytes, ...]) -> tuple[bool, bytes] | None:
        return _search_file(path, path.name, needles)

    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # read() says why
    return Member(rel, read, size, find)


def _search_file(path: Path, name: str, needles: tuple[bytes, ...]) -> tuple[bool, bytes] | None:
    """`Archive.find` for a file on disk (a regular one, no larger than `_read_file` reads)."""
    keep = max(len(n) for n in needles) - 1
    found, head, tail, total = False, b"", b"", 0
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MEMBER_BYTES:
                return None  # read() says why
            while chunk := fh.read(_SEARCH_CHUNK):
                total += len(chunk)
                if total > MAX_MEMBER_BYTES:
                    return None
                head = head or chunk[:4]
                window = tail + chunk
                found = found or any(n in window for n in needles)
                tail = window[-keep:] if keep else b""
    except OSError as exc:
        raise InputError(f"{name}: {exc.strerror or exc}") from exc
    return found, head


_SEARCH_CHUNK = 4 * 1024 * 1024
