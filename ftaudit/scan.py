"""The scan: for every dependency, target and platform, find the artifact, read it, judge it.

This is the only stage that mixes I/O (index, downloads, reading binaries) with the pure
`assess`; it hands `assess` finished `Candidate`s. Work runs in a thread pool: on a
free-threaded interpreter the binary readers run in parallel too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from packaging.version import Version

from ftaudit import __version__
from ftaudit.assess import Candidate, Judgement, assess, judge_artifact
from ftaudit.cache import Cache
from ftaudit.codec import facts_from_dict, facts_to_dict
from ftaudit.errors import FtauditError, InputError, PackageIndexError
from ftaudit.index import select
from ftaudit.index.http import fetch_artifact
from ftaudit.index.simple import Index, IndexFile, NotOnIndex, Offline
from ftaudit.inspect import READER_REVISION
from ftaudit.inspect.artifact import (
    inspect_installed,
    inspect_wheel,
    is_binary_candidate,
    wheel_tags,
)
from ftaudit.model import (
    ArtifactFacts,
    Dependency,
    Environment,
    Evidence,
    Installed,
    PackageReport,
    Report,
    Source,
    Status,
    Target,
    Verdict,
)
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


class Scanner:
    def __init__(
        self,
        settings: ScanSettings,
        cache: Cache,
        index: Callable[[], Index],
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self._index_factory = index
        self._index: Index | None = None
        self._index_lock = threading.Lock()
        self._progress = progress
        self._once = _Once()

    # --- the index is only set up when something needs it (an offline scan of pure
    # --- packages never asks pip for its configuration)

    def index(self) -> Index:
        with self._index_lock:
            if self._index is None:
                self._index = self._index_factory()
            return self._index

    def scan(
        self,
        dependencies: Sequence[Dependency],
        sources: Sequence[Source],
        installed: dict[str, Installed] | None = None,
        environment: Environment | None = None,
    ) -> Report:
        installed = installed or {}
        jobs = [
            (dep, target, platform)
            for dep in dependencies
            for target in self.settings.targets
            for platform in self.settings.platforms
        ]
        done = 0
        lock = threading.Lock()

        def run(job: tuple[Dependency, Target, str]) -> tuple[Verdict, ArtifactFacts | None]:
            nonlocal done
            dep, target, platform = job
            result = self._evaluate(dep, installed.get(dep.name), environment, target, platform)
            with lock:
                done += 1
                if self._progress is not None:
                    self._progress(dep.display_name, done, len(jobs))
            return result

        workers = max(1, min(self.settings.jobs, len(jobs) or 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ftaudit") as pool:
            results = list(pool.map(run, jobs))

        by_dep: dict[str, list[tuple[Verdict, ArtifactFacts | None]]] = {}
        for (dep, _t, _p), result in zip(jobs, results, strict=True):
            by_dep.setdefault(dep.name, []).append(result)
        packages = []
        for dep in dependencies:
            pairs = by_dep.get(dep.name, [])
            facts = next((f for _v, f in pairs if f is not None), None)
            packages.append(
                PackageReport(
                    dependency=dep,
                    verdicts=tuple(v for v, _f in pairs),
                    extensions=facts.extensions if facts else (),
                    libraries=facts.libraries if facts else (),
                )
            )
        return Report(
            tool_version=__version__,
            targets=self.settings.targets,
            platforms=self.settings.platforms,
            sources=tuple(sources),
            packages=tuple(packages),
        )

    # --- one package, one target, one platform -----------------------------------------

    def _evaluate(
        self,
        dep: Dependency,
        inst: Installed | None,
        env: Environment | None,
        target: Target,
        platform: str,
    ) -> tuple[Verdict, ArtifactFacts | None]:
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
        try:
            releases = select.group_releases(dep.name, self.index().files(dep.name))
        except Offline:
            reason = "offline, and the index page is not in the cache"
            if current is not None:
                return assess(target, platform, current, lookup_error=reason), facts
            return self._unknown(target, platform, _offline_reason(inst, reason)), facts
        except NotOnIndex as exc:
            if current is not None:
                return assess(target, platform, current), facts
            return self._unknown(target, platform, str(exc)), facts
        except (PackageIndexError, InputError) as exc:
            if current is not None:
                return assess(target, platform, current, lookup_error=str(exc)), facts
            return self._unknown(target, platform, f"index lookup failed: {exc}"), facts

        parsed = select.parse_version(version)
        lookup_error = None
        if current is None:
            release = releases.get(parsed) if parsed is not None else None
            if release is None:
                lookup_error = f"{version} is not on {self.index().describe()}"
                current = Candidate(version=version)
            else:
                wheel = select.best_wheel(release, target, platform, allow_yanked=True)
                if wheel is not None:
                    facts, judgement = self._judge_file(wheel, target)
                    current = Candidate(
                        version=version, artifact=wheel.filename, judgement=judgement
                    )
                    if judgement.status is Status.READY:
                        return assess(target, platform, current), facts
                else:
                    has_sdist = select.sdist(release, target, allow_yanked=True) is not None
                    current = Candidate(version=version, sdist=has_sdist)

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
        )
        return verdict, facts

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

    def _unknown(self, target: Target, platform: str, reason: str) -> Verdict:
        return Verdict(
            target=target, platform=platform, status=Status.UNKNOWN, evidence=None, reason=reason
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
        try:
            facts = self._once.get(("wheel", wheel.url), lambda: self._wheel_facts(wheel))
        except FtauditError as exc:
            return None, Judgement(
                status=Status.UNKNOWN,
                evidence=Evidence.INSPECTED,
                reason=f"{wheel.filename}: {exc}",
            )
        return facts, judge_artifact(facts, target=target)

    def _wheel_facts(self, wheel: IndexFile) -> ArtifactFacts:
        if wheel.sha256:
            cached = self.cache.facts(wheel.sha256, _FACTS_KEY)
            if cached is not None:
                return facts_from_dict(json.loads(cached))
        path = self._download(wheel)
        facts = inspect_wheel(path, wheel.filename)
        if wheel.sha256:
            self.cache.store_facts(wheel.sha256, _FACTS_KEY, json.dumps(facts_to_dict(facts)))
        return facts

    def _download(self, wheel: IndexFile) -> Path:
        cached = self.cache.artifact_path(wheel.url, wheel.filename, wheel.sha256)
        if self.settings.offline and not cached.is_file():
            raise Offline("offline, and the wheel is not in the cache")
        return fetch_artifact(
            self.index().http, self.cache, wheel.url, wheel.filename, wheel.sha256
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
