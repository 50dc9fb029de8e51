"""Verdicts on cases met in real projects: what the version in use is, before what else
could be installed."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

from ftaudit.advice import package_advice
from ftaudit.assess import Candidate, Judgement, assess, judge_artifact
from ftaudit.inspect.archive import MAX_MEMBER_BYTES
from ftaudit.inspect.artifact import inspect_wheel, library_by_name
from ftaudit.inspect.extension import inspect_binary
from ftaudit.model import (
    ArtifactFacts,
    BinaryFormat,
    Dependency,
    Evidence,
    Extension,
    Gil,
    Init,
    PackageReport,
    Status,
    Target,
    Verdict,
)
from tests.helpers import toolchain
from tests.helpers.wheels import build_wheel

T313 = Target(major=3, minor=13)
PLATFORM = "linux-x86_64"
READY = Judgement(
    status=Status.READY,
    evidence=Evidence.INSPECTED,
    reason="numpy._core._multiarray_umath declares Py_MOD_GIL_NOT_USED",
)
UNPROVEN = Judgement(
    status=Status.UNKNOWN,
    evidence=Evidence.INSPECTED,
    reason="numpy._core._multiarray_umath: the walk ran out of budget",
)


def _advice(verdict: Verdict, name: str, version: str) -> list[str]:
    dep = Dependency(name=name, display_name=name, version=version, locked=True)
    pkg = PackageReport(dependency=dep, verdicts=(verdict,))
    return [a.text for a in package_advice(pkg, {}, {})]


def test_an_unproven_current_version_stays_unknown_with_the_ready_release_as_an_option() -> None:
    """numpy 2.2.2 keeps the GIL off on 3.13t; a reader that cannot prove it must not
    turn that into `upgrade`."""
    current = Candidate(version="2.2.2", artifact="numpy-2.2.2.whl", judgement=UNPROVEN)
    newer = Candidate(version="2.4.1", artifact="numpy-2.4.1.whl", judgement=READY)
    v = assess(T313, PLATFORM, current, newer=newer)
    assert v.status is Status.UNKNOWN
    assert v.artifact == "numpy-2.2.2.whl" and v.use_version == "2.4.1"
    assert "2.4.1 is confirmed ready" in v.reason
    (text,) = _advice(v, "numpy", "2.2.2")
    assert "--verify" in text
    assert "Or upgrade from 2.2.2 to 2.4.1, which is confirmed ready" in text
    assert not text.startswith("Upgrade")


def test_a_current_version_proven_not_ready_is_still_an_upgrade() -> None:
    ready = Candidate(version="2.4.1", judgement=READY)
    gil = Judgement(status=Status.GIL, evidence=Evidence.INSPECTED, reason="needs the GIL")
    for current in (Candidate(version="2.2.2", judgement=gil), Candidate(version="2.2.2")):
        v = assess(T313, PLATFORM, current, newer=ready)
        assert (v.status, v.use_version) == (Status.UPGRADE, "2.4.1")


def test_a_wheel_whose_extensions_would_not_load_is_no_wheel_for_the_target() -> None:
    """Built for a GIL interpreter only: proven not to load, so a ready release is the
    way out, not a doubt to verify."""
    gil_build = Extension(
        path="pkg/_x.cpython-313-x86_64-linux-gnu.so",
        module="pkg._x",
        gil=Gil.NOT_USED,
        init=Init.MULTI_PHASE,
        format=BinaryFormat.ELF,
        free_threaded_build=False,
        detail="d",
    )
    facts = ArtifactFacts(artifact="pkg-1.whl", tags=(), extensions=(gil_build,), libraries=())
    judged = judge_artifact(facts)
    assert judged.status is Status.UNKNOWN
    current = Candidate(version="1", artifact="pkg-1.whl", judgement=judged)
    v = assess(T313, PLATFORM, current, newer=Candidate(version="2", judgement=READY))
    assert (v.status, v.use_version) == (Status.UPGRADE, "2")


# What cffi generates for an out-of-line API module (_cffi_include.h): PyInit_ hands the
# module's creation to _cffi_backend, and a PyPy entry sits beside it.
CFFI_MODULE = r"""
#include <Python.h>

static void *_cffi_exports[4];

static PyObject *_cffi_init(const char *module_name, Py_ssize_t version, const void *ctx)
{
    PyObject *module, *o_arg, *new_module;
    void *raw[] = {(void *)module_name, (void *)version, (void *)_cffi_exports, (void *)ctx};

    module = PyImport_ImportModule("_cffi_backend");
    if (module == NULL)
        goto failure;
    o_arg = PyLong_FromVoidPtr((void *)raw);
    if (o_arg == NULL)
        goto failure;
    new_module = PyObject_CallMethod(
        module, (char *)"_init_cffi_1_0_external_module", (char *)"O", o_arg);
    Py_DECREF(o_arg);
    Py_DECREF(module);
    return new_module;

  failure:
    Py_XDECREF(module);
    return NULL;
}

static const int _cffi_type_context = 0;

PyMODINIT_FUNC _cffi_pypyinit__demo(const void *p[]) { (void)p; }

PyMODINIT_FUNC PyInit__demo(void)
{
    return _cffi_init("_demo", 0x2601, &_cffi_type_context);
}
"""


def test_a_cffi_generated_module_is_unknown_with_the_cffi_reason(
    ft_python: str, tmp_path: Path
) -> None:
    cfg = toolchain.python_config(ft_python)
    source = tmp_path / "_demo.c"
    source.write_text(CFFI_MODULE)
    so = tmp_path / f"_demo{cfg['suffix']}"
    gcc = toolchain.need_tool("gcc")
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-I", cfg["include"], str(source), "-o", str(so)],
        check=True,
        capture_output=True,
    )
    found = inspect_binary(so.name, so.read_bytes())
    assert isinstance(found, Extension)
    assert found.gil is Gil.UNKNOWN
    assert found.detail.startswith("cffi module: _cffi_backend creates the module")


def test_a_locked_sdist_only_version_is_build_and_an_older_gil_wheel_is_a_costed_option() -> None:
    """greenlet locked at 3.3.1 (no wheel for the target, an sdist) is not judged by
    3.2.2's wheel, which re-enables the GIL."""
    gil = Judgement(
        status=Status.GIL,
        evidence=Evidence.INSPECTED,
        reason="greenlet._greenlet does not declare Py_mod_gil: importing re-enables the GIL",
    )
    current = Candidate(version="3.3.1", sdist=True)
    older = Candidate(version="3.2.2", artifact="greenlet-3.2.2.whl", judgement=gil)
    v = assess(T313, PLATFORM, current, older=older)
    assert (v.status, v.use_version, v.gil_wheel) == (Status.BUILD, None, "3.2.2")
    assert "3.2.2 has a wheel but needs the GIL" in v.reason
    (text,) = _advice(v, "greenlet", "3.3.1")
    assert text.startswith("No wheel of greenlet 3.3.1")
    assert "Or pin 3.2.2, which has a wheel but needs the GIL" in text
    newer = Candidate(version="3.4", judgement=gil)
    v = assess(T313, PLATFORM, current, newer=newer)
    assert (v.status, v.gil_wheel) == (Status.BUILD, "3.4")
    assert "Or upgrade to 3.4, which has a wheel but needs the GIL" in _advice(v, "g", "3.3.1")[0]


def test_without_an_sdist_of_its_own_another_releases_gil_wheel_is_the_status() -> None:
    gil = Judgement(status=Status.GIL, evidence=Evidence.INSPECTED, reason="needs the GIL")
    older = Candidate(version="3.2.2", judgement=gil)
    v = assess(T313, PLATFORM, Candidate(version="3.3.1"), older=older)
    assert (v.status, v.use_version) == (Status.GIL, "3.2.2")
    v = assess(T313, PLATFORM, Candidate(version="3.3.1"), build_from=Candidate(version="4"))
    assert (v.status, v.use_version) == (Status.BUILD, "4")


def test_a_library_too_large_to_read_is_listed_by_its_name(tmp_path: Path) -> None:
    """nvidia-cublas bundles a 541 MB libcublasLt.so.13 and no extension module: a file
    no interpreter imports is a library by its name, not an unreadable member."""
    wheel = build_wheel(
        tmp_path, "bigcuda", "1.0", "py3-none-manylinux_2_17_x86_64", {"bigcuda/__init__.py": b""}
    )
    size = MAX_MEMBER_BYTES + 1024 * 1024
    with zipfile.ZipFile(wheel, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        info = zipfile.ZipInfo("bigcuda.libs/libbig.so.13")
        info.compress_type = zipfile.ZIP_DEFLATED
        chunk = bytes(16 * 1024 * 1024)
        with zf.open(info, "w", force_zip64=True) as out:
            for start in range(0, size, len(chunk)):
                out.write(chunk[: size - start])
        zf.writestr("bigcuda/lib/libother.so.2", b"\x7fELF")
    facts = inspect_wheel(wheel)
    assert facts.unreadable == () and facts.extensions == ()
    assert [lib.path for lib in facts.libraries] == [
        "bigcuda.libs/libbig.so.13",
        "bigcuda/lib/libother.so.2",
    ]
    assert all("(not read)" in lib.why for lib in facts.libraries)
    judged = judge_artifact(facts)
    assert judged.status is Status.READY
    assert judged.reason.startswith("no extension modules; 2 shared libraries")


def test_only_names_no_interpreter_imports_are_libraries_by_name() -> None:
    assert library_by_name("numpy.libs/libopenblas-r0.3.so") is not None
    assert library_by_name("pkg/.dylibs/libz.1.dylib") is not None
    assert library_by_name("pkg/libfoo.so.1.2") is not None
    assert library_by_name("pkg/.libs/x.cpython-313t-x86_64-linux-gnu.so") is not None
    for module in (
        "pkg/libfoo.so",  # importable as pkg.libfoo
        "pkg/_x.cpython-313t-x86_64-linux-gnu.so",
        "pkg/_x.cp313t-win_amd64.pyd",
        "pkg.libs/helper.dll",  # read, and checked to be a DLL
    ):
        assert library_by_name(module) is None, module
