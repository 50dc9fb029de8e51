"""`ftaudit run` and the pytest plugin, on the real free-threaded interpreter in a real venv.

The fixture packages, compiled from fixtures/ext/gilmod.c and installed with pip, re-enable
the GIL three ways: gil-single (single-phase, no PyUnstable_Module_SetGIL call), gil-multi
(multi-phase, no Py_mod_gil slot), gil-used (an explicit Py_MOD_GIL_USED); ft-clean declares
Py_MOD_GIL_NOT_USED; shop-wrapper (pure Python) imports gil_multi.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ftaudit.cli import main
from ftaudit.guard.collect import short_chain
from ftaudit.guard.report import run_schema
from ftaudit.model import Frame
from tests.conftest import FT_TAG, NO_GIL_SLOT, NOT_USED, S_UNDECLARED, USED
from tests.helpers import toolchain
from tests.helpers.wheels import build_wheel

REPO = Path(__file__).resolve().parents[1]

APP = """\
import ft_clean
import gil_single
import shop_wrapper


def later():
    import gil_used


later()
print("app ran", ft_clean.answer())
"""


@dataclass(frozen=True)
class GuardVenv:
    python: Path
    work: Path


def _ext_wheel(out: Path, work: Path, ft: str, name: str, variant: int) -> Path:
    pkg = name.replace("-", "_")
    so = toolchain.compile_module(ft, variant, "_core", work / name)
    files = {
        f"{pkg}/__init__.py": b"from ._core import answer\n",
        f"{pkg}/{so.name}": so.read_bytes(),
    }
    return build_wheel(out, name, "1.0", FT_TAG, files)


@pytest.fixture(scope="session")
def guard_venv(tmp_path_factory: pytest.TempPathFactory, ft_python: str) -> GuardVenv:
    """One venv of the free-threaded interpreter with the fixture packages installed, and
    ftaudit (with pytest) reachable through a .pth file for the plugin's tests."""
    root = tmp_path_factory.mktemp("guard")
    wheels = [
        _ext_wheel(root / "wheels", root / "build", ft_python, name, variant)
        for name, variant in (
            ("gil-single", S_UNDECLARED),
            ("gil-multi", NO_GIL_SLOT),
            ("gil-used", USED),
            ("ft-clean", NOT_USED),
        )
    ]
    wheels.append(
        build_wheel(
            root / "wheels",
            "shop-wrapper",
            "1.0",
            "py3-none-any",
            {"shop_wrapper/__init__.py": b"import gil_multi\n"},
        )
    )
    python = toolchain.make_venv(ft_python, root / "venv")
    toolchain.pip_install(python, *wheels)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # After the venv's own packages: ftaudit and the pure-Python tools of this test run.
    (Path(site) / "zz_ftaudit_tests.pth").write_text(
        f"{REPO}\n{sysconfig.get_paths()['purelib']}\n", encoding="utf-8"
    )
    return GuardVenv(python=python, work=root)


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(run_schema())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_run(doc: dict[str, Any]) -> dict[str, Any]:
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])
    return doc


def guard(
    tmp_path: Path,
    *command: str,
    options: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, dict[str, Any]]:
    out = tmp_path / f"run-{len(list(tmp_path.glob('run-*.json')))}.json"
    if env and monkeypatch is not None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
    code = main(["run", "--format", "json", "-o", str(out), *options, "--", *command])
    return code, validate_run(json.loads(out.read_text(encoding="utf-8")))


def _program(tmp_path: Path, text: str, name: str = "app.py") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _by_module(process: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["module"]: c for c in process["culprits"]}


@pytest.mark.ft
def test_every_culprit_is_named_with_its_chain(
    guard_venv: GuardVenv, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    app = _program(tmp_path, APP)
    code, doc = guard(tmp_path, str(guard_venv.python), str(app))
    assert capfd.readouterr().out == "app ran 42\n"  # the program's own output, untouched
    assert code == 1
    assert doc["status"] == "gil" and doc["command_exit"] == 0
    (main_process,) = doc["processes"]
    assert main_process["main"] and main_process["kind"] == "program"
    culprits = _by_module(main_process)
    assert set(culprits) == {"gil_single._core", "gil_multi._core", "gil_used._core"}
    single = culprits["gil_single._core"]
    assert (single["seen"], single["reenabled"], single["gil"]) == ("runtime", True, "undeclared")
    assert single["init"] == "single-phase"
    assert single["distribution"] == "gil-single" and single["version"] == "1.0"
    assert single["chain"] == ["app.py", "gil_single", "gil_single._core"]
    # the GIL was on by then: each of the others is judged by its binary
    multi = culprits["gil_multi._core"]
    assert (multi["seen"], multi["reenabled"], multi["gil"]) == ("static", False, "undeclared")
    assert multi["init"] == "multi-phase"
    assert multi["chain"] == ["app.py", "shop_wrapper", "gil_multi", "gil_multi._core"]
    used = culprits["gil_used._core"]
    assert (used["seen"], used["gil"]) == ("static", "used")
    assert used["chain"] == ["app.py", "gil_used", "gil_used._core"]
    app_frame = used["frames"][0]
    assert (app_frame["module"], app_frame["line"], app_frame["origin"]) == ("__main__", 7, "own")
    assert main_process["gil_at_exit"] is True


@pytest.mark.ft
def test_text_report_and_allow_gil(
    guard_venv: GuardVenv, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    app = _program(tmp_path, APP)
    assert main(["run", "--allow-gil", "--", str(guard_venv.python), str(app)]) == 0
    out, err = capfd.readouterr()
    assert out == "app ran 42\n"
    assert "gil_single._core [gil-single 1.0]: re-enabled the GIL (runtime)" in err
    assert "app.py -> shop_wrapper -> gil_multi -> gil_multi._core" in err
    assert "gil_used._core [gil-used 1.0]: would re-enable the GIL (used) (static)" in err


@pytest.mark.ft
def test_a_program_that_keeps_the_gil_off(
    guard_venv: GuardVenv, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Exit 0, and the program imports exactly what it imports unguarded, in the same
    order, from the same sys.path, its own sitecustomize still run."""
    site = tmp_path / "theirs"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import builtins\nbuiltins.THEIRS = 1\n")
    app = _program(
        tmp_path,
        "import sys, builtins, ft_clean\n"
        "# the guard's sitecustomize (and atexit, a built-in module it registers its exit\n"
        "# record with) aside\n"
        "skip = {'sitecustomize', 'atexit'}\n"
        "print([m for m in sys.modules if m not in skip])\n"
        "print(sys.path, builtins.THEIRS, sys._is_gil_enabled())\n",
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    plain = subprocess.run(
        [str(guard_venv.python), str(app)], capture_output=True, text=True, env=env, check=True
    )
    os.environ["PYTHONPATH"] = str(site)
    try:
        code, doc = guard(tmp_path, str(guard_venv.python), str(app))
    finally:
        del os.environ["PYTHONPATH"]
    assert code == 0
    assert capfd.readouterr().out == plain.stdout
    assert plain.stdout.rstrip().endswith("1 False")
    (process,) = doc["processes"]
    assert process["status"] == "free" and process["culprits"] == []
    assert process["extensions"] >= 1


@pytest.mark.ft
def test_a_failing_program_keeps_its_exit_code(guard_venv: GuardVenv, tmp_path: Path) -> None:
    app = _program(tmp_path, "import gil_single\nraise SystemExit(7)\n")
    code, doc = guard(tmp_path, str(guard_venv.python), str(app))
    assert code == 7 and doc["command_exit"] == 7
    assert _by_module(doc["processes"][0])["gil_single._core"]["reenabled"]


SPAWN = """\
import multiprocessing as mp


def work(n):
    import gil_single
    return n + gil_single.answer()


if __name__ == "__main__":
    mp.set_start_method("spawn")
    with mp.Pool(1) as pool:
        print(pool.map(work, [1]))
"""


@pytest.mark.ft
def test_a_culprit_only_in_a_spawn_worker(
    guard_venv: GuardVenv, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    app = _program(tmp_path, SPAWN)
    code, doc = guard(tmp_path, str(guard_venv.python), str(app))
    assert capfd.readouterr().out == "[43]\n"
    assert code == 0  # keeping a GIL-needing package in a worker is the advised fallback
    main_process = doc["processes"][0]
    assert main_process["main"] and main_process["status"] == "free"
    workers = [p for p in doc["processes"] if p["kind"] == "multiprocessing spawn worker"]
    assert workers and all(p["parent_pid"] == main_process["pid"] for p in workers)
    (worker,) = [p for p in workers if p["culprits"]]
    assert worker["status"] == "gil" and not worker["main"]
    culprit = _by_module(worker)["gil_single._core"]
    assert culprit["reenabled"]
    assert culprit["chain"][-2:] == ["gil_single", "gil_single._core"]
    assert any("only the main process decides" in n for n in doc["notes"])

    code, doc = guard(tmp_path, str(guard_venv.python), str(app), options=("--processes", "all"))
    assert code == 1 and doc["gate"] == "all" and doc["status"] == "gil"


FORKSERVER = """\
import multiprocessing as mp
import subprocess
import sys


def work(n):
    import gil_used
    return n


if __name__ == "__main__":
    mp.set_start_method("forkserver")
    with mp.Pool(1) as pool:
        pool.map(work, [1])
    subprocess.run([sys.executable, "-c", "import gil_single"], check=True)
"""


@pytest.mark.ft
def test_forkserver_workers_and_subprocesses_are_reported_each(
    guard_venv: GuardVenv, tmp_path: Path
) -> None:
    app = _program(tmp_path, FORKSERVER)
    code, doc = guard(tmp_path, str(guard_venv.python), str(app))
    assert code == 0
    by_kind = {p["kind"]: p for p in doc["processes"] if p["culprits"]}
    assert set(by_kind) == {"multiprocessing forkserver worker", "subprocess"}
    worker = by_kind["multiprocessing forkserver worker"]
    # it ends with os._exit: what it wrote before is all there is, and it is enough
    assert worker["gil_at_exit"] is None
    assert _by_module(worker)["gil_used._core"]["chain"] == [
        "app.py",
        "gil_used",
        "gil_used._core",
    ]
    child = by_kind["subprocess"]
    assert _by_module(child)["gil_single._core"]["reenabled"]
    assert child["argv"][-2:] == ["-c", "import gil_single"]
    assert doc["processes"][0]["main"] and doc["processes"][0]["status"] == "free"


@pytest.mark.ft
def test_python_gil_0_names_every_culprit_by_its_binary(
    guard_venv: GuardVenv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _program(tmp_path, APP)
    monkeypatch.setenv("PYTHON_GIL", "0")
    code, doc = guard(tmp_path, str(guard_venv.python), str(app))
    assert code == 1
    (process,) = doc["processes"]
    assert process["python_gil"] == "0" and process["gil_at_exit"] is False
    culprits = _by_module(process)
    assert set(culprits) == {"gil_single._core", "gil_multi._core", "gil_used._core"}
    assert {c["seen"] for c in culprits.values()} == {"static"}
    assert not any(c["reenabled"] for c in culprits.values())
    assert culprits["gil_single._core"]["gil"] == "undeclared"
    assert any("PYTHON_GIL=0" in n for n in process["notes"])


@pytest.mark.ft
def test_w_error_the_import_raises_and_the_report_says_so(
    guard_venv: GuardVenv, tmp_path: Path
) -> None:
    app = _program(
        tmp_path,
        "try:\n    import gil_single\nexcept RuntimeWarning as exc:\n    print('raised')\n",
    )
    code, doc = guard(tmp_path, str(guard_venv.python), "-W", "error", str(app))
    assert code == 1
    (process,) = doc["processes"]
    assert process["warnings_error"]
    culprit = _by_module(process)["gil_single._core"]
    assert culprit["raised"].startswith("RuntimeWarning: The global interpreter lock")
    assert any("-W error" in n for n in process["notes"])


@pytest.mark.ft
def test_a_gil_interpreter_is_refused(
    gil_python: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    app = _program(tmp_path, "open('ran', 'w').close()\n")
    assert main(["run", "--", gil_python, str(app)]) == 2
    err = capfd.readouterr().err
    assert "is not a free-threaded interpreter" in err and "on PATH" in err
    assert not (Path.cwd() / "ran").exists()


def test_schema_command_prints_the_run_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "run"]) == 0
    schema = json.loads(capsys.readouterr().out)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "ftaudit-run/1"


def test_run_without_a_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--"]) == 2
    assert "give the command to run" in capsys.readouterr().err


def _frame(module: str, origin: str, dist: str | None = None) -> Frame:
    return Frame(module=module, path=f"/x/{module}.py", line=1, origin=origin, distribution=dist)


def test_the_chain_starts_at_the_program_and_keeps_one_module_per_distribution() -> None:
    frames = [
        _frame("runpy", "stdlib"),
        _frame("_pytest.python", "third_party", "pytest"),
        _frame("shop.checksums", "own"),
        _frame("importlib", "stdlib"),
        _frame("google_crc32c", "third_party", "google-crc32c"),
        _frame("google_crc32c.cext", "third_party", "google-crc32c"),
    ]
    chain = short_chain(frames, "google_crc32c._crc32c")
    assert chain == ("shop.checksums", "google_crc32c", "google_crc32c._crc32c")
    assert short_chain(frames[:2], "x._y") == ("_pytest.python", "x._y")


# --- the pytest plugin --------------------------------------------------------------------

SUITE = {
    "test_one.py": (
        "def test_clean():\n    import ft_clean\n\n"
        "def test_culprit():\n    import shop_wrapper\n\n"
        "def test_plain():\n    assert True\n"
    ),
    "test_two.py": "import gil_single\n\ndef test_in_a_culprit_module():\n    assert True\n",
}


PYTEST_OPTIONS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-rA")


def _pytest(venv: GuardVenv, suite: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON_GIL"))}
    return subprocess.run(
        # hypothesis's plugin (reached through the .pth) has a part compiled for this run's
        # interpreter, not for the free-threaded one
        [str(venv.python), "-m", "pytest", *PYTEST_OPTIONS, *args],
        cwd=suite,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _suite(tmp_path: Path, files: dict[str, str]) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    for name, text in files.items():
        (suite / name).write_text(text, encoding="utf-8")
    return suite


@pytest.mark.ft
def test_plugin_fails_the_tests_whose_imports_need_the_gil(
    guard_venv: GuardVenv, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, SUITE)
    proc = _pytest(guard_venv, suite, "--ftaudit-gil-guard")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "ftaudit gil guard: on" in out  # loaded through its pytest11 entry point
    assert "PASSED test_one.py::test_clean" in out
    assert "PASSED test_one.py::test_plain" in out
    assert "FAILED test_one.py::test_culprit" in out
    assert "FAILED test_two.py::test_in_a_culprit_module" in out
    # collected first, test_two's import turned the GIL on; test_culprit's is read
    assert "gil_single._core [gil-single 1.0]: re-enabled the GIL (runtime)" in out
    assert "test_two -> gil_single -> gil_single._core" in out
    assert "gil_multi._core [gil-multi 1.0]: would re-enable the GIL (undeclared)" in out
    assert "test_one -> shop_wrapper -> gil_multi -> gil_multi._core" in out
    summary = out.split("ftaudit gil guard =", 1)[1]
    assert "test_one.py::test_culprit" in summary and "test_two.py (at import)" in summary


@pytest.mark.ft
def test_plugin_does_nothing_unless_asked(guard_venv: GuardVenv, tmp_path: Path) -> None:
    suite = _suite(tmp_path, SUITE)
    proc = _pytest(guard_venv, suite)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gil guard" not in proc.stdout
    assert "4 passed" in proc.stdout


@pytest.mark.ft
@pytest.mark.parametrize(
    "config",
    [
        ("pytest.ini", "[pytest]\nftaudit_gil_guard = true\n"),
        ("pyproject.toml", "[tool.ftaudit]\ngil-guard = true\n"),
    ],
)
def test_plugin_turned_on_by_configuration(
    guard_venv: GuardVenv, tmp_path: Path, config: tuple[str, str]
) -> None:
    suite = _suite(tmp_path, {**SUITE, config[0]: config[1]})
    proc = _pytest(guard_venv, suite)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED test_one.py::test_culprit" in proc.stdout
    assert "PASSED test_one.py::test_plain" in proc.stdout


def test_plugin_stays_off_on_a_gil_interpreter(tmp_path: Path) -> None:
    """This test run's own interpreter has the GIL: asked for, the guard says it is off
    and fails nothing."""
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        pytest.skip("this test run's interpreter is free-threaded")
    suite = _suite(tmp_path, {"test_x.py": "def test_x():\n    import json\n"})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_OPTIONS, "--ftaudit-gil-guard"],
        cwd=suite,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ftaudit gil guard: off (not a free-threaded interpreter" in proc.stdout


def test_plugin_is_registered_as_an_entry_point() -> None:
    from importlib.metadata import entry_points

    found = [e for e in entry_points(group="pytest11") if e.name == "ftaudit"]
    assert [e.value for e in found] == ["ftaudit.guard.plugin"]
    assert sys.modules.get("ftaudit.guard.plugin") is not None  # pytest loaded it here too
