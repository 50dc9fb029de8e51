"""The scan: for every dependency, target and platform, find the artifact, read it, judge it.

This is the only stage that mixes I/O (index, downloads, reading binaries) with the pure
`assess`; it hands `assess` finished `Candidate`s. Work runs in a thread pool: on a
free-threaded interpreter the binary readers run in parallel too.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

from packaging.version import Version

from ftaudit import __version__
from ftaudit.assess import Candidate, Judgement, assess, judge_artifact
from ftaudit.cache import Cache
from ftaudit.codec import DecodeError, decode_facts, facts_to_json
from ftaudit.errors import (
    FtauditError,
    HashMismatch,
    IndexIntegrityError,
    InputError,
    PackageIndexError,
)
from ftaudit.index import select
from ftaudit.index.auth import redact_url
from ftaudit.index.http import Cancelled, fetch_artifact
from ftaudit.index.metadata import requires_dist
from ftaudit.index.remote import MIN_REMOTE_BYTES, RemoteFile
from ftaudit.index.simple import Index, IndexFile, NotOnIndex, Offline, failure_kind
from ftaudit.inspect import READER_REVISION
from ftaudit.inspect.artifact import (
    inspect_installed,
    inspect_wheel,
    is_binary_candidate,
    wheel_metadata,
    wheel_tags,
)
from ftaudit.model import (
    ArtifactFacts,
    Dependency,
    Environment,
    Evidence,
    Incomplete,
    Installed,
    PackageReport,
    Report,
    ScanStats,
    Source,
    Status,
    Target,
    Verdict,
)
from ftaudit.sources.plan import Plan
from ftaudit.targets import supported_tags

T = TypeVar("T")
_FACTS_KEY = f"{__version__}+r{READER_REVISION}"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSettings:
    targets: tuple[Target, ...]
    platforms: tuple[str, ...]
    offline: bool = False
    inspect: bool = True
    jobs: int = 8
    # Read remote wheels by HTTP ranges (only the members judged) where the server
    # serves them; False downloads every judged wheel whole.
    ranges: bool = True


class _Once:
    """Compute each key once, even when several threads ask for it at the same time."""

    def __init__(self) -> None:
        self._values: dict[object, object] = {}
        self._locks: dict[object, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: object, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                return self._values[key]  # type: ignore[return-value]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._values:
                    return self._values[key]  # type: ignore[return-value]
            value = compute()
            with self._lock:
                self._values[key] = value
            return value

    def peek(self, key: object) -> object | None:
        """The value computed for `key`, or None: nothing is computed."""
        with self._lock:
            return self._values.get(key)


class Scanner:
    def __init__(
        self,
        settings: ScanSettings,
        cache: Cache,
        index: Callable[[], Index],
    ) -> None:
        self.settings = settings
        self.cache = cache
        self._index_factory = index
        self._index: Index | None = None
        self._index_lock = threading.Lock()
        # Every index file judged, by file name: what --verify installs.
        self.judged: dict[str, IndexFile] = {}
        self._once = _Once()
        # What the scan cost, counted by the threads that do the work.
        self.tally: Counter[str] = Counter()
        self._tally_lock = threading.Lock()

    # --- the index is only set up when something needs it (an offline scan of pure
    # --- packages never asks pip for its configuration)

    def index(self) -> Index:
        with self._index_lock:
            if self._index is None:
                self._index = self._index_factory()
            return self._index

    def scan(
        self,
        plan: Plan,
        sources: Sequence[Source],
        installed: dict[str, Installed] | None = None,
        environment: Environment | None = None,
        notes: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> Report:
        """Judge every dependency the plan lists for each (target, platform)."""
        installed = installed or {}
        jobs = [
            (dep, target, platform)
            for target in self.settings.targets
            for platform in self.settings.platforms
            for dep in plan.get((target, platform), ())
        ]
        # Progress counts packages (each done when all its targets and platforms are).
        left = Counter(dep.name for dep, _t, _p in jobs)
        done = 0
        lock = threading.Lock()

        def run(job: tuple[Dependency, Target, str]) -> tuple[Verdict, ArtifactFacts | None]:
            nonlocal done
            dep, target, platform = job
            try:
                result = self._evaluate(dep, installed.get(dep.name), environment, target, platform)
                verdict, facts = result
                if facts is not None and verdict.artifact == facts.artifact:
                    result = (replace(verdict, artifact_read=facts.read), facts)
            except FtauditError as exc:
                # What _evaluate does not turn into a verdict is the run's failure (the
                # index could not even be set up), never a finding about the package.
                kind = failure_kind(exc) or Incomplete.INDEX
                result = (self._unknown(target, platform, str(exc), kind), None)
            with lock:
                left[dep.name] -= 1
                done += left[dep.name] == 0
                if progress is not None:
                    progress(dep.display_name, done, len(left))
            return result

        workers = max(1, min(self.settings.jobs, len(jobs) or 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ftaudit") as pool:
            results = list(pool.map(run, jobs))

        # One report per (name, version): a lock may hold two versions of a package for
        # different Pythons, and each is judged only where it is installed.
        by_key: dict[tuple[str, str | None], list[tuple[Verdict, ArtifactFacts | None]]] = {}
        deps: dict[tuple[str, str | None], Dependency] = {}
        for (dep, _t, _p), result in zip(jobs, results, strict=True):
            key = (dep.name, dep.version)
            by_key.setdefault(key, []).append(result)
            if key in deps:
                deps[key] = _merge_dependency(deps[key], dep)
            else:
                deps[key] = dep
        packages = []
        for key in sorted(deps, key=lambda k: (k[0], k[1] or "")):
            pairs = by_key[key]
            facts = next((f for _v, f in pairs if f is not None), None)
            packages.append(
                PackageReport(
                    dependency=deps[key],
                    verdicts=tuple(self._with_judged(v, facts) for v, _f in pairs),
                    extensions=facts.extensions if facts else (),
                    libraries=facts.libraries if facts else (),
                    import_names=facts.import_names if facts else (),
                    classifiers=facts.classifiers if facts else (),
                )
            )
        return Report(
            tool_version=__version__,
            targets=self.settings.targets,
            platforms=self.settings.platforms,
            sources=tuple(sources),
            packages=tuple(packages),
            notes=tuple(notes),
        )

    def _with_judged(self, verdict: Verdict, facts: ArtifactFacts | None) -> Verdict:
        """A verdict on an artifact of another release than the package's own (an older
        wheel, the release an unlocked requirement resolves to) carries that artifact's
        modules, so the report shows what was judged and --verify can import it."""
        if verdict.artifact is None or (facts is not None and facts.artifact == verdict.artifact):
            return verdict
        wheel = self.judged.get(verdict.artifact)
        other = self._once.peek(("wheel", wheel.url)) if wheel is not None else None
        if not isinstance(other, ArtifactFacts) or not other.extensions:
            return verdict
        return replace(verdict, extensions=other.extensions)

    # --- what the resolver asks (sources/resolve.py's Provider) ---------------------------

    def releases(self, name: str) -> dict[Version, select.Release]:
        return self._listing(name)[0]

    def _listing(
        self, name: str
    ) -> tuple[dict[Version, select.Release], tuple[tuple[Incomplete, str], ...]]:
        """The project's releases on the indexes that answered, and why others did not
        (a verdict that depends on what is absent cannot be given while there are any)."""

        def compute() -> tuple[dict[Version, select.Release], tuple[tuple[Incomplete, str], ...]]:
            listing = self.index().listing(name)
            return select.group_releases(name, listing.files), listing.gaps

        return self._once.get(("releases", name), compute)

    def requires(
        self, name: str, release: select.Release, target: Target, platform: str
    ) -> tuple[str, ...]:
        """Requires-Dist of the wheel the target installs from `release` (wheels of one
        release almost always agree; the target's own is the one that counts)."""
        wheel = select.best_wheel(release, target, platform, allow_yanked=True)
        if wheel is None:
            raise InputError(
                f"no wheel for {target.name} on {platform}: what it requires is known "
                "only after building it"
            )
        return self._once.get(
            ("requires", wheel.url),
            lambda: requires_dist(
                self.index().http,
                self.cache,
                wheel,
                self._metadata_of,
                offline=self.settings.offline,
            ),
        )

    def dependency_requires(
        self, dep: Dependency, target: Target, platform: str
    ) -> tuple[str, ...]:
        """Requires-Dist of what `dep` installs: the lock's file when it names one."""
        release = None
        if dep.files and all(f.url for f in dep.files):
            release = self._pinned_release(dep)
        if release is None:
            release = self.releases(dep.name).get(
                select.parse_version(dep.version or "") or Version("0")
            )
        if release is None:
            raise InputError(f"{dep.version} is not on {self.index().describe()}")
        return self.requires(dep.name, release, target, platform)

    # --- one package, one target, one platform -----------------------------------------

    def _evaluate(
        self,
        dep: Dependency,
        inst: Installed | None,
        env: Environment | None,
        target: Target,
        platform: str,
    ) -> tuple[Verdict, ArtifactFacts | None]:
        if dep.direct_reference:
            return Verdict(
                target=target,
                platform=platform,
                status=Status.BUILD,
                evidence=None,
                reason=f"not from an index ({redact_url(dep.direct_reference)}): it is built from "
                "source, and what the build declares is known only after building it",
            ), None
        version = dep.version or ""
        facts: ArtifactFacts | None = None
        current: Candidate | None = None
        if inst is not None and env is not None and _installed_fits(inst, env, target, platform):
            try:
                facts = self._installed_facts(inst)
            except FtauditError as exc:
                return self._unknown(target, platform, str(exc)), None
            current = Candidate(
                version=version,
                artifact=f"{inst.display_name}-{inst.version} (installed)",
                judgement=judge_artifact(
                    facts,
                    inspected=self.settings.inspect,
                    has_binaries=any(is_binary_candidate(f) for f in inst.files),
                    target=target,
                ),
            )
            if current.judgement is not None and current.judgement.status is Status.READY:
                return assess(target, platform, current), facts
        elif dep.files and all(f.url for f in dep.files):
            # The lock names the very files: judge those, whatever the index says today.
            facts, current = self._pinned_candidate(dep, target, platform)
            if current.judgement is not None and current.judgement.status is Status.READY:
                return assess(target, platform, current), facts
        try:
            releases, gaps = self._listing(dep.name)
            if dep.files and not all(f.url for f in dep.files):
                _check_pinned_hashes(dep, releases)
        except Offline:
            reason = "offline, and the index page is not in the cache"
            off = Incomplete.OFFLINE
            if current is not None:
                return assess(target, platform, current, lookup_error=reason, incomplete=off), facts
            return self._unknown(target, platform, _offline_reason(inst, reason), off), facts
        except NotOnIndex as exc:
            # Every index answered that it does not know the project.
            if current is not None:
                return assess(target, platform, current), facts
            return self._unknown(target, platform, str(exc)), facts
        except HashMismatch as exc:
            return self._unknown(target, platform, str(exc), Incomplete.INTEGRITY), None
        except (PackageIndexError, InputError) as exc:
            kind = failure_kind(exc) or Incomplete.INDEX
            reason = f"index lookup failed: {exc}"
            if current is not None:
                return assess(
                    target, platform, current, lookup_error=reason, incomplete=kind
                ), facts
            return self._unknown(target, platform, reason, kind), facts
        # Indexes that failed beside ones that answered: what is absent proves nothing.
        gap_kind = gaps[0][0] if gaps else None
        gap = f"index lookup incomplete: {gaps[0][1]}" if gaps else None
        partial = (gaps[0][0], gap) if gaps and gap else None
        # Absent from the indexes that answered is all a listing with gaps can say.
        searched = "the indexes that answered" if gaps else self.index().describe()

        # Not locked: the version is the resolver's choice, and the reason says so.
        chosen_version = None if dep.locked else dep.version
        if not dep.version:
            newest = select.newest_installable(releases, dep.specifier, target, platform)
            if newest is None:
                allowed = select.matching(releases, dep.specifier)
                if not allowed:
                    return self._unknown(
                        target,
                        platform,
                        f"not locked, and no release{_matching(dep.specifier)} is on "
                        f"{searched}" + (f"; {gap}" if gap else ""),
                        gap_kind,
                    ), facts
                # Releases the requirements allow exist; none installs on the target.
                newest = max(allowed, key=lambda r: (not r.version.is_prerelease, r.version))
            version = chosen_version = str(newest.version)

        parsed = select.parse_version(version)
        lookup_error, lookup_kind = None, None
        if current is None:
            release = releases.get(parsed) if parsed is not None else None
            if release is None:
                lookup_error = f"{version} is not on {searched}" + (f"; {gap}" if gap else "")
                lookup_kind = gap_kind
                current = Candidate(version=version)
            else:
                release = _restrict_to_pins(release, dep)
                wheel = select.best_wheel(release, target, platform, allow_yanked=True)
                if wheel is not None:
                    facts, judgement = self._judge_file(wheel, target)
                    current = Candidate(
                        version=version, artifact=wheel.filename, judgement=judgement
                    )
                    if judgement.status is Status.READY:
                        verdict = assess(target, platform, current)
                        return _dated(_versioned(verdict, chosen_version), releases, version), facts
                else:
                    has_sdist = select.sdist(release, target, allow_yanked=True) is not None
                    current = Candidate(
                        version=version,
                        sdist=has_sdist,
                        abi3_only=select.has_gil_stable_abi_wheel(release, platform),
                    )

        pre = parsed is not None and parsed.is_prerelease
        base = parsed if parsed is not None else Version("0")
        newer = self._first_with_wheel(
            select.later_releases(releases, base, pre=pre), target, platform
        )
        older = None
        build_from = None
        if current.judgement is None:
            newer_ready = (
                newer is not None
                and newer.judgement is not None
                and (newer.judgement.status is Status.READY)
            )
            if not newer_ready:
                older = self._first_with_wheel(
                    select.earlier_releases(releases, base, pre=pre), target, platform
                )
            if not current.sdist:
                for rel in select.later_releases(releases, base, pre=pre):
                    if select.sdist(rel, target) is not None:
                        build_from = Candidate(version=str(rel.version), sdist=True)
                        break
        verdict = assess(
            target,
            platform,
            current,
            newer=newer,
            older=older,
            build_from=build_from,
            lookup_error=lookup_error,
            incomplete=lookup_kind,
            gap=partial,
        )
        if verdict.status is Status.UPGRADE and verdict.use_version:
            first = self._first_ready(
                select.later_releases(releases, base, pre=pre),
                verdict.use_version,
                target,
                platform,
            )
            verdict = replace(verdict, first_ready=first)
        return _dated(_versioned(verdict, chosen_version), releases, version), facts

    def _first_ready(
        self, later: list[select.Release], newest_ready: str, target: Target, platform: str
    ) -> str:
        """The oldest release after the current one whose wheel for the target is
        confirmed ready.

        Searched by halving, on the assumption that a project does not go back to needing
        the GIL once a release declared it did not; that costs log2(n) inspections
        instead of n. An older release the reader cannot prove ready (`unknown`) counts
        as not ready, so the answer is always a release that is ready, at worst a later
        one than the very first.
        """
        top = select.parse_version(newest_ready)
        ordered = [
            r
            for r in sorted(later, key=lambda r: r.version)
            if top is not None
            and r.version <= top
            and select.best_wheel(r, target, platform) is not None
        ]
        if not ordered:
            return newest_ready
        lo, hi = 0, len(ordered) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            wheel = select.best_wheel(ordered[mid], target, platform)
            assert wheel is not None
            _facts, judgement = self._judge_file(wheel, target)
            if judgement.status is Status.READY:
                hi = mid
            else:
                lo = mid + 1
        return str(ordered[lo].version)

    def _pinned_release(self, dep: Dependency) -> select.Release | None:
        """The lock's own files of `dep`, as a release (the lock gives their URLs)."""
        files = [
            IndexFile(
                filename=f.filename,
                url=f.url or "",
                sha256=f.sha256,
                requires_python=None,
                yanked=False,
                size=f.size,
            )
            for f in dep.files
        ]
        return select.group_releases(dep.name, files).get(
            select.parse_version(dep.version or "") or Version("0")
        )

    def _pinned_candidate(
        self, dep: Dependency, target: Target, platform: str
    ) -> tuple[ArtifactFacts | None, Candidate]:
        version = dep.version or ""
        release = self._pinned_release(dep)
        if release is None:
            return None, Candidate(version=version)
        wheel = select.best_wheel(release, target, platform, allow_yanked=True)
        if wheel is None:
            return None, Candidate(version=version, sdist=bool(release.sdists))
        facts, judgement = self._judge_file(wheel, target)
        return facts, Candidate(version=version, artifact=wheel.filename, judgement=judgement)

    def _first_with_wheel(
        self, releases: list[select.Release], target: Target, platform: str
    ) -> Candidate | None:
        for rel in releases:
            wheel = select.best_wheel(rel, target, platform)
            if wheel is not None:
                _facts, judgement = self._judge_file(wheel, target)
                return Candidate(
                    version=str(rel.version), artifact=wheel.filename, judgement=judgement
                )
        return None

    def _unknown(
        self, target: Target, platform: str, reason: str, incomplete: Incomplete | None = None
    ) -> Verdict:
        return Verdict(
            target=target,
            platform=platform,
            status=Status.UNKNOWN,
            evidence=None,
            reason=reason,
            incomplete=incomplete,
        )

    # --- reading artifacts, once each ---------------------------------------------------

    def _installed_facts(self, inst: Installed) -> ArtifactFacts:
        name = f"{inst.display_name}-{inst.version} (installed)"

        def compute() -> ArtifactFacts:
            if not self.settings.inspect:
                return ArtifactFacts(
                    artifact=name, tags=inst.wheel_tags, classifiers=inst.classifiers
                )
            return inspect_installed(
                name,
                Path(inst.site_dir),
                inst.files,
                classifiers=inst.classifiers,
                tags=inst.wheel_tags,
            )

        return self._once.get(("installed", inst.name, inst.site_dir), compute)

    def _judge_file(
        self, wheel: IndexFile, target: Target
    ) -> tuple[ArtifactFacts | None, Judgement]:
        if not self.settings.inspect:
            tags = wheel_tags(wheel.filename)
            facts = ArtifactFacts(artifact=wheel.filename, tags=tags)
            pure = bool(tags) and all(t.endswith("-none-any") for t in tags)
            return facts, judge_artifact(facts, inspected=False, has_binaries=not pure)
        self.judged[wheel.filename] = wheel
        try:
            facts = self._once.get(("wheel", wheel.url), lambda: self._wheel_facts(wheel))
        except FtauditError as exc:
            # Not read: a download, cache or integrity failure is the run's (incomplete);
            # a file that is there but is no wheel is the package's (a finding).
            return None, Judgement(
                status=Status.UNKNOWN,
                evidence=Evidence.INSPECTED,
                reason=f"{wheel.filename}: {exc}",
                incomplete=failure_kind(exc),
            )
        return facts, judge_artifact(facts, target=target)

    def _wheel_facts(self, wheel: IndexFile) -> ArtifactFacts:
        if wheel.sha256:
            cached = self.cache.facts(wheel.sha256, _FACTS_KEY)
            if cached is not None:
                try:
                    known = decode_facts(cached)
                except DecodeError as exc:
                    self.cache.drop_facts(wheel.sha256, _FACTS_KEY, why=str(exc))
                else:
                    self._count("facts_cached")
                    return known
        ranged = self._ranged_facts(wheel)
        if ranged is not None:
            if wheel.sha256:
                self.cache.store_facts(wheel.sha256, _FACTS_KEY, facts_to_json(ranged))
            return ranged
        path = self._download(wheel)
        self._count("wheels_whole")
        try:
            facts = inspect_wheel(path, wheel.filename)
        except InputError:
            if wheel.sha256:
                raise  # the very bytes the index lists: the wheel itself is unreadable
            # No digest to check the cached copy against: it may be a truncated one.
            self.cache.forget_artifact(path)
            facts = inspect_wheel(self._download(wheel), wheel.filename)
        if wheel.sha256:
            self.cache.store_facts(wheel.sha256, _FACTS_KEY, facts_to_json(facts))
        return facts

    def _ranged_facts(self, wheel: IndexFile) -> ArtifactFacts | None:
        """The wheel read in place by HTTP ranges, or None to fetch it whole."""
        remote = self._remote(wheel)
        if remote is None:
            return None
        try:
            # a RawIOBase: everything zipfile asks of a binary file
            facts = inspect_wheel(cast(BinaryIO, remote), wheel.filename, remote.size)
        except Cancelled:
            raise
        except PackageIndexError:
            # Wrong ranges, or range bodies cut short after their retries: the whole
            # file (with its own retries and its sha256 check) still may do.
            return None
        self._count("wheels_by_ranges")
        return replace(facts, read="ranges")

    def stats(self, seconds: Sequence[tuple[str, float]] = ()) -> ScanStats:
        index = self._index
        with self._tally_lock:
            tally = dict(self.tally)
        return ScanStats(
            requests=index.http.requests if index is not None else 0,
            bytes_fetched=index.http.bytes_fetched if index is not None else 0,
            wheel_bytes=sum(w.size or 0 for w in list(self.judged.values())),
            wheels_by_ranges=tally.get("wheels_by_ranges", 0),
            wheels_whole=tally.get("wheels_whole", 0),
            facts_cached=tally.get("facts_cached", 0),
            pages_cached=index.pages_cached if index is not None else 0,
            seconds=tuple(seconds),
        )

    def _count(self, key: str) -> None:
        with self._tally_lock:
            self.tally[key] += 1

    def _metadata_of(self, wheel: IndexFile) -> bytes:
        """A wheel's METADATA when the index serves no PEP 658 file: read by ranges out
        of the remote wheel where it can be, else out of the downloaded file."""
        remote = self._remote(wheel)
        if remote is not None:
            try:
                return wheel_metadata(cast(BinaryIO, remote), wheel.filename, remote.size)
            except Cancelled:
                raise
            except PackageIndexError:
                pass
        return wheel_metadata(self._download(wheel), wheel.filename)

    def _remote(self, wheel: IndexFile) -> RemoteFile | None:
        """The wheel opened for range reads, or None when it is better (or only possible)
        fetched whole: offline, cached already, small, not over HTTP, no ranges served."""
        if wheel.integrity_error:
            raise IndexIntegrityError(wheel.integrity_error)
        if (
            not self.settings.ranges
            or self.settings.offline
            or not wheel.url.startswith(("http://", "https://"))
            or (wheel.size is not None and wheel.size < MIN_REMOTE_BYTES)
        ):
            return None
        cached = self.cache.artifact_path(wheel.url, wheel.filename, wheel.sha256)
        if self.cache.check_artifact(cached, wheel.sha256, wheel.size):
            return None  # the whole file is here, its sha256 checked
        try:
            remote = RemoteFile(self.index().http, wheel.url, wheel.size)
        except Cancelled:
            raise
        except PackageIndexError:
            return None
        return remote if remote.size >= MIN_REMOTE_BYTES else None

    def artifact_file(self, filename: str) -> Path | None:
        """The cached file of a judged artifact (downloaded now if only its facts were
        cached), or None when the scan judged no file of that name."""
        wheel = self.judged.get(filename)
        return self._download(wheel) if wheel is not None else None

    def _download(self, wheel: IndexFile) -> Path:
        if wheel.integrity_error:
            raise IndexIntegrityError(wheel.integrity_error)
        cached = self.cache.artifact_path(wheel.url, wheel.filename, wheel.sha256)
        # A cached copy is used only once its sha256 is checked; a damaged one is gone
        # after this, and fetched again.
        present = self.cache.check_artifact(cached, wheel.sha256, wheel.size)
        if self.settings.offline and not present:
            raise Offline("offline, and the wheel is not in the cache")
        return fetch_artifact(
            self.index().http, self.cache, wheel.url, wheel.filename, wheel.sha256
        )


def _matching(specifier: str) -> str:
    return f" matching {specifier}" if specifier else ""


def _versioned(verdict: Verdict, version: str | None) -> Verdict:
    if version is None:
        return verdict
    return replace(
        verdict,
        version=version,
        reason=f"{verdict.reason} (not locked: {version} is the newest release the "
        "requirements allow here)",
    )


def _dated(verdict: Verdict, releases: dict[Version, select.Release], version: str) -> Verdict:
    """The release dates the advice weighs: of the version judged, of the version to use,
    and for a downgrade, of each release it holds back."""
    judged = select.parse_version(version)
    use = select.parse_version(verdict.use_version or "") if verdict.use_version else None
    held: tuple[tuple[str, str | None], ...] = ()
    if verdict.status is Status.DOWNGRADE and use is not None:
        held = tuple(
            (str(v), select.release_date(releases[v]))
            for v in sorted(releases, reverse=True)
            if v > use and not v.is_prerelease
        )
    return replace(
        verdict,
        use_version_date=select.release_date(releases[use]) if use in releases else None,
        version_date=select.release_date(releases[judged]) if judged in releases else None,
        held_back=held,
    )


def _merge_dependency(a: Dependency, b: Dependency) -> Dependency:
    """The same package from two (target, platform) plans: who requires it in any."""
    return replace(
        a,
        direct=a.direct or b.direct,
        required_by=tuple(sorted(set(a.required_by) | set(b.required_by))),
    )


def _restrict_to_pins(release: select.Release, dep: Dependency) -> select.Release:
    """Only the files the lock or the requirement's hashes accept."""
    names = {f.filename for f in dep.files if f.filename}
    hashes = {h for f in dep.files for algo, h in f.hashes if algo == "sha256"}
    hashes |= {h for algo, h in dep.hashes if algo == "sha256"}
    if not names and not hashes:
        return release

    def accepted(f: IndexFile) -> bool:
        if names and f.filename in names:
            return True
        return bool(hashes) and not names and f.sha256 in hashes

    return select.Release(
        version=release.version,
        wheels=[(f, t) for f, t in release.wheels if accepted(f)],
        sdists=[f for f in release.sdists if accepted(f)],
    )


def _check_pinned_hashes(dep: Dependency, releases: dict[Version, select.Release]) -> None:
    """A file the lock pins by name must be the same bytes the index offers now."""
    offered = {
        f.filename: f
        for rel in releases.values()
        for f in (*(w for w, _tags in rel.wheels), *rel.sdists)
    }
    for pin in dep.files:
        found = offered.get(pin.filename)
        if found is None or not found.sha256 or not pin.sha256:
            continue
        if found.sha256 != pin.sha256:
            raise HashMismatch(
                f"{pin.filename}: the index offers sha256 {found.sha256}, the lock pins "
                f"{pin.sha256}: not inspecting a different file than the lock installs"
            )


def _offline_reason(inst: Installed | None, reason: str) -> str:
    if inst is not None and any(is_binary_candidate(f) for f in inst.files):
        return f"installed files are not built for the target; {reason}"
    return reason


def _installed_fits(inst: Installed, env: Environment, target: Target, platform: str) -> bool:
    """Whether the installed files are what the target would install.

    True when the environment is the target interpreter itself, when the installed wheel's
    tags are ones the target accepts (pure-Python wheels, abi3t), or when a distribution
    without wheel tags has no binaries at all.
    """
    if platform != env.platform:
        return bool(inst.wheel_tags) and all(t.endswith("-none-any") for t in inst.wheel_tags)
    if env.free_threaded and env.version[:2] == target.version:
        return True
    if inst.wheel_tags:
        accepted = set(supported_tags(target, platform))
        return any(t in accepted for t in inst.wheel_tags)
    return not any(is_binary_candidate(f) for f in inst.files)
