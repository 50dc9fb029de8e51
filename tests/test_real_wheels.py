"""Real wheels from the package index: generators we did not write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftaudit.cli import main
from ftaudit.inspect.artifact import inspect_wheel
from ftaudit.model import Gil, Init
from tests.helpers import toolchain

DATA = Path(__file__).parent / "data" / "wheels"
MARKUPSAFE = next(DATA.glob("markupsafe-3.0.3-cp313-cp313t-manylinux*.whl"))
BITARRAY = next(DATA.glob("bitarray-3.8.0-cp314-cp314t-*.whl"))
TREE_SITTER = next(DATA.glob("tree_sitter_json-0.24.8-cp39-abi3-*.whl"))
JITER = next(DATA.glob("jiter-0.15.0-cp313-cp313t-*.whl"))


@pytest.mark.parametrize(
    "platform",
    [
        "manylinux2014_x86_64",
        "musllinux_1_2_x86_64",
        "musllinux_1_2_armv7l",
        "manylinux2014_ppc64le",
        "manylinux2014_s390x",
    ],
)
def test_one_cython_module_on_every_linux_architecture(platform: str) -> None:
    """propcache 0.5.2's Cython module (Apache-2.0) as published for five Linux targets:
    x86-64 glibc and musl through the code walker; 32-bit ARM, little-endian ppc64 and
    big-endian s390x, which have no code reader, from the definition in their data. On
    x86-64 the accuracy benchmark checks this verdict against the interpreter."""
    wheel = next(DATA.glob(f"propcache-0.5.2-cp313-cp313t-{platform}*.whl"))
    (ext,) = inspect_wheel(wheel).extensions
    assert (ext.module, ext.gil, ext.init) == (
        "propcache._helpers_c",
        Gil.NOT_USED,
        Init.MULTI_PHASE,
    ), ext.detail
    assert ext.free_threaded_build is True
    assert ("read from the data" in ext.detail) is (platform.split("_")[-1] in _NO_READER)


_NO_READER = ("armv7l", "ppc64le", "s390x")


def test_win32_is_read_from_the_data() -> None:
    wheel = next(DATA.glob("markupsafe-3.0.3-cp313-cp313t-win32.whl"))
    (ext,) = inspect_wheel(wheel).extensions
    assert (ext.gil, ext.format.value) == (Gil.NOT_USED, "pe"), ext.detail
    assert "read from the data" in ext.detail


def test_markupsafe_inspect_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(MARKUPSAFE), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "ftaudit-inspect/1"
    assert doc["artifact"] == MARKUPSAFE.name
    assert "cp313-cp313t-manylinux_2_17_x86_64" in doc["tags"]
    assert [
        (e["module"], e["gil"], e["init"], e["format"], e["free_threaded_build"])
        for e in doc["extensions"]
    ] == [("markupsafe._speedups", "not_used", "multi-phase", "elf", True)]
    assert doc["libraries"] == []


def test_bitarray_single_phase_modules() -> None:
    facts = inspect_wheel(BITARRAY)
    assert [(e.module, e.gil, e.init) for e in facts.extensions] == [
        ("bitarray._bitarray", Gil.NOT_USED, Init.SINGLE_PHASE),
        ("bitarray._util", Gil.NOT_USED, Init.SINGLE_PHASE),
    ]
    assert all("PyUnstable_Module_SetGIL" in e.detail for e in facts.extensions)


def test_abi3_wheel_declares_nothing_and_is_no_ft_build() -> None:
    facts = inspect_wheel(TREE_SITTER)
    (ext,) = facts.extensions
    assert ext.gil is Gil.UNDECLARED
    assert ext.free_threaded_build is False


@pytest.mark.ft
def test_markupsafe_agrees_with_the_interpreter(ft_python: str, tmp_path: Path) -> None:
    venv = toolchain.make_venv(ft_python, tmp_path / "venv")
    toolchain.pip_install(venv, MARKUPSAFE)
    assert toolchain.gil_enabled_after_import(str(venv), "markupsafe._speedups") is False


@pytest.mark.online
def test_numpy_2_4_6_cp313t_all_modules_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Opt-in (FTAUDIT_ONLINE=1): 19 extension modules, all declare not used."""
    import subprocess

    subprocess.run(
        [
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.13",
            "--abi",
            "cp313t",
            "--platform",
            "manylinux_2_28_x86_64",
            "-d",
            str(tmp_path),
            "numpy==2.4.6",
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("numpy-2.4.6-*.whl")
    assert main(["inspect", str(wheel), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["extensions"]) == 19
    assert {e["gil"] for e in doc["extensions"]} == {"not_used"}


@pytest.mark.parametrize("platform", ["win_amd64", "win_arm64", "macosx_11_0_arm64"])
def test_markupsafe_on_windows_and_macos_reads_like_linux(platform: str) -> None:
    wheel = DATA / f"markupsafe-3.0.3-cp313-cp313t-{platform}.whl"
    facts = inspect_wheel(wheel)
    assert [(e.module, e.gil, e.init, e.free_threaded_build) for e in facts.extensions] == [
        ("markupsafe._speedups", Gil.NOT_USED, Init.MULTI_PHASE, True)
    ]
    assert facts.extensions[0].format.value == ("pe" if platform.startswith("win") else "macho")


@pytest.mark.ft
def test_pyo3_module_agrees_with_the_interpreter(ft_python: str, tmp_path: Path) -> None:
    """PyO3 builds its module from Rust statics through an out-of-line init_multi_phase."""
    (ext,) = inspect_wheel(JITER).extensions
    assert (ext.module, ext.gil, ext.init) == ("jiter.jiter", Gil.NOT_USED, Init.MULTI_PHASE)
    venv = toolchain.make_venv(ft_python, tmp_path / "venv")
    toolchain.pip_install(venv, JITER)
    assert toolchain.gil_enabled_after_import(str(venv), "jiter.jiter") is False


@pytest.mark.parametrize(
    ("wheel", "expected"),
    [
        # pybind11 under MSVC: the slot array is a function-local static behind MSVC's
        # thread-safe statics, whose guard is compared with an epoch in thread-local
        # storage (gs:[0x58]); its Linux wheel keeps the GIL off in the interpreter.
        ("qdldl-0.1.9.post1-cp313-cp313t-win_amd64.whl", {"qdldl": Gil.NOT_USED}),
        # PyO3 under MSVC: the once-cell closure, and `mov r8b, 1` for gil_used = true.
        ("bcrypt-5.0.0-cp313-cp313t-win_amd64.whl", {"bcrypt._bcrypt": Gil.NOT_USED}),
        ("regress-2025.10.1-cp313-cp313t-win_amd64.whl", {"regress.regress": Gil.USED}),
        # PyO3 on macOS arm64: casal, thread-local variables through _tlv_bootstrap.
        ("rloop-0.2.0-cp313-cp313t-macosx_11_0_arm64.whl", {"rloop._rloop": Gil.NOT_USED}),
    ],
)
def test_windows_and_macos_generators_read_like_their_linux_wheels(
    wheel: str, expected: dict[str, Gil]
) -> None:
    """What the accuracy benchmark found differing across platforms: each of these reads
    as its Linux wheel does, whose verdict the 3.13t interpreter confirms."""
    facts = inspect_wheel(DATA / wheel)
    assert {e.module: e.gil for e in facts.extensions} == expected, [
        e.detail for e in facts.extensions
    ]
