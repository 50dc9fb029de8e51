"""What to do about each package: pure functions from verdicts, the graph and import sites.

One piece of advice per package and kind of problem, naming the targets it applies to:
the version to move to and what stands in the way, the pin a downgrade means and what it
holds back, how to keep a package that needs the GIL out of the main process (with the
lines where the project imports it), what a build from source involves, and when an
installer would fall back to something nobody wants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ftaudit.model import (
    Advice,
    Dependency,
    Gil,
    ImportSite,
    Incomplete,
    PackageReport,
    Report,
    Status,
    Verdict,
)

MAX_SITES = 20
MAX_HELD_BACK = 8
TRAP_YEARS = 2.0  # a wheel-only fallback this much older than the version asked for

# What to do about an `unknown`, by why the package could not be checked: a run that
# failed is repeated, only a binary the reader could not prove is a case for --verify.
_UNKNOWN_NEXT: dict[Incomplete | None, str] = {
    None: "Scan with --verify to import it in a free-threaded interpreter.",
    Incomplete.NETWORK: "The index did not answer: scan again when it is reachable.",
    Incomplete.INDEX: "The index answered with an error: check --index-url and scan again.",
    Incomplete.OFFLINE: "The cache does not hold it: scan once without --offline.",
    Incomplete.CACHE: "The cache could not give it back: scan again (it is rebuilt).",
    Incomplete.INTEGRITY: "A file is not what its digest says: check the lock and the "
    "index, then scan again.",
}

ISOLATE_SNIPPET = '''\
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor


def _work(data):
    import {module}  # imported inside the worker process only

    return ...  # the code that needs {module}


_pool = None


def run(data):
    """Call _work in-process when the GIL is on anyway, else in a worker process."""
    global _pool
    if getattr(sys, "_is_gil_enabled", lambda: True)():
        return _work(data)
    if _pool is None:
        _pool = ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn"))
    return _pool.submit(_work, data).result()
'''

GIL_OVERRIDE = (
    "PYTHON_GIL=0 (or python -X gil=0) keeps the GIL off even after this import; the "
    "extension was not written for that, and concurrent calls into it may crash or "
    "corrupt data: use it to test, not in production."
)


def advise(report: Report, import_sites: Mapping[str, Sequence[ImportSite]]) -> Report:
    """The report with advice on every package that needs some."""
    deps = {p.dependency.name: p for p in report.packages}
    packages = tuple(
        replace(p, advice=package_advice(p, deps, import_sites)) for p in report.packages
    )
    return replace(report, packages=packages)


def package_advice(
    pkg: PackageReport,
    others: Mapping[str, PackageReport],
    import_sites: Mapping[str, Sequence[ImportSite]],
) -> tuple[Advice, ...]:
    dep = pkg.dependency
    out: list[Advice] = []
    for (status, use), verdicts in _groups(pkg.verdicts).items():
        where = _where(verdicts)
        judged = verdicts[0].version or dep.version or "?"
        if status is Status.UPGRADE and use:
            out.append(_upgrade(dep, judged, use, where, verdicts, others))
        elif status is Status.GIL:
            out.append(_isolate(pkg, use, verdicts, others, import_sites))
        elif status is Status.DOWNGRADE and use:
            out.append(_downgrade(dep, judged, use, where, verdicts[0], others))
        elif status is Status.BUILD:
            out.append(_build(dep, judged, use, verdicts, others))
        elif status is Status.BLOCKED:
            out.append(_replace(pkg, verdicts, others, import_sites))
        elif status is Status.UNKNOWN:
            text = (
                f"{dep.display_name}: not determined for {where} "
                f"({verdicts[0].reason}). {_unknown_next(verdicts[0], dep)}"
            )
            blocked = _package_blockers(dep, use, others) if use else []
            if use and blocked:
                text += (
                    f" {use} is confirmed ready, but {_requiring(dep, blocked)} "
                    f"{'rule' if len(blocked) > 1 else 'rules'} it out."
                )
            elif use:
                # The version in use may be ready already: moving is an option, not a need.
                text += (
                    f" Or upgrade from {judged} to {use}, which is confirmed ready; {judged} "
                    "may be ready too, the reader could not tell." + _unread(dep, use)
                )
            out.append(Advice(kind="verify", targets=_targets(verdicts), text=text))
        if dep.through_extras and status is not Status.BLOCKED and out:
            # Not asked for by the project: the extra that brings it is the lever.
            last = out[-1]
            out[-1] = replace(last, text=f"{last.text} {_extra_text(dep, others)}")
        trap = _trap(dep, status, judged, use, where, verdicts[0])
        if trap is not None:
            out.append(trap)
    claim = _free_threading_classifier(pkg)
    if claim and any(v.status is Status.READY for v in pkg.verdicts):
        out.append(Advice(kind="note", text=f"The author's classifier says: {claim}."))
    return tuple(out)


def _unknown_next(verdict: Verdict, dep: Dependency) -> str:
    artifact = verdict.artifact or ""
    if verdict.incomplete is None and artifact.endswith((".tar.gz", ".zip", ".tar.bz2", ".tgz")):
        # An sdist that could not be read to the end: there is nothing to import.
        return (
            f"Build it (pip wheel --no-deps --no-binary {dep.name} "
            f"{dep.name}=={verdict.version or dep.version}) and run `ftaudit inspect` on the "
            "wheel."
        )
    return _UNKNOWN_NEXT[verdict.incomplete]


def _groups(verdicts: Sequence[Verdict]) -> dict[tuple[Status, str | None], list[Verdict]]:
    out: dict[tuple[Status, str | None], list[Verdict]] = {}
    for v in verdicts:
        if v.status is not Status.READY:
            out.setdefault((v.status, v.use_version), []).append(v)
    return out


def _targets(verdicts: Sequence[Verdict]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.target.name for v in verdicts))


def _where(verdicts: Sequence[Verdict]) -> str:
    """'3.13t, 3.14t on linux-x86_64, windows-amd64'."""
    targets = ", ".join(_targets(verdicts))
    platforms = sorted({v.platform for v in verdicts})
    return f"{targets} on {', '.join(platforms)}"


def _upgrade(
    dep: Dependency,
    judged: str,
    use: str,
    where: str,
    verdicts: Sequence[Verdict],
    others: Mapping[str, PackageReport],
) -> Advice:
    first = min((v.first_ready for v in verdicts if v.first_ready), key=_version_key, default=use)
    blocked = _package_blockers(dep, first, others)
    if blocked and not _package_blockers(dep, use, others):
        first, blocked = use, []  # the newest ready release is one they all allow
    if blocked:
        # Another package's Requires-Dist rules the release out: no upgrade to advise.
        return Advice(
            kind="upgrade",
            targets=_targets(verdicts),
            text=(
                f"No upgrade of {dep.display_name} {judged} can be advised for {where}: "
                f"{first} is ready, but {_requiring(dep, blocked)} "
                f"{'rule' if len(blocked) > 1 else 'rules'} it out; "
                f"{'they' if len(blocked) > 1 else 'it'} must allow {first} first (a "
                "newer release of it that does, or going without it)." + _unread(dep, first)
            ),
        )
    text = f"Upgrade {dep.display_name} from {judged} to >= {first} for {where}"
    if first == use:
        text += f": {use} is the oldest release confirmed ready for it."
    else:
        text += f" (oldest release confirmed ready: {first}; newest: {use})."
    blockers = _excluding(dep, first)
    if blockers:
        text += " Blocked by " + "; ".join(
            f"{who} requiring {dep.display_name}{spec}" for who, spec in blockers
        )
        text += f": {'they' if len(blockers) > 1 else 'it'} must allow {first} first."
    text += _unread(dep, first)
    return Advice(kind="upgrade", text=text, targets=_targets(verdicts), version=first)


def _package_blockers(
    dep: Dependency, version: str, others: Mapping[str, PackageReport]
) -> list[tuple[str, str]]:
    """Other packages of the set whose requirement on `dep` rules `version` out (a
    requirement of the project's own, the project can change)."""
    return [(who, spec) for who, spec in _excluding(dep, version) if who in others]


def _requiring(dep: Dependency, blockers: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{who} requiring {dep.display_name}{spec}" for who, spec in blockers)


def _unread(dep: Dependency, version: str) -> str:
    """What could not be checked of a version the advice names."""
    if not dep.requirements_unknown:
        return ""
    who = ", ".join(dep.requirements_unknown)
    return (
        f" Whether {who} allow{'s' if len(dep.requirements_unknown) == 1 else ''} "
        f"{dep.display_name} {version} is unknown (metadata not read): check it first."
    )


def _version_key(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


def _excluding(dep: Dependency, version: str) -> list[tuple[str, str]]:
    """Requirements on `dep` (project lines or other packages) that rule `version` out."""
    out = []
    for who, spec in dep.requirements:
        try:
            if not SpecifierSet(spec).contains(Version(version), prereleases=True):
                out.append((who, spec))
        except (InvalidSpecifier, InvalidVersion):
            continue
    return out


def _isolate(
    pkg: PackageReport,
    use: str | None,
    verdicts: Sequence[Verdict],
    others: Mapping[str, PackageReport],
    import_sites: Mapping[str, Sequence[ImportSite]],
) -> Advice:
    dep = pkg.dependency
    where = _where(verdicts)
    culprits = [e.module for e in pkg.extensions if e.gil in (Gil.USED, Gil.UNDECLARED)]
    named = f" ({', '.join(culprits[:3])}{' and more' if len(culprits) > 3 else ''})"
    sites = _sites(dep.name, others, import_sites)
    version = f" {use}" if use else ""
    text = (
        f"Importing {dep.display_name}{version} re-enables the GIL for the whole process on "
        f"{where}{named if culprits else ''}. Keep it out of the main process's imports and "
        "use it only inside worker processes (concurrent.futures.ProcessPoolExecutor or "
        'multiprocessing, with the "spawn" or "forkserver" start method); code that must '
        "run in both modes can check sys._is_gil_enabled(). " + GIL_OVERRIDE
    )
    blocked = _package_blockers(dep, use, others) if use else []
    if use and blocked:
        # The release judged is another than the one in use: moving to it is advice too.
        text += (
            f" {use} is the release with a wheel for it, but {_requiring(dep, blocked)} "
            f"{'rule' if len(blocked) > 1 else 'rules'} it out."
        )
    if sites:
        text += f" The project imports it at {_site_list(sites)}."
    elif dep.required_by:
        text += (
            " The project does not import it itself; it comes in through "
            + ", ".join(_display(n, others) for n in dep.required_by)
            + "."
        )
    module = (pkg.import_names or (dep.name.replace("-", "_"),))[0]
    return Advice(
        kind="isolate",
        text=text,
        targets=_targets(verdicts),
        import_sites=sites,
        snippet=ISOLATE_SNIPPET.format(module=module),
    )


def _downgrade(
    dep: Dependency,
    judged: str,
    use: str,
    where: str,
    verdict: Verdict,
    others: Mapping[str, PackageReport],
) -> Advice:
    blocked = _package_blockers(dep, use, others)
    if blocked:
        return Advice(
            kind="downgrade",
            targets=_targets([verdict]),
            text=(
                f"No pin of {dep.display_name} can be advised for {where}: {judged} has "
                f"nothing for it and {use} is the newest release that is ready, but "
                f"{_requiring(dep, blocked)} {'rule' if len(blocked) > 1 else 'rules'} it "
                f"out. Build {judged} from source, or keep it in worker processes of a "
                "GIL-enabled interpreter."
            ),
        )
    held = [f"{v} ({_day(d)})" if d else v for v, d in verdict.held_back[:MAX_HELD_BACK]]
    more = len(verdict.held_back) - len(held)
    text = (
        f"Pin {dep.display_name}=={use} for {where}: {judged} has nothing for it and "
        f"{use}{_released(verdict.use_version_date)} is the newest release that is ready."
    )
    if held:
        text += f" The pin holds back {', '.join(held)}{f' and {more} more' if more else ''}"
        text += "; weigh that against keeping the newer release in worker processes."
    text += _unread(dep, use)
    return Advice(kind="downgrade", text=text, targets=_targets([verdict]), version=use)


def _build(
    dep: Dependency,
    judged: str,
    use: str | None,
    verdicts: Sequence[Verdict],
    others: Mapping[str, PackageReport],
) -> Advice:
    version = use or judged
    where = _where(verdicts)
    languages = next((v.build_languages for v in verdicts if v.build_languages), ())
    compilers = (
        f"compilers for its sources ({', '.join(languages)})"
        if languages
        else "the compilers its extensions are written for (C/C++, Rust, Fortran)"
    )
    return Advice(
        kind="build",
        text=(
            f"No wheel of {dep.display_name} {version} for {where}, only an sdist. Building "
            f"it needs {compilers}, "
            "the free-threaded interpreter's headers and its build dependencies "
            f"(pip install --no-binary {dep.name} {dep.name}=={version}). Whether the built "
            "extension needs the GIL is unknown until it is built: run `ftaudit inspect` on "
            "the wheel you build, or scan with --verify."
            + _gil_fallback(dep, version, verdicts, others)
        ),
        targets=_targets(verdicts),
        version=use,
    )


def _gil_fallback(
    dep: Dependency, version: str, verdicts: Sequence[Verdict], others: Mapping[str, PackageReport]
) -> str:
    """Another release's wheel, which installs but needs the GIL: an option and its cost."""
    other = next((v.gil_wheel for v in verdicts if v.gil_wheel), None)
    if other is None:
        return ""
    blocked = _package_blockers(dep, other, others)
    if blocked:
        return (
            f" {other} has a wheel (which needs the GIL), but {_requiring(dep, blocked)} "
            f"{'rule' if len(blocked) > 1 else 'rules'} it out."
        )
    move = "upgrade to" if _version_key(other) > _version_key(version) else "pin"
    return (
        f" Or {move} {other}, which has a wheel but needs the GIL: importing it re-enables "
        "the GIL for the whole process, so it belongs in worker processes."
    ) + _unread(dep, other)


def _replace(
    pkg: PackageReport,
    verdicts: Sequence[Verdict],
    others: Mapping[str, PackageReport],
    import_sites: Mapping[str, Sequence[ImportSite]],
) -> Advice:
    dep = pkg.dependency
    where = _where(verdicts)
    sites = _sites(dep.name, others, import_sites)
    text = f"Nothing of {dep.display_name} installs on {where}: no wheel, no sdist. " + (
        _extra_text(dep, others)
        if dep.through_extras
        else "Replace it, or run the code that needs it in separate processes of a "
        "GIL-enabled interpreter (a subprocess or a service the free-threaded process "
        "talks to)."
    )
    if sites:
        text += f" The project imports it at {_site_list(sites)}."
    return Advice(
        kind="replace",
        text=text,
        targets=_targets(verdicts),
        import_sites=sites,
    )


def _extra_text(dep: Dependency, others: Mapping[str, PackageReport]) -> str:
    """Which extras bring the package in, and the alternative extras beside them."""
    asked = []
    instead = []
    for parent, extra, alternatives in dep.through_extras:
        shown = _display(parent, others)
        asked.append(f"{shown}[{extra}]")
        instead += [f"{shown}[{a}]" for a in alternatives]
    text = (
        f"{dep.display_name} is installed only for {' and '.join(dict.fromkeys(asked))}: "
        f"drop {'that extra' if len(asked) == 1 else 'those extras'}"
    )
    if instead:
        text += f", or ask for {' or '.join(dict.fromkeys(instead))} instead"
    return text + "."


def _trap(
    dep: Dependency,
    status: Status,
    judged: str,
    use: str | None,
    where: str,
    verdict: Verdict,
) -> Advice | None:
    """An installer restricted to wheels would quietly install something nobody asked for:
    a release years older than the one judged, or a pre-release."""
    if status is Status.DOWNGRADE and use:
        years = _years_between(verdict.use_version_date, verdict.version_date)
        if years is not None and years >= TRAP_YEARS:
            return Advice(
                kind="resolver-trap",
                targets=_targets([verdict]),
                version=use,
                text=(
                    f"An installer that only takes wheels (pip --only-binary :all:, uv "
                    f"--no-build) installs {dep.display_name} {use} on {where}, a release "
                    f"from {_day(verdict.use_version_date)}, {years:.0f} years older than "
                    f"{judged}: almost certainly not what the project wants. Build {judged} "
                    "from source or isolate it instead of letting the resolver fall back."
                ),
            )
    moving = use if status is not Status.UNKNOWN else None  # an option only, for unknown
    for version in (moving, None if dep.locked else verdict.version):
        if version and _is_pre(version):
            return Advice(
                kind="resolver-trap",
                targets=_targets([verdict]),
                version=version,
                text=(
                    f"{dep.display_name} {version} is a pre-release: it is what {where} "
                    "would get because no final release fits; pin it knowingly or wait "
                    "for a final release."
                ),
            )
    return None


def _sites(
    name: str,
    others: Mapping[str, PackageReport],
    import_sites: Mapping[str, Sequence[ImportSite]],
) -> tuple[tuple[ImportSite, tuple[str, ...]], ...]:
    """Where the project imports `name` itself, then where it imports a package that
    pulls `name` in, with the chain from that package down to `name`."""
    out: list[tuple[ImportSite, tuple[str, ...]]] = []
    seen = {name}
    queue: list[tuple[str, tuple[str, ...]]] = [(name, (name,))]
    while queue and len(out) < MAX_SITES:
        node, chain = queue.pop(0)
        pkg = others.get(node)
        for module in _import_names(node, pkg):
            for site in import_sites.get(module, ()):
                out.append((site, tuple(_display(n, others) for n in chain)))
        if pkg is None:
            continue
        for parent in pkg.dependency.required_by:
            if parent not in seen:
                seen.add(parent)
                queue.append((parent, (parent, *chain)))
    return tuple(out[:MAX_SITES])


def _import_names(name: str, pkg: PackageReport | None) -> tuple[str, ...]:
    if pkg is not None and pkg.import_names:
        return pkg.import_names
    return (name.replace("-", "_"),)


def _site_list(sites: Sequence[tuple[ImportSite, tuple[str, ...]]]) -> str:
    parts = []
    for site, chain in sites[:5]:
        via = f" (via {' -> '.join(chain)})" if len(chain) > 1 else ""
        parts.append(f"{site.path}:{site.line}{via}")
    more = len(sites) - len(parts)
    return ", ".join(parts) + (f" and {more} more" if more else "")


def _display(name: str, others: Mapping[str, PackageReport]) -> str:
    pkg = others.get(name)
    return pkg.dependency.display_name if pkg else name


def _free_threading_classifier(pkg: PackageReport) -> str | None:
    for c in pkg.classifiers:
        if c.startswith("Programming Language :: Python :: Free Threading"):
            return c
    return None


def _released(date: str | None) -> str:
    return f" (released {_day(date)})" if date else ""


def _day(date: str | None) -> str:
    return (date or "")[:10]


def _years_between(older: str | None, newer: str | None) -> float | None:
    try:
        a = datetime.fromisoformat((older or "").replace("Z", "+00:00"))
        b = datetime.fromisoformat((newer or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return (b - a).days / 365.25


def _is_pre(version: str) -> bool:
    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return False
