"""Whether an sdist builds anything but Python: its file list and build configuration, read
out of the archive as a stream (nothing extracted, nothing built, nothing executed).

An sdist is pure Python when none of its files is native source (C, C++, Cython, Rust,
Fortran, CUDA, Objective-C++), a prebuilt binary or a native build system's file, and
its build configuration declares no compiled extension: a build backend known to build
only Python (or setuptools without ``ext_modules`` and friends), no build requirement
that only compiling needs (Cython, pybind11, meson-python, ...), no build hook that may
compile. Anything else, or anything not read to the end within the budgets, is not
called pure: a wrong `ready` is the one answer this must never give.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import sys
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ftaudit.errors import InputError
from ftaudit.inspect.archive import Archive, MemberError
from ftaudit.model import SdistFacts

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

MAX_MEMBERS = 50_000
MAX_UNPACKED_BYTES = 512 * 1024 * 1024  # what the stream may inflate to, in all
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # one setup.py, pyproject.toml, setup.cfg or hook

_SOURCES = {
    ".c": "C",
    ".h": "C",
    ".cc": "C++",
    ".cpp": "C++",
    ".cxx": "C++",
    ".c++": "C++",
    ".hh": "C++",
    ".hpp": "C++",
    ".hxx": "C++",
    ".pyx": "Cython",
    ".pxd": "Cython",
    ".pxi": "Cython",
    ".rs": "Rust",
    ".f": "Fortran",
    ".for": "Fortran",
    ".f77": "Fortran",
    ".f90": "Fortran",
    ".f95": "Fortran",
    ".f03": "Fortran",
    ".f08": "Fortran",
    ".cu": "CUDA",
    ".mm": "Objective-C++",
    ".so": "compiled binary",
    ".pyd": "compiled binary",
    ".dll": "compiled binary",
    ".dylib": "compiled binary",
    ".a": "compiled binary",
    ".lib": "compiled binary",
    ".o": "compiled binary",
    ".obj": "compiled binary",
}
_BUILD_FILES = {
    "cmakelists.txt": "CMake",
    "meson.build": "Meson",
    "cargo.toml": "Cargo",
    "build.rs": "Cargo",
    "sconstruct": "SCons",
    "binding.gyp": "node-gyp",
}
# Backends that build only what the project's files and hooks say (checked beside).
_PURE_BACKENDS = {
    "setuptools.build_meta",
    "setuptools.build_meta:__legacy__",
    "flit_core.buildapi",
    "flit.buildapi",
    "hatchling.build",
    "poetry.core.masonry.api",
    "poetry.masonry.api",
    "pdm.backend",
    "pdm.pep517.api",
    "uv_build",
    "whey",
    "pbr.build",
}
# Build requirements only a compiled extension needs.
_NATIVE_REQUIRES = {
    canonicalize_name(n)
    for n in (
        "cython",
        "meson",
        "meson-python",
        "scikit-build",
        "scikit-build-core",
        "maturin",
        "setuptools-rust",
        "cmake",
        "ninja",
        "pybind11",
        "nanobind",
        "cffi",
        "numpy",
        "oldest-supported-numpy",
        "pythran",
        "mypy",
        "hatch-cython",
        "hatch-mypyc",
        "py-build-cmake",
        "enscons",
        "scons",
        "cppy",
        "swig",
        "sip",
        "setuptools-golang",
    )
}
_PURE_HATCH_HOOKS = {"vcs", "version", "jupyter-builder"}
# Words in setup.py (or another build script at the root) that mean something is compiled.
_NATIVE_WORDS = re.compile(
    rb"\b(ext_modules|Extension|cythonize|cffi_modules|mypycify|build_ext|rust_extensions|"
    rb"RustExtension|Pybind11Extension|CMakeExtension|ext_package|new_compiler|ccompiler|"
    rb"cmake|cargo|maturin|meson|gcc|clang)\b"
)
_CONFIG_NAMES = {"pyproject.toml", "setup.cfg"}
_TAR_ERRORS = (
    tarfile.TarError,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    ValueError,
    UnicodeError,
)


def inspect_sdist(path: Path, name: str) -> SdistFacts:
    """What the sdist at `path` holds; InputError when it is no archive at all."""
    if name.lower().endswith(".zip"):
        return _Reading(name).zip(path)
    return _Reading(name).tar(path)


class _Reading:
    def __init__(self, name: str) -> None:
        self.name = name
        self.files = 0
        self.compiles: list[str] = []  # what says it builds more than Python
        self.configs: dict[str, bytes] = {}  # root-relative path -> bytes
        self.scripts: dict[str, bytes] = {}  # build scripts at the root
        self.stopped: str | None = None

    def tar(self, path: Path) -> SdistFacts:
        unpacked = 0
        try:
            with path.open("rb") as raw, _decompressed(raw) as inner:
                bounded = _Bounded(inner)
                with tarfile.open(fileobj=bounded, mode="r:") as tf:
                    for member in _members(tf):
                        if not member.isfile():
                            continue
                        self.files += 1
                        unpacked += member.size
                        if self.files > MAX_MEMBERS:
                            self.stopped = f"more than {MAX_MEMBERS} files: not all read"
                            break
                        if unpacked > MAX_UNPACKED_BYTES:
                            raise _Budget(_unpacked())
                        rel = _relative(member.name)
                        if not self._wants(rel, member.size):
                            continue
                        fh = tf.extractfile(member)
                        data = fh.read(MAX_CONFIG_BYTES + 1) if fh is not None else b""
                        self._keep(rel, data)
        except _Budget as exc:
            self.stopped = str(exc)
        except _TAR_ERRORS as exc:
            if self.files == 0:
                raise InputError(f"{self.name}: not a readable sdist ({exc})") from None
            self.stopped = f"the archive breaks off after {self.files} files ({exc})"
        return self.facts()

    def zip(self, path: Path) -> SdistFacts:
        with Archive(path, self.name) as archive:
            for info in archive.infos:
                if info.is_dir():
                    continue
                self.files += 1
                if self.files > MAX_MEMBERS:
                    self.stopped = f"more than {MAX_MEMBERS} files: not all read"
                    break
                rel = _relative(info.filename)
                if not self._wants(rel, info.file_size):
                    continue
                try:
                    data = archive.read(info, MAX_CONFIG_BYTES)
                except MemberError as exc:
                    self.stopped = f"{rel}: {exc}"
                    break
                self._keep(rel, data)
        return self.facts()

    def _wants(self, rel: str, size: int) -> bool:
        """Whether the file is to be read (a build configuration); notes a native one."""
        base = rel.rsplit("/", 1)[-1].lower()
        suffix = "." + base.rsplit(".", 1)[-1] if "." in base else ""
        kind = _SOURCES.get(suffix) or (
            "compiled binary" if ".so." in base else _BUILD_FILES.get(base)
        )
        if kind is not None:
            self.compiles.append(f"{rel} ({kind})")
        at_root = "/" not in rel
        wanted = at_root and (base in _CONFIG_NAMES or base.endswith(".py"))
        if wanted and size > MAX_CONFIG_BYTES:
            self.stopped = f"{rel} of {size} bytes is larger than ftaudit reads"
            return False
        return wanted

    def _keep(self, rel: str, data: bytes) -> None:
        if len(data) > MAX_CONFIG_BYTES:
            self.stopped = f"{rel} is larger than ftaudit reads"
        elif rel.endswith(".py"):
            self.scripts[rel] = data
        else:
            self.configs[rel] = data

    def facts(self) -> SdistFacts:
        backend = None
        if self.stopped is None:
            backend = self._configuration()
        return SdistFacts(
            artifact=self.name,
            files=self.files,
            backend=backend,
            compiles=tuple(self.compiles),
            unreadable=self.stopped,
        )

    def _configuration(self) -> str | None:
        """The build backend, noting in `compiles` what in the configuration compiles."""
        project: dict[str, Any] = {}
        if "pyproject.toml" in self.configs:
            try:
                project = tomllib.loads(self.configs["pyproject.toml"].decode("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                self.stopped = f"pyproject.toml does not parse ({exc})"
                return None
        system = _table(project.get("build-system"))
        backend = system.get("build-backend")
        if not isinstance(backend, str):
            backend = "setuptools.build_meta:__legacy__" if "setup.py" in self.scripts else None
        if backend is None:
            self.compiles.append("no build backend and no setup.py: nothing says how it builds")
            return None
        if backend not in _PURE_BACKENDS:
            self.compiles.append(f"pyproject.toml: build backend {backend}")
        for text in _strings(system.get("requires")):
            try:
                req = canonicalize_name(Requirement(text).name)
            except InvalidRequirement:
                self.compiles.append(f"pyproject.toml: unreadable build requirement {text!r}")
                continue
            if req in _NATIVE_REQUIRES:
                self.compiles.append(f"pyproject.toml: build requires {text}")
        tool = _table(project.get("tool"))
        self._tools(tool)
        for rel, data in sorted(self.scripts.items()):
            found = _NATIVE_WORDS.search(data)
            if found is not None:
                self.compiles.append(f"{rel}: {found.group(1).decode()}")
        cfg = self.configs.get("setup.cfg", b"")
        if re.search(rb"^\s*\[build_ext\]|\bext_modules\b", cfg, re.MULTILINE):
            self.compiles.append("setup.cfg: build_ext")
        return backend

    def _tools(self, tool: dict[str, Any]) -> None:
        for name in ("maturin", "scikit-build", "meson-python", "cibuildwheel", "setuptools-rust"):
            if name in tool:
                self.compiles.append(f"pyproject.toml: [tool.{name}]")
        if "ext-modules" in _table(tool.get("setuptools")):
            self.compiles.append("pyproject.toml: tool.setuptools.ext-modules")
        poetry = _table(tool.get("poetry"))
        if "build" in poetry:
            self.compiles.append("pyproject.toml: tool.poetry.build (a build script)")
        if _table(_table(tool.get("pdm")).get("build")).get("run-setuptools"):
            self.compiles.append("pyproject.toml: tool.pdm.build.run-setuptools")
        build = _table(_table(tool.get("hatch")).get("build"))
        hooks = dict(_table(build.get("hooks")))
        for target in _table(build.get("targets")).values():
            hooks.update(_table(_table(target).get("hooks")))
        for hook in hooks:
            if hook == "custom":
                continue  # a hatch_build.py at the root: read with the other scripts
            if hook not in _PURE_HATCH_HOOKS:
                self.compiles.append(f"pyproject.toml: hatch build hook {hook}")


_Stream = IO[bytes] | gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile


def _unpacked() -> str:
    return f"its files unpack to more than {MAX_UNPACKED_BYTES} bytes: not all read"


class _Budget(Exception):
    """The stream inflated past MAX_UNPACKED_BYTES, or a header asked for a read larger
    than any real one (a PAX header of gigabytes): not read any further."""


class _Bounded(io.RawIOBase):
    """A decompressed stream that ends the reading, rather than memory, when the tar
    reader asks for more than the budgets allow (it reads a PAX or GNU long-name header
    whole, whatever size the header claims)."""

    def __init__(self, inner: _Stream) -> None:
        self._inner = inner
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > MAX_CONFIG_BYTES + 1:
            raise _Budget(f"a header of the archive asks for a read of {size} bytes: not read")
        if self._pos + size > MAX_UNPACKED_BYTES:
            raise _Budget(_unpacked())
        data = self._inner.read(size)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._pos + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target > MAX_UNPACKED_BYTES:
            raise _Budget(_unpacked())
        self._pos = self._inner.seek(target)
        return self._pos


def _decompressed(raw: IO[bytes]) -> _Stream:
    """The tar stream inside an sdist's gzip, bzip2 or xz (or a plain tar), by magic."""
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


def _members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while True:
        member = tf.next()
        if member is None:
            return
        yield member


def _relative(name: str) -> str:
    """The path below the sdist's top directory (``name-1.0/``)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts[1:]) if len(parts) > 1 else "/".join(parts)


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
