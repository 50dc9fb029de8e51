"""What the packages that require a problem package allow of it, and whether it comes in
only through their extras: the check every version the advice names goes through.

Locks that record specifiers on their edges (poetry.lock, pdm.lock), resolved
requirements and environments already say what each requirer allows; for the others
(uv.lock's edges, Pipfile.lock, pylock.toml) the requiring package's own Requires-Dist is
read through the callable the scan gives (the index's metadata, cached), only for the
packages that need it: those whose advice would name a version, and problem packages the
project does not ask for itself (is every requirement on them behind an extra?).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ftaudit.errors import FtauditError, first_line
from ftaudit.index.simple import failure_kind
from ftaudit.model import Dependency, Installed, PackageReport, Report, Status, Target, Verdict
from ftaudit.sources.markers import extras_named, holds, marker_environment


def with_dependents(
    report: Report,
    requires_of: Callable[[Dependency, Target, str], tuple[str, ...]],
    installed: Mapping[str, Installed] | None = None,
    *,
    jobs: int = 8,
) -> Report:
    """The report with, on each problem package, what its requirers allow of it
    (`requirements`), whose requirement could not be read (`requirements_unknown`, one
    counted note per kind of failure) and the extras it is installed only for
    (`through_extras`). `requires_of` gives a package's Requires-Dist; an installed
    environment's own metadata is used first."""
    others = {p.dependency.name: p for p in report.packages}
    failed: dict[str, tuple[str, set[str]]] = {}  # why -> (example, who)
    lock = threading.Lock()

    def one(pkg: PackageReport) -> PackageReport:
        dep = pkg.dependency
        problems = [
            v for v in pkg.verdicts if v.status is not Status.READY and v.incomplete is None
        ]
        named = [v for v in problems if v.use_version or v.gil_wheel or v.first_ready]
        have = {who for who, _spec in dep.requirements}
        parents = [p for p in dep.required_by if p in others]
        missing = [p for p in parents if p not in have] if named else []
        extras_wanted = bool(problems) and not dep.direct and bool(parents)
        ask = parents if extras_wanted else missing
        if not ask:
            return pkg
        verdict = (named or problems)[0]
        asks, unknown = set(dep.requirements), []
        through: list[tuple[str, str, tuple[str, ...]]] = []
        for parent in ask:
            parent_dep = others[parent].dependency
            try:
                requires = (
                    installed[parent].requires
                    if installed and parent in installed
                    else requires_of(parent_dep, verdict.target, verdict.platform)
                )
            except FtauditError as exc:
                unknown.append(parent)
                kind = failure_kind(exc)
                with lock:
                    entry = failed.setdefault(
                        kind.value if kind is not None else "no metadata",
                        (first_line(exc), set()),
                    )
                    entry[1].add(parent_dep.display_name)
                continue
            on_it = _requirements_on(dep.name, requires, verdict)
            if parent in missing:
                asks.update((parent, str(r.specifier)) for r in on_it if str(r.specifier))
            through.extend(_through_extras(parent, on_it, requires))
        only_extras = extras_wanted and not unknown and _every_parent(parents, through)
        return replace(
            pkg,
            dependency=replace(
                dep,
                requirements=tuple(sorted(asks)),
                requirements_unknown=tuple(sorted(unknown)) if named else (),
                through_extras=tuple(through) if only_extras else (),
            ),
        )

    workers = max(1, min(jobs, len(report.packages) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ftaudit") as pool:
        packages = tuple(pool.map(one, report.packages))
    notes = list(report.notes)
    for why, (example, who) in sorted(failed.items()):
        names = sorted(who)
        notes.append(
            f"what {len(names)} packages require could not be read ({why}: e.g. "
            f"{example}): {_listed(names)}"
        )
    return replace(report, packages=packages, notes=tuple(notes))


def _requirements_on(name: str, requires: Sequence[str], verdict: Verdict) -> list[Requirement]:
    """The requirements in a Requires-Dist list on `name` that apply to the verdict's
    target and platform (one behind an extra counts: the source installed it for one)."""
    env = marker_environment(verdict.target, verdict.platform)
    out = []
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) == name and holds(req.marker, env, extras_named(req.marker)):
            out.append(req)
    return out


def _through_extras(
    parent: str, on_it: Sequence[Requirement], requires: Sequence[str]
) -> list[tuple[str, str, tuple[str, ...]]]:
    """(parent, extra, alternatives) for each extra of `parent` that asks for the package,
    or nothing when any requirement on it is unconditional. An alternative is another
    extra of the parent asking for another package on the same terms (psycopg's
    ``binary`` and ``c``: the same pin, the same marker but for the extra)."""
    out = []
    for req in on_it:
        extras = extras_named(req.marker)
        if not extras:
            return []
        terms = (str(req.specifier), _without_extra(req.marker))
        for extra in extras:
            alternatives = []
            for text in requires:
                try:
                    other = Requirement(text)
                except InvalidRequirement:
                    continue
                if canonicalize_name(other.name) == canonicalize_name(req.name):
                    continue
                for alt in extras_named(other.marker):
                    same = (str(other.specifier), _without_extra(other.marker)) == terms
                    if alt != extra and same and alt not in alternatives:
                        alternatives.append(alt)
            out.append((parent, extra, tuple(alternatives)))
    return out


def _every_parent(parents: Sequence[str], through: Sequence[tuple[str, str, object]]) -> bool:
    return bool(through) and set(parents) <= {p for p, _e, _a in through}


_EXTRA_CLAUSE = re.compile(r"""extra\s*==\s*["'][^"']*["']""")


def _without_extra(marker: object) -> str:
    """A marker's text with its `extra == "..."` clauses taken out (for comparing)."""
    text = _EXTRA_CLAUSE.sub("", str(marker or ""))
    text = re.sub(r"\(\s*\)", "", text)
    return re.sub(r"^\s*(and|or)\s+|\s+(and|or)\s*$|\s+(and|or)\s+(?=(and|or)\b)", "", text.strip())


def _listed(names: Sequence[str], limit: int = 8) -> str:
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")
