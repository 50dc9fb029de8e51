"""Verdicts a user can act on: pure-Python sdists are ready, a placeholder release is never
a fix, no advice names a version another package rules out (whatever the source), and a
package installed only for an extra is advised through that extra.

Everything here is pure Python (wheels and sdists built in the test), served by a real
index on 127.0.0.1: nothing is compiled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ftaudit.cli import main
from tests.helpers.index_server import IndexServer
from tests.helpers.wheels import build_sdist, build_wheel

PURE = "py3-none-any"
HATCH = b'[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
SETUP_EXT = (
    b"from setuptools import Extension, setup\n"
    b'setup(ext_modules=[Extension("lib._core", ["src/core.c"])])\n'
)
C_SOURCE = b"int lib_core(void) { return 0; }\n"


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def compiled_sdist(index: Path, name: str, version: str) -> Path:
    return build_sdist(index, name, version, {"setup.py": SETUP_EXT, "src/core.c": C_SOURCE})


def pure_wheel(index: Path, name: str, version: str, **kw: Any) -> Path:
    module = name.replace("-", "_")
    return build_wheel(index, name, version, PURE, {f"{module}/__init__.py": b"x = 1\n"}, **kw)


def scan(tmp_path: Path, source: Path, index: IndexServer, *extra: str) -> dict[str, Any]:
    out = tmp_path / "report.json"
    args = ["scan", str(source), "--target", "3.13t", "--platform", "linux-x86_64"]
    args += ["--index-url", index.url, "--cache-dir", str(tmp_path / "cache")]
    main([*args, *extra, "--format", "json", "-o", str(out), "--quiet"])
    return dict(json.loads(out.read_text()))


def requirements(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proj" / "requirements.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in doc["packages"]}


# --- sdists read, never built ----------------------------------------------------------


def test_a_pure_python_sdist_is_ready_and_one_with_c_sources_is_a_build(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_sdist(index, "purelib", "1.0", {"pyproject.toml": HATCH, "purelib/__init__.py": b""})
    compiled_sdist(index, "clib", "1.0")
    source = requirements(tmp_path, "purelib==1.0\nclib==1.0\n")
    with IndexServer(index) as server:
        doc = scan(tmp_path, source, server)
    pkgs = by_name(doc)
    pure = pkgs["purelib"]["targets"]["3.13t"]
    assert (pure["status"], pure["evidence"]) == ("ready", "pure")
    assert "pure Python sdist" in pure["reason"] and "hatchling.build" in pure["reason"]
    assert pkgs["purelib"]["advice"] == []
    native = pkgs["clib"]["targets"]["3.13t"]
    assert native["status"] == "build"
    assert "src/core.c (C)" in native["reason"] and "setup.py: Extension" in native["reason"]


def test_an_sdist_past_the_reading_budget_is_unknown_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ftaudit.inspect.sdist.MAX_MEMBERS", 2)
    index = tmp_path / "index"
    files = {"pyproject.toml": HATCH, **{f"big/m{i}.py": b"" for i in range(5)}}
    build_sdist(index, "biglib", "1.0", files)
    with IndexServer(index) as server:
        doc = scan(tmp_path, requirements(tmp_path, "biglib==1.0\n"), server)
    verdict = by_name(doc)["biglib"]["targets"]["3.13t"]
    assert verdict["status"] == "unknown"
    assert "more than 2 files: not all read" in verdict["reason"]
    (advice,) = by_name(doc)["biglib"]["advice"]
    assert "pip wheel --no-deps --no-binary biglib" in advice["text"]
    assert "--verify" not in advice["text"]  # there is nothing to import


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"pyproject.toml": HATCH, "a/__init__.py": b""}, None),
        ({"setup.py": b"from setuptools import setup\nsetup(name='x')\n"}, None),
        (
            {"pyproject.toml": b'[build-system]\nbuild-backend = "maturin"\n', "a.py": b""},
            "build backend maturin",
        ),
        (
            {"pyproject.toml": HATCH.replace(b'"hatchling"', b'"hatchling", "Cython>=3"')},
            "build requires Cython>=3",
        ),
        (
            {"pyproject.toml": HATCH + b"[tool.hatch.build.targets.wheel.hooks.mypyc]\n"},
            "hatch build hook mypyc",
        ),
        ({"setup.py": b"setup()\n", "setup.cfg": b"[build_ext]\ninplace=1\n"}, "setup.cfg"),
        ({"pyproject.toml": HATCH, "a/_speed.abi3.so": b"\x7fELF"}, "binary"),
        ({"pyproject.toml": HATCH, "rust/lib.rs": b"fn main() {}"}, "(Rust)"),
        ({"pyproject.toml": HATCH, "a/fast.pyx": b""}, "(Cython)"),
        ({"a/__init__.py": b""}, "nothing says how it builds"),
    ],
)
def test_what_makes_an_sdist_more_than_python(
    tmp_path: Path, files: dict[str, bytes], says: str | None
) -> None:
    from ftaudit.inspect.sdist import inspect_sdist

    facts = inspect_sdist(build_sdist(tmp_path, "x", "1.0", files), "x-1.0.tar.gz")
    assert facts.unreadable is None
    if says is None:
        assert facts.compiles == ()
    else:
        assert any(says in c for c in facts.compiles), facts.compiles


def test_a_zip_sdist_is_read_the_same_way(tmp_path: Path) -> None:
    import zipfile

    from ftaudit.inspect.sdist import inspect_sdist

    for name, files in (("pure", {"pyproject.toml": HATCH}), ("c", {"setup.py": SETUP_EXT})):
        path = tmp_path / f"{name}-1.0.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for member, data in files.items():
                zf.writestr(f"{name}-1.0/{member}", data)
        facts = inspect_sdist(path, path.name)
        assert facts.unreadable is None
        assert bool(facts.compiles) == (name == "c"), facts


def test_an_sdist_that_is_no_archive_is_an_input_error(tmp_path: Path) -> None:
    from ftaudit.errors import InputError
    from ftaudit.inspect.sdist import inspect_sdist

    bad = tmp_path / "x-1.0.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputError, match="not a readable sdist"):
        inspect_sdist(bad, bad.name)


def test_an_sdist_header_that_asks_for_gigabytes_ends_the_reading(tmp_path: Path) -> None:
    """A PAX header is read whole by the tar reader, whatever size it claims: the bounded
    stream refuses it (a gzip of zeros can claim gigabytes)."""
    import io
    import tarfile

    from ftaudit.inspect.sdist import inspect_sdist

    path = tmp_path / "bomb-1.0.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("bomb-1.0/setup.py")
        info.pax_headers = {"comment": "x" * (5 * 1024 * 1024)}
        info.size = 0
        tf.addfile(info, io.BytesIO(b""))
    facts = inspect_sdist(path, path.name)
    assert facts.unreadable is not None and "asks for a read of" in facts.unreadable


def test_an_sdist_that_unpacks_past_the_budget_is_not_read_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftaudit.inspect.sdist import inspect_sdist

    monkeypatch.setattr("ftaudit.inspect.sdist.MAX_UNPACKED_BYTES", 4096)
    path = build_sdist(tmp_path, "big", "1.0", {"data.bin": b"\0" * 8192, "setup.py": b""})
    facts = inspect_sdist(path, path.name)
    assert facts.unreadable is not None and "unpack to more than" in facts.unreadable


# --- a placeholder release is never a fix -----------------------------------------------


@pytest.mark.parametrize(
    "files",
    [{}, {"holder/__init__.py": b""}, {"holder/__init__.py": b"# reserved\n\n"}],
    ids=["dist-info only", "empty __init__", "comment-only __init__"],
)
def test_a_placeholder_release_is_never_the_pin(tmp_path: Path, files: dict[str, bytes]) -> None:
    """holder 2.0 only builds from a C sdist; 0.0.1 is a wheel that installs no code."""
    index = tmp_path / "index"
    compiled_sdist(index, "holder", "2.0")
    build_wheel(index, "holder", "0.0.1", PURE, files)
    with IndexServer(index) as server:
        doc = scan(tmp_path, requirements(tmp_path, "holder==2.0\n"), server)
    pkg = by_name(doc)["holder"]
    assert pkg["targets"]["3.13t"]["status"] == "build"
    assert pkg["targets"]["3.13t"]["use_version"] is None
    assert not any("0.0.1" in a["text"] for a in pkg["advice"])


# --- a version another package rules out is not advice ----------------------------------


def test_a_pin_another_package_forbids_says_what_blocks_it(tmp_path: Path) -> None:
    """lib 1.0 is ready, but app requires lib>=1.5: "Pin lib==1.0" cannot be followed."""
    index = tmp_path / "index"
    compiled_sdist(index, "lib", "2.0")
    pure_wheel(index, "lib", "1.0")
    pure_wheel(index, "app", "1.0", requires=("lib>=1.5",))
    with IndexServer(index) as server:
        doc = scan(tmp_path, requirements(tmp_path, "app==1.0\n"), server)
    pkg = by_name(doc)["lib"]
    assert pkg["targets"]["3.13t"]["status"] == "downgrade"
    (advice,) = pkg["advice"]
    assert advice["version"] is None
    assert "Pin lib" not in advice["text"]
    assert "app requiring lib>=1.5 rules it out" in advice["text"]


UV_LOCK = """\
version = 1
revision = 2
requires-python = ">=3.10"

[[package]]
name = "proj"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [{{ name = "app" }}]

[package.metadata]
requires-dist = [{{ name = "app", specifier = "==1.0" }}]

[[package]]
name = "app"
version = "1.0"
source = {{ registry = "{url}" }}
dependencies = [{{ name = "lib" }}]

[[package]]
name = "lib"
version = "1.0"
source = {{ registry = "{url}" }}
"""

PIPFILE_LOCK = """\
{{"_meta": {{"pipfile-spec": 6, "requires": {{}}, "sources": [{{"name": "i", "url": "{url}",
"verify_ssl": false}}]}},
 "default": {{"app": {{"version": "==1.0"}}, "lib": {{"version": "==1.0"}}}}, "develop": {{}}}}
"""


POETRY_LOCK = """\
[[package]]
name = "app"
version = "1.0"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
files = []

[package.dependencies]
lib = "<2"

[[package]]
name = "lib"
version = "1.0"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
files = []

[metadata]
lock-version = "2.1"
python-versions = ">=3.10"
content-hash = "0"
"""

PYLOCK = """\
lock-version = "1.0"
created-by = "uv"

[[packages]]
name = "app"
version = "1.0"
index = "{url}"
wheels = [{{ url = "{files}app-1.0-py3-none-any.whl", hashes = {{ sha256 = "{app}" }} }}]

[[packages]]
name = "lib"
version = "1.0"
index = "{url}"
sdist = {{ url = "{files}lib-1.0.tar.gz", hashes = {{ sha256 = "{lib}" }} }}
"""

LOCKS = {
    "uv.lock": UV_LOCK,
    "Pipfile.lock": PIPFILE_LOCK,
    "poetry.lock": POETRY_LOCK,
    "pylock.toml": PYLOCK,
    "requirements.txt": "app==1.0\nlib==1.0\n",
}


@pytest.mark.parametrize("kind", list(LOCKS))
def test_an_upgrade_a_dependent_forbids_is_not_advised_from_any_source(
    tmp_path: Path, kind: str
) -> None:
    """lib 1.0 builds from a C sdist, 3.0 is ready, and app's own Requires-Dist says
    lib<2: uv.lock records no specifiers, Pipfile.lock no edges at all; each names app."""
    index = tmp_path / "index"
    lib = compiled_sdist(index, "lib", "1.0")
    pure_wheel(index, "lib", "3.0")
    app = pure_wheel(index, "app", "1.0", requires=("lib<2",))
    digests = {
        n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in (("lib", lib), ("app", app))
    }
    proj = tmp_path / "proj"
    proj.mkdir()
    with IndexServer(index) as server:
        (proj / "pyproject.toml").write_text(
            '[project]\nname = "proj"\nversion = "0.1.0"\ndependencies = ["app==1.0"]\n'
        )
        files = server.url.replace("/simple/", "/files/")
        (proj / kind).write_text(LOCKS[kind].format(url=server.url, files=files, **digests))
        doc = scan(tmp_path, proj / kind, server)
    pkg = by_name(doc)["lib"]
    assert pkg["targets"]["3.13t"]["status"] == "upgrade"
    (advice,) = pkg["advice"]
    assert advice["version"] is None, advice["text"]
    assert "app requiring lib<2 rules it out" in advice["text"]


# --- a problem package that comes in only through an extra ------------------------------

PG_REQUIRES = (
    'pg-binary==3.0; implementation_name != "pypy" and extra == "binary"',
    'pg-c==3.0; implementation_name != "pypy" and extra == "c"',
    'pg-pool; extra == "pool"',
)

UV_LOCK_EXTRA = """\
version = 1
revision = 2
requires-python = ">=3.10"

[[package]]
name = "proj"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [{{ name = "pg", extra = ["binary"] }}]

[[package]]
name = "pg"
version = "3.0"
source = {{ registry = "{url}" }}

[package.optional-dependencies]
binary = [{{ name = "pg-binary", marker = "implementation_name != 'pypy'" }}]

[[package]]
name = "pg-binary"
version = "3.0"
source = {{ registry = "{url}" }}
"""


@pytest.mark.parametrize("kind", ["requirements.txt", "uv.lock"])
def test_a_blocked_package_behind_an_extra_is_advised_through_the_extra(
    tmp_path: Path, kind: str
) -> None:
    """pg-binary has only a GIL build's wheel: not "replace it", but drop pg[binary] or
    ask for pg[c] (the extra with the same terms), never pg[pool]."""
    index = tmp_path / "index"
    pure_wheel(index, "pg", "3.0", requires=PG_REQUIRES, provides_extra=("binary", "c", "pool"))
    build_wheel(index, "pg-binary", "3.0", "cp313-cp313-manylinux_2_17_x86_64", {"x": b""})
    proj = tmp_path / "proj"
    proj.mkdir()
    with IndexServer(index) as server:
        if kind == "uv.lock":
            (proj / "pyproject.toml").write_text(
                '[project]\nname = "proj"\nversion = "0.1.0"\ndependencies = ["pg[binary]"]\n'
            )
            (proj / kind).write_text(UV_LOCK_EXTRA.format(url=server.url))
        else:
            (proj / kind).write_text("pg[binary]==3.0\n")
        doc = scan(tmp_path, proj / kind, server)
    pkg = by_name(doc)["pg-binary"]
    assert pkg["targets"]["3.13t"]["status"] == "blocked"
    (advice,) = pkg["advice"]
    assert "pg-binary is installed only for pg[binary]: drop that extra" in advice["text"]
    assert "or ask for pg[c] instead" in advice["text"]
    assert "pool" not in advice["text"] and "Replace it" not in advice["text"]
    assert pkg["through_extras"] == [{"package": "pg", "extra": "binary", "alternatives": ["c"]}]


# --- a partial index --------------------------------------------------------------------


def test_beside_a_dead_index_a_partial_one_gives_no_blocked_and_counted_notes(
    tmp_path: Path,
) -> None:
    """The mirror holds only sk's GIL-build wheel and nothing of m1..m4: sk is unknown
    (the dead index may have its wheel), and the four lookups that failed are one note."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/simple/"
    index = tmp_path / "index"
    build_wheel(index, "sk", "1.0", "cp313-cp313-manylinux_2_17_x86_64", {"x": b""})
    names = ["sk", "m1", "m2", "m3", "m4"]
    lock = {
        "_meta": {"pipfile-spec": 6, "requires": {}, "sources": []},
        "default": {n: {"version": "==1.0"} for n in names},
        "develop": {},
    }
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "Pipfile.lock").write_text(json.dumps(lock))
    with IndexServer(index) as partial:
        doc = scan(
            tmp_path,
            proj / "Pipfile.lock",
            partial,
            "--index-url",
            dead,
            "--extra-index-url",
            partial.url,
        )
    sk = by_name(doc)["sk"]
    assert sk["targets"]["3.13t"]["status"] == "unknown"
    assert doc["summary"]["3.13t"]["blocked"] == 0
    assert not any("Replace it" in a["text"] for p in doc["packages"] for a in p["advice"])
    unknown = [n for n in doc["notes"] if "require" in n and "is unknown" in n]
    assert len(unknown) == 1, doc["notes"]
    assert unknown[0].startswith("who 4 packages (m1, m2, m3, m4) require is unknown (e.g. ")


def test_uv_lock_names_the_projects_own_requirement_in_an_upgrade(tmp_path: Path) -> None:
    """uv.lock keeps the project's specifiers under [package.metadata] only: the upgrade
    says the project's own lib<2 must allow 3.0 (the project can change that one)."""
    index = tmp_path / "index"
    compiled_sdist(index, "lib", "1.0")
    pure_wheel(index, "lib", "3.0")
    proj = tmp_path / "proj"
    proj.mkdir()
    with IndexServer(index) as server:
        lock = UV_LOCK.format(url=server.url)
        lock = lock.replace(
            'dependencies = [{ name = "app" }]\n', 'dependencies = [{ name = "lib" }]\n', 1
        )
        lock = lock.replace(
            '{ name = "app", specifier = "==1.0" }', '{ name = "lib", specifier = "<2" }'
        )
        (proj / "uv.lock").write_text(lock)
        doc = scan(tmp_path, proj / "uv.lock", server)
    (advice,) = by_name(doc)["lib"]["advice"]
    assert advice["version"] == "3.0"
    assert "Blocked by project requiring lib<2: it must allow 3.0 first" in advice["text"]


def test_an_environment_records_what_each_installed_requirer_allows() -> None:
    """An installed environment's own Requires-Dist is the check (no index needed)."""
    from ftaudit.model import Installed
    from ftaudit.sources.graph import dependencies_from_installed

    def dist(name: str, *requires: str) -> Installed:
        return Installed(
            name=name,
            display_name=name,
            version="1.0",
            site_dir="/nowhere",
            files=(),
            requires=requires,
            classifiers=(),
            wheel_tags=(),
        )

    deps = dependencies_from_installed(
        [dist("app", "lib<2", "other"), dist("lib"), dist("other")], {}
    )
    by = {d.name: d for d in deps}
    assert by["lib"].requirements == (("app", "<2"),)
    assert by["other"].requirements == (("app", ""),)


def test_a_gil_wheel_of_another_release_that_a_requirer_rules_out_says_so() -> None:
    """The version in use has nothing for the target and 2.0's wheel needs the GIL: the
    isolate advice is about 2.0, which app's lib<2 rules out."""
    from ftaudit.advice import package_advice
    from ftaudit.model import Dependency, Evidence, PackageReport, Status, Verdict
    from ftaudit.targets import parse_targets

    verdict = Verdict(
        target=parse_targets("3.13t")[0],
        platform="linux-x86_64",
        status=Status.GIL,
        evidence=Evidence.INSPECTED,
        reason="r",
        use_version="2.0",
    )
    app = PackageReport(
        dependency=Dependency(name="app", display_name="app", version="1.0"), verdicts=()
    )
    dep = Dependency(name="lib", display_name="lib", version="1.0", requirements=(("app", "<2"),))
    (advice,) = package_advice(PackageReport(dependency=dep, verdicts=(verdict,)), {"app": app}, {})
    assert "2.0 is the release with a wheel for it, but app requiring lib<2 rules it out" in (
        advice.text
    )
