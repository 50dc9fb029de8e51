"""Getting an artifact's contents: one stage, one small interface.

`inspect/` reads members out of an open archive; where the bytes come from is decided
here, once per artifact: an installed distribution's files, a wheel already in the cache
(its sha256 checked), a remote wheel read in place by HTTP ranges, or one downloaded
whole. What reading found is kept by the artifact's sha256 (immutable), so a later scan
reads nothing again. `Scanner` asks for facts, metadata or a file and orders the stages;
it never sees how the bytes were had.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, cast

from ftaudit import __version__
from ftaudit.cache import Cache
from ftaudit.codec import (
    DecodeError,
    decode_facts,
    decode_sdist_facts,
    facts_to_json,
    sdist_facts_to_json,
)
from ftaudit.errors import IndexIntegrityError, InputError, PackageIndexError
from ftaudit.index.http import Cancelled, fetch_artifact
from ftaudit.index.remote import MIN_REMOTE_BYTES, RemoteFile
from ftaudit.index.simple import Index, IndexFile, Offline
from ftaudit.inspect import READER_REVISION
from ftaudit.inspect.artifact import inspect_installed, inspect_wheel, wheel_metadata
from ftaudit.inspect.sdist import inspect_sdist
from ftaudit.model import ArtifactFacts, Installed, SdistFacts
from ftaudit.once import Once

FACTS_KEY = f"{__version__}+r{READER_REVISION}"


class Artifacts:
    def __init__(
        self,
        cache: Cache,
        index: Callable[[], Index],
        *,
        offline: bool = False,
        inspect: bool = True,
        ranges: bool = True,
    ) -> None:
        self.cache = cache
        self._index = index
        self.offline = offline
        self.inspect = inspect
        # Read remote wheels by HTTP ranges where the server serves them; False
        # downloads every wheel whole.
        self.ranges = ranges
        self._once = Once()
        self._tally: Counter[str] = Counter()
        self._tally_lock = threading.Lock()

    # --- what the scan asks -------------------------------------------------------------

    def installed_facts(self, inst: Installed) -> ArtifactFacts:
        name = f"{inst.display_name}-{inst.version} (installed)"

        def compute() -> ArtifactFacts:
            if not self.inspect:
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

    def wheel_facts(self, wheel: IndexFile) -> ArtifactFacts:
        return self._once.get(("wheel", wheel.url), lambda: self._wheel_facts(wheel))

    def known_wheel_facts(self, wheel: IndexFile) -> ArtifactFacts | None:
        """What reading `wheel` found, if it has been read in this run (nothing is read)."""
        found = self._once.peek(("wheel", wheel.url))
        return found if isinstance(found, ArtifactFacts) else None

    def sdist_facts(self, sdist: IndexFile) -> SdistFacts:
        return self._once.get(("sdist", sdist.url), lambda: self._sdist_facts(sdist))

    def metadata(self, wheel: IndexFile) -> bytes:
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
        return wheel_metadata(self.file(wheel), wheel.filename)

    def file(self, wheel: IndexFile) -> Path:
        """The artifact whole, in the cache, its sha256 checked (downloaded if needed)."""
        if wheel.integrity_error:
            raise IndexIntegrityError(wheel.integrity_error)
        cached = self.cache.artifact_path(wheel.url, wheel.filename, wheel.sha256)
        # A cached copy is used only once its sha256 is checked; a damaged one is gone
        # after this, and fetched again.
        present = self.cache.check_artifact(cached, wheel.sha256, wheel.size)
        if self.offline and not present:
            raise Offline("offline, and the wheel is not in the cache")
        return fetch_artifact(
            self._index().http, self.cache, wheel.url, wheel.filename, wheel.sha256
        )

    def counts(self) -> dict[str, int]:
        """Wheels read by ranges, whole, or answered by the cache, so far."""
        with self._tally_lock:
            return dict(self._tally)

    # --- how ----------------------------------------------------------------------------

    def _count(self, key: str) -> None:
        with self._tally_lock:
            self._tally[key] += 1

    def _sdist_facts(self, sdist: IndexFile) -> SdistFacts:
        key = f"{FACTS_KEY}+sdist"
        if sdist.sha256:
            cached = self.cache.facts(sdist.sha256, key)
            if cached is not None:
                try:
                    return decode_sdist_facts(cached)
                except DecodeError as exc:
                    self.cache.drop_facts(sdist.sha256, key, why=str(exc))
        facts = inspect_sdist(self.file(sdist), sdist.filename)
        if sdist.sha256:
            self.cache.store_facts(sdist.sha256, key, sdist_facts_to_json(facts))
        return facts

    def _wheel_facts(self, wheel: IndexFile) -> ArtifactFacts:
        if wheel.sha256:
            cached = self.cache.facts(wheel.sha256, FACTS_KEY)
            if cached is not None:
                try:
                    known = decode_facts(cached)
                except DecodeError as exc:
                    self.cache.drop_facts(wheel.sha256, FACTS_KEY, why=str(exc))
                else:
                    self._count("facts_cached")
                    return known
        facts = self._ranged_facts(wheel)
        if facts is None:
            path = self.file(wheel)
            self._count("wheels_whole")
            try:
                facts = inspect_wheel(path, wheel.filename)
            except InputError:
                if wheel.sha256:
                    raise  # the very bytes the index lists: the wheel itself is unreadable
                # No digest to check the cached copy against: it may be a truncated one.
                self.cache.forget_artifact(path)
                facts = inspect_wheel(self.file(wheel), wheel.filename)
        if wheel.sha256:
            self.cache.store_facts(wheel.sha256, FACTS_KEY, facts_to_json(facts))
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

    def _remote(self, wheel: IndexFile) -> RemoteFile | None:
        """The wheel opened for range reads, or None when it is better (or only possible)
        fetched whole: offline, cached already, small, not over HTTP, no ranges served."""
        if wheel.integrity_error:
            raise IndexIntegrityError(wheel.integrity_error)
        if (
            not self.ranges
            or self.offline
            or not wheel.url.startswith(("http://", "https://"))
            or (wheel.size is not None and wheel.size < MIN_REMOTE_BYTES)
        ):
            return None
        cached = self.cache.artifact_path(wheel.url, wheel.filename, wheel.sha256)
        if self.cache.check_artifact(cached, wheel.sha256, wheel.size):
            return None  # the whole file is here, its sha256 checked
        try:
            remote = RemoteFile(self._index().http, wheel.url, wheel.size)
        except Cancelled:
            raise
        except PackageIndexError:
            return None
        return remote if remote.size >= MIN_REMOTE_BYTES else None
