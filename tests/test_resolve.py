"""The resolver for unlocked requirements, over an index held in memory.

The end-to-end checks against uv's own resolution are in test_locks.py; these pin down
the cases a small fixture index does not reach: a later requirement forcing an older
release, requirements of a replaced release that must not linger, extras, markers per
platform, cycles, conflicts and releases without wheels.
"""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ftaudit.errors import InputError
from ftaudit.index.select import Release
from ftaudit.index.simple import IndexFile
from ftaudit.model import Requested, Target
from ftaudit.sources.resolve import Resolution, resolve
from ftaudit.targets import parse_targets

T314: Target = parse_targets("3.14t")[0]


class MemoryIndex:
    """{name: {version: (requires, has_wheel)}}"""

    def __init__(self, projects: dict[str, dict[str, tuple[list[str], bool]]]) -> None:
        self.projects = projects
        self.asked: list[tuple[str, str]] = []

    def releases(self, name: str) -> dict[Version, Release]:
        if name not in self.projects:
            raise InputError(f"{name} is not on the index")
        out = {}
        for version, (_requires, wheel) in self.projects[name].items():
            rel = Release(Version(version))
            f = IndexFile(
                filename=f"{name.replace('-', '_')}-{version}"
                + ("-py3-none-any.whl" if wheel else ".tar.gz"),
                url=f"http://127.0.0.1/{name}/{version}",
                sha256=None,
                requires_python=None,
                yanked=False,
            )
            if wheel:
                rel.wheels.append((f, ("py3-none-any",)))
            else:
                rel.sdists.append(f)
            out[rel.version] = rel
        return out

    def requires(
        self, name: str, release: Release, target: Target, platform: str
    ) -> tuple[str, ...]:
        requires, wheel = self.projects[name][str(release.version)]
        if not wheel:
            raise InputError("no wheel: what it requires is known only after building it")
        self.asked.append((name, str(release.version)))
        return tuple(requires)


def run(
    index: MemoryIndex,
    *lines: str,
    platform: str = "linux-x86_64",
    constraints: tuple[str, ...] = (),
) -> Resolution:
    requested = [
        (
            Requirement(line),
            Requested(
                requirement=line, name=canonicalize_name(Requirement(line).name), origin="test"
            ),
        )
        for line in lines
    ] + [
        (
            Requirement(line),
            Requested(
                requirement=line,
                name=canonicalize_name(Requirement(line).name),
                origin="c",
                constraint=True,
            ),
        )
        for line in constraints
    ]
    return resolve(requested, T314, platform, index, jobs=2)


def versions(res: Resolution) -> dict[str, str | None]:
    return {d.name: d.version for d in res.dependencies}


def test_follows_dependencies_and_records_who_requires_them() -> None:
    index = MemoryIndex(
        {
            "app": {"1.0": (["lib>=1", "tool"], True)},
            "lib": {"1.0": ([], True), "2.0": (["base"], True)},
            "tool": {"3.0": (["lib<2"], True)},
            "base": {"1.0": ([], True)},
        }
    )
    res = run(index, "app")
    # tool forces lib below 2 after lib 2.0 was first chosen: lib 2.0's own requirement
    # (base) must not survive into the answer.
    assert versions(res) == {"app": "1.0", "lib": "1.0", "tool": "3.0"}
    deps = {d.name: d for d in res.dependencies}
    assert deps["app"].direct and not deps["lib"].direct
    assert deps["lib"].required_by == ("app", "tool")
    assert not deps["lib"].locked and deps["lib"].specifier in ("<2,>=1", ">=1,<2")


def test_extras_and_markers_are_evaluated_for_the_target() -> None:
    index = MemoryIndex(
        {
            "app": {
                "1.0": (
                    [
                        "fast; extra == 'speed'",
                        "winonly; sys_platform == 'win32'",
                        "old; python_version < '3.14'",
                    ],
                    True,
                )
            },
            "fast": {"1.0": ([], True)},
            "winonly": {"1.0": ([], True)},
            "old": {"1.0": ([], True)},
        }
    )
    assert set(versions(run(index, "app"))) == {"app"}
    assert set(versions(run(index, "app[speed]"))) == {"app", "fast"}
    assert set(versions(run(index, "app", platform="windows-amd64"))) == {"app", "winonly"}


def test_an_extra_asked_for_later_expands_the_package_again() -> None:
    index = MemoryIndex(
        {
            "a": {"1.0": (["c"], True)},
            "b": {"1.0": (["c[x]"], True)},
            "c": {"1.0": (["d; extra == 'x'"], True)},
            "d": {"1.0": ([], True)},
        }
    )
    assert set(versions(run(index, "a", "b"))) == {"a", "b", "c", "d"}


def test_pins_constraints_cycles_and_conflicts() -> None:
    index = MemoryIndex(
        {
            "a": {"1.0": (["b"], True), "2.0": (["b"], True)},
            "b": {"1.0": (["a"], True)},
            "x": {"1.0": ([], True), "2.0": ([], True)},
            "y": {"1.0": (["x>=2"], True)},
        }
    )
    res = run(index, "a==1.0", "x<2", "y", constraints=("b<2",))
    got = {d.name: d for d in res.dependencies}
    assert got["a"].version == "1.0" and got["a"].locked
    assert got["b"].version == "1.0" and got["b"].required_by == ("a",)
    # x<2 and x>=2: no release fits; reported without a version, not silently one of them.
    assert got["x"].version is None and got["x"].specifier in ("<2,>=2", ">=2,<2")


def test_what_cannot_be_followed_is_said() -> None:
    index = MemoryIndex({"src": {"1.0": (["hidden"], False)}, "hidden": {"1.0": ([], True)}})
    res = run(index, "src", "missing", "direct @ https://example.invalid/direct-1.0.tar.gz")
    got = {d.name: d for d in res.dependencies}
    assert got["src"].version == "1.0" and "hidden" not in got
    assert got["missing"].version is None
    assert got["direct"].direct_reference and got["direct"].version is None
    assert any("src 1.0" in n and "after building" in n for n in res.notes)
    assert any("direct" in n and "not followed" in n for n in res.notes)


@pytest.mark.parametrize("jobs", [1, 4])
def test_metadata_is_read_once_per_release(jobs: int) -> None:
    index = MemoryIndex(
        {
            "a": {"1.0": (["c", "d"], True)},
            "b": {"1.0": (["c", "d"], True)},
            "c": {"1.0": (["d"], True)},
            "d": {"1.0": ([], True)},
        }
    )
    requested = [(Requirement(n), Requested(requirement=n, name=n, origin="t")) for n in ("a", "b")]
    resolve(requested, T314, "linux-x86_64", index, jobs=jobs)
    assert sorted(index.asked) == sorted(set(index.asked))
