"""From facts to verdicts: pure functions, no I/O.

`judge_artifact` says what one artifact means for a target (ready, gil or unknown);
`assess` weighs the installed version's artifact against the newer and older releases the
scan looked at, and gives the package's status for that target with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ftaudit.model import (
    ArtifactFacts,
    Evidence,
    Extension,
    Gil,
    Incomplete,
    SdistFacts,
    Status,
    Target,
    Verdict,
)
from ftaudit.targets import extension_loadable


@dataclass(frozen=True, slots=True, kw_only=True)
class Judgement:
    status: Status  # READY, GIL or UNKNOWN
    evidence: Evidence
    reason: str
    # The artifact could not be read at all (download, cache, integrity): UNKNOWN, and a
    # failure of the run rather than a finding about the package.
    incomplete: Incomplete | None = None
    # UNKNOWN because none of its extensions would load on the target (built for other
    # interpreters, or for a GIL build): as good as no wheel, not a reader's doubt.
    unloadable: bool = False
    # The artifact installs no code (see ArtifactFacts.placeholder): never advised.
    placeholder: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One release as the scan found it for a target."""

    version: str
    artifact: str | None = None  # the wheel (or installed files) the target would use
    judgement: Judgement | None = None  # None: no wheel for the target in this release
    sdist: bool = False  # the release has an sdist the target could build
    abi3_only: bool = False  # no wheel for the target, but abi3 wheels for GIL builds
    # What in its sdist compiles (for a `build`'s reason), when the sdist was read.
    compiles: tuple[str, ...] = ()


def _names(exts: list[Extension], limit: int = 3) -> str:
    shown = ", ".join(e.module for e in exts[:limit])
    return shown + (f" and {len(exts) - limit} more" if len(exts) > limit else "")


# What an sdist reader's note "path (kind)" says about the compilers a build needs.
_LANGUAGE_OF = {
    "C": "C",
    "C++": "C++",
    "Cython": "Cython",
    "Rust": "Rust",
    "Cargo": "Rust",
    "Fortran": "Fortran",
    "CUDA": "CUDA",
    "Objective-C++": "Objective-C++",
}


def source_languages(compiles: tuple[str, ...]) -> tuple[str, ...]:
    """The languages an sdist's sources are in, from what its reader noted."""
    found = []
    for note in compiles:
        kind = note.rsplit(" (", 1)[-1].rstrip(")") if note.endswith(")") else ""
        if kind in _LANGUAGE_OF:
            found.append(_LANGUAGE_OF[kind])
    return tuple(dict.fromkeys(sorted(found, key=list(_LANGUAGE_OF.values()).index)))


def judge_sdist(facts: SdistFacts) -> Judgement | None:
    """What an sdist read without building it says: READY (evidence ``pure``) when it
    builds only Python, UNKNOWN when it could not be read to the end, None when it
    compiles something (then it is a `build`, and `facts.compiles` says why)."""
    if facts.unreadable is not None:
        return Judgement(
            status=Status.UNKNOWN,
            evidence=Evidence.INSPECTED,
            reason=f"{facts.artifact}: {facts.unreadable}: whether it builds more than "
            "Python is unknown",
        )
    if facts.compiles:
        return None
    return Judgement(
        status=Status.READY,
        evidence=Evidence.PURE,
        reason=f"pure Python sdist ({facts.artifact}): none of its {facts.files} files is "
        "C, C++, Cython, Rust or Fortran source or a compiled binary, and its build "
        f"configuration ({facts.backend}) declares no compiled extension (read, not built)",
    )


def judge_artifact(
    facts: ArtifactFacts,
    *,
    inspected: bool = True,
    has_binaries: bool = True,
    target: Target | None = None,
) -> Judgement:
    """What an artifact's extension modules mean for a free-threaded interpreter.

    With `target`, only the extension files that interpreter would load count (a wheel
    may carry builds for other Python versions beside them). With `inspected` False
    (``--no-inspect``) only the artifact's existence is known: the verdict says so through
    its evidence, ``tags``.
    """
    if target is not None and facts.extensions:
        loadable = tuple(e for e in facts.extensions if extension_loadable(e.path, target))
        if not loadable:
            return Judgement(
                status=Status.UNKNOWN,
                evidence=Evidence.INSPECTED,
                reason=f"none of its {len(facts.extensions)} extension files is built for "
                f"{target.name} (e.g. {facts.extensions[0].path.rsplit('/', 1)[-1]})",
                unloadable=True,
            )
        facts = replace(facts, extensions=loadable)
    if not inspected:
        if not has_binaries:
            return Judgement(
                status=Status.READY, evidence=Evidence.TAGS, reason="pure Python (not inspected)"
            )
        return Judgement(
            status=Status.READY,
            evidence=Evidence.TAGS,
            reason=f"{facts.artifact} is built for the target; extensions not inspected",
        )
    if facts.unreadable:
        path, why = facts.unreadable[0]
        more = f" (and {len(facts.unreadable) - 1} more)" if len(facts.unreadable) > 1 else ""
        return Judgement(
            status=Status.UNKNOWN, evidence=Evidence.INSPECTED, reason=f"{path}: {why}{more}"
        )
    exts = list(facts.extensions)
    if not exts:
        if facts.libraries:
            return Judgement(
                status=Status.READY,
                evidence=Evidence.INSPECTED,
                reason=f"no extension modules; {len(facts.libraries)} shared libraries "
                "(not extension modules, loaded without touching the GIL)",
            )
        if any(not t.endswith("-any") for t in facts.tags):
            # e.g. a bundled executable (ruff, uv): compiled, but never imported.
            return Judgement(
                status=Status.READY,
                evidence=Evidence.INSPECTED,
                reason="no extension modules in a platform-specific wheel",
            )
        if facts.placeholder:
            return Judgement(
                status=Status.READY,
                evidence=Evidence.PURE,
                reason="a placeholder: it installs no code (only its metadata, or empty "
                "__init__.py files)",
                placeholder=True,
            )
        return Judgement(status=Status.READY, evidence=Evidence.PURE, reason="pure Python")
    used = [e for e in exts if e.gil is Gil.USED]
    undeclared = [e for e in exts if e.gil is Gil.UNDECLARED]
    if used or undeclared:
        parts = []
        if used:
            parts.append(f"{_names(used)} declare{'s' if len(used) == 1 else ''} Py_MOD_GIL_USED")
        if undeclared:
            parts.append(
                f"{_names(undeclared)} {'does' if len(undeclared) == 1 else 'do'} not declare "
                "Py_mod_gil"
            )
        return Judgement(
            status=Status.GIL,
            evidence=Evidence.INSPECTED,
            reason="; ".join(parts) + ": importing re-enables the GIL",
        )
    unknown = [e for e in exts if e.gil is Gil.UNKNOWN]
    if unknown:
        return Judgement(
            status=Status.UNKNOWN,
            evidence=Evidence.INSPECTED,
            reason=f"{unknown[0].module}: {unknown[0].detail}",
        )
    gil_builds = [e for e in exts if e.free_threaded_build is False]
    if gil_builds:
        return Judgement(
            status=Status.UNKNOWN,
            evidence=Evidence.INSPECTED,
            reason=f"{_names(gil_builds)} built for a GIL interpreter: will not load",
            unloadable=True,
        )
    n = len(exts)
    return Judgement(
        status=Status.READY,
        evidence=Evidence.INSPECTED,
        reason=f"all {n} extension modules declare Py_MOD_GIL_NOT_USED"
        if n > 1
        else f"{exts[0].module} declares Py_MOD_GIL_NOT_USED",
    )


def _ready(candidate: Candidate) -> bool:
    """Ready, and something to move to: a placeholder release is never a fix."""
    j = candidate.judgement
    return j is not None and j.status is Status.READY and not j.placeholder


def assess(
    target: Target,
    platform: str,
    current: Candidate,
    *,
    newer: Candidate | None = None,
    older: Candidate | None = None,
    build_from: Candidate | None = None,
    lookup_error: str | None = None,
    incomplete: Incomplete | None = None,
    gap: tuple[Incomplete, str] | None = None,
) -> Verdict:
    """The status of one package for one target and platform.

    `current` is the version in use; `newer`/`older` the closest later/earlier releases
    with a wheel for the target (when the scan looked); `build_from` the newest release
    with an sdist, when no wheel fits; `lookup_error` why the index could not be asked
    and `incomplete` what kind of failure that was (None: the index answered, and the
    error is what it said); `gap` why the releases seen may not be all there are (an index
    that failed beside others that answered).

    Failing closed: a verdict that rests on something the run could not check is
    `unknown` with `incomplete` set, never `blocked` nor any other status the missing
    part could have changed. A current artifact that was read decides by itself (a GIL
    wheel needs the GIL whatever the index says about other releases).
    """
    verdict = _assess(
        target,
        platform,
        current,
        newer=newer,
        older=older,
        build_from=build_from,
        lookup_error=lookup_error,
        incomplete=incomplete,
    )
    if verdict.status is Status.READY or verdict.incomplete is not None:
        return verdict
    if current.judgement is not None:
        return verdict
    gaps = [gap] if gap is not None else []
    gaps += [
        (c.judgement.incomplete, f"{c.version}: {c.judgement.reason}")
        for c in (newer, older)
        if c is not None and c.judgement is not None and c.judgement.incomplete is not None
    ]
    if not gaps:
        return verdict
    kind, why = gaps[0]
    return replace(
        verdict,
        status=Status.UNKNOWN,
        evidence=None,
        artifact=None,
        use_version=None,
        incomplete=kind,
        reason=f"not fully checked: {why} (from what could be read: "
        f"{verdict.status.value}, {verdict.reason})",
    )


def _assess(
    target: Target,
    platform: str,
    current: Candidate,
    *,
    newer: Candidate | None,
    older: Candidate | None,
    build_from: Candidate | None,
    lookup_error: str | None,
    incomplete: Incomplete | None,
) -> Verdict:
    where = f"{target.name} on {platform}"

    def verdict(
        status: Status,
        evidence: Evidence | None,
        reason: str,
        artifact: str | None = None,
        use: str | None = None,
        gap: Incomplete | None = None,
    ) -> Verdict:
        return Verdict(
            target=target,
            platform=platform,
            status=status,
            evidence=evidence,
            reason=reason,
            artifact=artifact,
            use_version=use,
            incomplete=gap,
        )

    cur = current.judgement
    if cur is not None and cur.status is Status.READY:
        return verdict(Status.READY, cur.evidence, cur.reason, current.artifact)
    if cur is not None and cur.incomplete is not None:
        # Nothing is known of the version in use: no release can be advised over it.
        return verdict(Status.UNKNOWN, None, cur.reason, current.artifact, gap=cur.incomplete)
    if cur is None and lookup_error is not None:
        return verdict(Status.UNKNOWN, None, lookup_error, gap=incomplete)

    now = (
        f"{current.version} has no wheel for {where}"
        if cur is None
        else f"{current.version}: {cur.reason}"
    )
    if cur is None and current.abi3_only:
        now += (
            " (its abi3 wheels do not load on a free-threaded interpreter: the "
            "free-threaded stable ABI, abi3t, is a separate one, from 3.15)"
        )
    ready_newer = newer if newer is not None and _ready(newer) else None
    if cur is not None and cur.status is Status.UNKNOWN and not cur.unloadable:
        # The reader could not prove the version in use either way: it may well be ready
        # already, so a newer ready release is an option, not the status.
        if ready_newer is None or ready_newer.judgement is None:
            return verdict(Status.UNKNOWN, cur.evidence, cur.reason, current.artifact)
        return verdict(
            Status.UNKNOWN,
            cur.evidence,
            f"{cur.reason}; {ready_newer.version} is confirmed ready "
            f"({ready_newer.judgement.reason})",
            current.artifact,
            ready_newer.version,
        )
    if ready_newer is not None and ready_newer.judgement is not None:
        return verdict(
            Status.UPGRADE,
            ready_newer.judgement.evidence,
            f"{now}; {ready_newer.version} is ready ({ready_newer.judgement.reason})",
            ready_newer.artifact,
            ready_newer.version,
        )
    if cur is not None:
        if cur.status is Status.GIL:
            return verdict(Status.GIL, cur.evidence, cur.reason, current.artifact)
        return verdict(Status.UNKNOWN, cur.evidence, cur.reason, current.artifact)
    if older is not None and older.judgement is not None and _ready(older):
        return verdict(
            Status.DOWNGRADE,
            older.judgement.evidence,
            f"{now}; {older.version} is the newest ready release ({older.judgement.reason})",
            older.artifact,
            older.version,
        )
    gil_other = next(
        (
            other
            for other in (newer, older)
            if other is not None
            and other.judgement is not None
            and other.judgement.status is Status.GIL
        ),
        None,
    )
    if current.sdist:
        # The version in use builds from its sdist: that is its status; another release's
        # GIL wheel is a fallback with a cost, for the advice.
        also = (
            ""
            if gil_other is None or gil_other.judgement is None
            else f"; {gil_other.version} has a wheel but needs the GIL "
            f"({gil_other.judgement.reason})"
        )
        compiles = (
            f" (it compiles: {', '.join(current.compiles[:3])}"
            f"{f' and {len(current.compiles) - 3} more' if len(current.compiles) > 3 else ''})"
            if current.compiles
            else ""
        )
        return replace(
            verdict(
                Status.BUILD,
                None,
                f"{now}, only an sdist{compiles}: must be built from source, GIL status "
                f"unknown until built{also}",
            ),
            gil_wheel=None if gil_other is None else gil_other.version,
            build_languages=source_languages(current.compiles),
        )
    if gil_other is not None and gil_other.judgement is not None:
        # It installs, at that version, and needs the GIL: more to go on than a build of
        # another version.
        return verdict(
            Status.GIL,
            gil_other.judgement.evidence,
            f"{now}; {gil_other.version}: {gil_other.judgement.reason}",
            gil_other.artifact,
            gil_other.version,
        )
    if build_from is not None:
        return verdict(
            Status.BUILD,
            None,
            f"{now}, only an sdist (of {build_from.version}): must be built from source, "
            "GIL status unknown until built",
            None,
            build_from.version,
        )
    for other in (newer, older):
        if other is not None and other.judgement is not None and not other.judgement.placeholder:
            j = other.judgement
            return verdict(
                Status.UNKNOWN,
                j.evidence,
                f"{now}; {other.version}: {j.reason}",
                other.artifact,
                other.version,
            )
    if lookup_error is not None:
        return verdict(Status.UNKNOWN, None, f"{now}; {lookup_error}", gap=incomplete)
    return verdict(
        Status.BLOCKED, Evidence.TAGS, f"{now}, and no release has a wheel or sdist for it"
    )
