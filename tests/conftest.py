"""Shared fixtures: real interpreters, real compiled fixture wheels, a real local index."""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import toolchain
from tests.helpers.wheels import build_sdist, build_wheel

# Variant numbers of fixtures/ext/gilmod.c
NOT_USED, USED, NO_GIL_SLOT, RUNTIME, S_NOT_USED, S_USED, S_UNDECLARED = 1, 2, 3, 4, 5, 6, 7
PLAIN_LIBRARY = 9

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> None:
    """Tests talk to 127.0.0.1 only, unless FTAUDIT_ONLINE=1 opts in."""
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        if host not in ("127.0.0.1", "::1", "localhost") and not os.environ.get("FTAUDIT_ONLINE"):
            raise OSError(f"test tried to reach {host}: tests stay on 127.0.0.1")
    _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh cache per test, and no pip configuration of the machine's."""
    monkeypatch.setenv("FTAUDIT_CACHE_DIR", str(tmp_path / "ftaudit-cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _schema_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every scan report rendered as JSON in a test is validated against the shipped
    JSON Schema on the way out."""
    from ftaudit.report import json as json_format
    from tests.helpers.schema import validate_report

    original = json_format.report_document
    checked: list[int] = []

    def checked_document(report: object) -> dict[str, object]:
        doc = original(report)  # type: ignore[arg-type]
        validate_report(doc)
        checked.append(1)
        return doc

    monkeypatch.setattr(json_format, "report_document", checked_document)
    yield checked


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("FTAUDIT_ONLINE"):
        return
    skip = pytest.mark.skip(reason="reaches the real package index: set FTAUDIT_ONLINE=1")
    for item in items:
        if "online" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ft_python() -> str:
    return toolchain.ft_python()


@pytest.fixture(scope="session")
def gil_python() -> str:
    return toolchain.gil_python()


ARCH = platform.machine()
FT_TAG = f"cp313-cp313t-linux_{ARCH}"
GIL_TAG = f"cp313-cp313-linux_{ARCH}"


@dataclass(frozen=True)
class FixtureWheels:
    """Wheels of the fixture packages, in a directory the local index serves."""

    directory: Path

    def path(self, name: str, version: str, tag: str) -> Path:
        return self.directory / f"{name.replace('-', '_')}-{version}-{tag}.whl"


def _ext_wheel(
    out: Path,
    work: Path,
    python: str,
    tag: str,
    name: str,
    version: str,
    variant: int,
    *,
    requires: tuple[str, ...] = (),
    module: str = "_core",
    flags: tuple[str, ...] = ("-O2",),
) -> Path:
    pkg = name.replace("-", "_")
    build_dir = work / f"{name}-{version}-{tag}"
    so = toolchain.compile_module(python, variant, module, build_dir, flags=flags)
    files = {
        f"{pkg}/__init__.py": b"",
        f"{pkg}/{so.name}": so.read_bytes(),
    }
    return build_wheel(out, name, version, tag, files, requires=requires)


@pytest.fixture(scope="session")
def fixture_wheels(
    tmp_path_factory: pytest.TempPathFactory, ft_python: str, gil_python: str
) -> FixtureWheels:
    """The fixture packages, each built for free-threaded 3.13t and/or GIL 3.13.

    ftfix-ready 1.0     not_used everywhere                         -> ready
    ftfix-gil 1.0/2.0   1.0 declares USED, 2.0 NOT_USED             -> upgrade to 2.0
    ftfix-single 1.0    single-phase, no declaration                -> gil
    ftfix-runtime 1.0   slot array filled by PyInit at run time     -> ready
    ftfix-sdist 1.0     GIL wheel and an sdist, nothing for 3.13t   -> build
    ftfix-old 1.0/2.0   1.0 ready for 3.13t, 2.0 GIL-only           -> downgrade to 1.0
    ftfix-none 1.0      GIL wheel only                              -> blocked
    ftfix-pure 1.0      py3-none-any                                -> ready (pure)
    ftfix-uses-single   py3-none-any, requires ftfix-single         -> ready (pure)
    ftfix-crash 1.0     declares not_used, aborts when imported     -> ready (static)
    ftfix-hang 1.0      declares not_used, never finishes importing -> ready (static)
    ftfix-lib 1.0       a plain shared library, no extension module -> ready (inspected)
    """
    out = tmp_path_factory.mktemp("index")
    work = tmp_path_factory.mktemp("build")
    both = ((ft_python, FT_TAG), (gil_python, GIL_TAG))
    for py, tag in both:
        _ext_wheel(out, work, py, tag, "ftfix-ready", "1.0", NOT_USED, requires=("ftfix-pure",))
        _ext_wheel(out, work, py, tag, "ftfix-gil", "1.0", USED)
        _ext_wheel(out, work, py, tag, "ftfix-gil", "2.0", NOT_USED)
        _ext_wheel(out, work, py, tag, "ftfix-single", "1.0", S_UNDECLARED)
        _ext_wheel(out, work, py, tag, "ftfix-runtime", "1.0", RUNTIME)
        _ext_wheel(out, work, py, tag, "ftfix-old", "1.0", NOT_USED)
        _ext_wheel(out, work, py, tag, "ftfix-lib", "1.0", PLAIN_LIBRARY, module="libthing")
    for name, flag in (("ftfix-crash", "-DON_IMPORT_CRASH"), ("ftfix-hang", "-DON_IMPORT_HANG")):
        _ext_wheel(out, work, ft_python, FT_TAG, name, "1.0", NOT_USED, flags=("-O2", flag))
    _ext_wheel(out, work, gil_python, GIL_TAG, "ftfix-sdist", "1.0", NOT_USED)
    build_sdist(out, "ftfix-sdist", "1.0")
    _ext_wheel(out, work, gil_python, GIL_TAG, "ftfix-old", "2.0", NOT_USED)
    _ext_wheel(out, work, gil_python, GIL_TAG, "ftfix-none", "1.0", NOT_USED)
    build_wheel(out, "ftfix-pure", "1.0", "py3-none-any", {"ftfix_pure/__init__.py": b"x = 1\n"})
    build_wheel(
        out,
        "ftfix-uses-single",
        "1.0",
        "py3-none-any",
        {"ftfix_uses_single/__init__.py": b"import ftfix_single\n"},
        requires=("ftfix-single",),
    )
    _foreign_wheels(out, work)
    return FixtureWheels(out)


MAC_TAG = "cp313-cp313t-macosx_11_0_arm64"
WIN_TAG = "cp313-cp313t-win_amd64"


def _foreign_wheels(out: Path, work: Path) -> None:
    """ftfix-ready 1.0 (not used) and ftfix-gil 1.0 (used) for macOS arm64 and Windows x64,
    from the header-free fixture, so a Linux scan can judge other platforms' wheels."""
    from fixtures.build import build_portable_module, missing_portable_tools

    if missing_portable_tools():
        return  # test_scan's cross-platform test reports what is missing
    for name, variant in (("ftfix-ready", 1), ("ftfix-gil", 2)):
        pkg = name.replace("-", "_")
        for kind, tag, filename in (
            ("macho", MAC_TAG, "_core.cpython-313t-darwin.so"),
            ("pe", WIN_TAG, "_core.cp313t-win_amd64.pyd"),
        ):
            binary = build_portable_module(work / f"{name}-{kind}", kind, variant, "_core")
            files = {f"{pkg}/__init__.py": b"", f"{pkg}/{filename}": binary.read_bytes()}
            build_wheel(out, name, "1.0", tag, files)


@pytest.fixture
def index_server(fixture_wheels: FixtureWheels) -> Iterator[object]:
    from tests.helpers.index_server import IndexServer

    with IndexServer(fixture_wheels.directory) as server:
        yield server
