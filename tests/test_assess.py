"""Assessment is a pure function: tested with plain records, no I/O."""

from __future__ import annotations

from ftaudit.assess import Candidate, Judgement, assess, judge_artifact
from ftaudit.model import (
    ArtifactFacts,
    BinaryFormat,
    Evidence,
    Extension,
    Gil,
    Init,
    Library,
    Status,
    Target,
)

T314 = Target(major=3, minor=14)
READY = Judgement(status=Status.READY, evidence=Evidence.INSPECTED, reason="ok")
GIL = Judgement(status=Status.GIL, evidence=Evidence.INSPECTED, reason="needs the GIL")
UNKNOWN = Judgement(status=Status.UNKNOWN, evidence=Evidence.INSPECTED, reason="cannot tell")


def ext(gil: Gil, module: str = "pkg._x", ft: bool | None = True) -> Extension:
    return Extension(
        path=f"{module}.so",
        module=module,
        gil=gil,
        init=Init.MULTI_PHASE,
        format=BinaryFormat.ELF,
        free_threaded_build=ft,
        detail="d",
    )


def facts(
    *exts: Extension,
    libs: int = 0,
    tags: tuple[str, ...] = (),
    unreadable: tuple[tuple[str, str], ...] = (),
) -> ArtifactFacts:
    return ArtifactFacts(
        artifact="a.whl",
        tags=tags,
        extensions=exts,
        libraries=tuple(Library(path=f"l{i}.so", why="w") for i in range(libs)),
        unreadable=unreadable,
    )


def status(current: Candidate, **kw: Candidate | str | None) -> tuple[Status, str | None]:
    v = assess(T314, "linux-x86_64", current, **kw)  # type: ignore[arg-type]
    return v.status, v.use_version


def test_judge_all_not_used_is_ready() -> None:
    j = judge_artifact(facts(ext(Gil.NOT_USED), ext(Gil.NOT_USED, "pkg._y")))
    assert (j.status, j.evidence) == (Status.READY, Evidence.INSPECTED)


def test_one_used_or_undeclared_module_is_gil() -> None:
    for bad in (Gil.USED, Gil.UNDECLARED):
        j = judge_artifact(facts(ext(Gil.NOT_USED), ext(bad, "pkg._bad")))
        assert j.status is Status.GIL and "pkg._bad" in j.reason


def test_gil_wins_over_unknown_and_unknown_over_ready() -> None:
    assert judge_artifact(facts(ext(Gil.UNKNOWN), ext(Gil.USED, "b"))).status is Status.GIL
    assert judge_artifact(facts(ext(Gil.UNKNOWN), ext(Gil.NOT_USED, "b"))).status is Status.UNKNOWN


def test_unreadable_binary_is_never_ready() -> None:
    j = judge_artifact(facts(ext(Gil.NOT_USED), unreadable=(("x.so", "corrupt"),)))
    assert j.status is Status.UNKNOWN and "x.so" in j.reason


def test_gil_build_extension_is_not_ready() -> None:
    assert judge_artifact(facts(ext(Gil.NOT_USED, ft=False))).status is Status.UNKNOWN


def test_pure_libraries_only_and_platform_wheels() -> None:
    assert judge_artifact(facts()).evidence is Evidence.PURE
    assert judge_artifact(facts(libs=2)).evidence is Evidence.INSPECTED
    platform_wheel = judge_artifact(facts(tags=("py3-none-manylinux_2_17_x86_64",)))
    assert platform_wheel.status is Status.READY and platform_wheel.evidence is Evidence.INSPECTED


def test_not_inspected_says_tags() -> None:
    j = judge_artifact(facts(), inspected=False, has_binaries=True)
    assert j.evidence is Evidence.TAGS and "not inspected" in j.reason


def test_ready_current_version() -> None:
    assert status(Candidate(version="1", artifact="a", judgement=READY)) == (Status.READY, None)


def test_gil_with_ready_newer_is_upgrade() -> None:
    cur = Candidate(version="1", judgement=GIL)
    assert status(cur, newer=Candidate(version="2", judgement=READY)) == (Status.UPGRADE, "2")
    assert status(cur, newer=Candidate(version="2", judgement=GIL)) == (Status.GIL, None)


def test_no_wheel_prefers_upgrade_then_downgrade_then_build() -> None:
    cur = Candidate(version="2")
    newer = Candidate(version="3", judgement=READY)
    older = Candidate(version="1", judgement=READY)
    assert status(cur, newer=newer, older=older) == (Status.UPGRADE, "3")
    assert status(cur, older=older) == (Status.DOWNGRADE, "1")
    assert status(Candidate(version="2", sdist=True)) == (Status.BUILD, None)
    assert status(cur, build_from=Candidate(version="4", sdist=True)) == (Status.BUILD, "4")
    assert status(cur) == (Status.BLOCKED, None)


def test_no_wheel_but_gil_wheels_elsewhere() -> None:
    assert status(Candidate(version="2"), newer=Candidate(version="3", judgement=GIL)) == (
        Status.GIL,
        "3",
    )


def test_lookup_error_is_unknown_never_blocked() -> None:
    assert status(Candidate(version="2"), lookup_error="offline") == (Status.UNKNOWN, None)
    v = assess(T314, "linux-x86_64", Candidate(version="2"), lookup_error="offline")
    assert v.reason == "offline" and v.evidence is None


def test_unknown_current_with_ready_newer_stays_unknown() -> None:
    cur = Candidate(version="1", judgement=UNKNOWN)
    assert status(cur, newer=Candidate(version="2", judgement=READY)) == (Status.UNKNOWN, "2")
    assert status(cur) == (Status.UNKNOWN, None)


def test_builds_for_other_interpreters_in_the_same_wheel_are_not_judged() -> None:
    """Some wheels carry one file per CPython version; only the target's counts."""
    own = Extension(
        path="bson/_cbson.cpython-314t-x86_64-linux-gnu.so",
        module="bson._cbson",
        gil=Gil.NOT_USED,
        init=Init.MULTI_PHASE,
        format=BinaryFormat.ELF,
        free_threaded_build=True,
        detail="d",
    )
    other = Extension(
        path="bson/_cbson.cpython-310-x86_64-linux-gnu.so",
        module="bson._cbson",
        gil=Gil.UNDECLARED,
        init=Init.MULTI_PHASE,
        format=BinaryFormat.ELF,
        free_threaded_build=False,
        detail="d",
    )
    assert judge_artifact(facts(own, other), target=T314).status is Status.READY
    assert judge_artifact(facts(own, other)).status is Status.GIL  # without a target: all count
    only_other = judge_artifact(facts(other), target=T314)
    assert only_other.status is Status.UNKNOWN and "built for 3.14t" in only_other.reason
