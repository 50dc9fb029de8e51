"""The on-disk cache: index pages and inspection results in SQLite, artifacts as files.

Artifacts are stored under their sha256, so a file is never trusted by name; inspection
results are keyed by (artifact sha256, ftaudit version), so a new ftaudit re-reads
everything with its own, possibly better, readers.

Nothing read back is trusted either: a database SQLite calls damaged is started again
(with a one-line warning), a row of the wrong shape is dropped and recomputed, and a
cached artifact is checked against its sha256 before it is used (a truncated or altered
file is fetched again). Paths are derived only from validated hex digests.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import platformdirs

from ftaudit.errors import CacheError, IndexIntegrityError, InputError
from ftaudit.index.auth import redact_url

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY, etag TEXT, content_type TEXT, body BLOB, fetched REAL
);
CREATE TABLE IF NOT EXISTS facts (
    sha256 TEXT, tool_version TEXT, body TEXT, PRIMARY KEY (sha256, tool_version)
);
"""
_DB_NAME = "index.sqlite3"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# SQLite result codes of a damaged database: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGED_CODES = frozenset({11, 26})
_DAMAGED_WORDS = ("malformed", "not a database", "corrupt")
_HASH_CHUNK = 1024 * 1024

T = TypeVar("T")
Warn = Callable[[str], None]


def default_cache_dir() -> Path:
    env = os.environ.get("FTAUDIT_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("ftaudit"))


def _stderr_warning(message: str) -> None:
    # The command line passes its own; this is for other callers (benchmarks, tests).
    sys.stderr.write(f"ftaudit: warning: {message}\n")


@dataclass(frozen=True, slots=True)
class Page:
    body: bytes
    content_type: str
    etag: str | None
    fetched: float


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _DAMAGED_CODES
    text = str(exc).lower()
    return any(word in text for word in _DAMAGED_WORDS)


class Cache:
    """Thread-safe: one connection behind a lock (the work between calls dominates).

    Several processes may share one cache: SQLite serialises their writes (waiting up to
    30 s for a lock), and artifacts are written under a temporary name, then renamed.
    """

    def __init__(self, root: Path, *, warn: Warn = _stderr_warning) -> None:
        self.root = root
        self._warn = warn
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / "artifacts").mkdir(exist_ok=True)
        except OSError as exc:
            raise InputError(f"{root}: cannot use as cache directory ({exc.strerror})") from None
        self._lock = threading.Lock()
        self._checked: set[Path] = set()
        self._warned: set[str] = set()
        self._db = self._open(root / _DB_NAME)

    def _open(self, path: Path) -> sqlite3.Connection:
        try:
            return self._connect(path)
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise CacheError(f"{path}: cannot open the cache database ({exc})") from None
            self._warn_once(
                "db", f"{path}: the cache database is damaged ({exc}): starting it again"
            )
            self._remove_database(path)
            try:
                return self._connect(path)
            except sqlite3.DatabaseError as again:
                raise CacheError(f"{path}: cannot create the cache database ({again})") from None

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        try:
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    @staticmethod
    def _remove_database(path: Path) -> None:
        # Unlinking is safe beside another process that has it open: that one keeps its
        # own (damaged) copy until it too starts again.
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            except OSError as exc:
                raise CacheError(f"{path}: cannot remove the damaged cache ({exc})") from None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warn(message)

    def _run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """One database operation (the caller holds the lock). A damaged database is
        started again and the operation retried once; a locked one is a CacheError."""
        try:
            return op(self._db)
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise CacheError(f"{self.root / _DB_NAME}: {exc}") from None
            path = self.root / _DB_NAME
            self._warn_once(
                "db", f"{path}: the cache database is damaged ({exc}): starting it again"
            )
            self._db.close()
            self._remove_database(path)
            self._db = self._open(path)
            try:
                return op(self._db)
            except sqlite3.DatabaseError as again:
                raise CacheError(f"{path}: {again}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # index pages

    def page(self, url: str) -> Page | None:
        url = redact_url(url)  # no password is ever stored, not even as a key
        with self._lock:
            row = self._run(
                lambda db: db.execute(
                    "SELECT body, content_type, etag, fetched FROM pages WHERE url = ?", (url,)
                ).fetchone()
            )
            if row is None:
                return None
            body, content_type, etag, fetched = row
            if (
                isinstance(body, (bytes, str))
                and isinstance(content_type, str)
                and (etag is None or isinstance(etag, str))
                and isinstance(fetched, (int, float))
            ):
                raw = body.encode() if isinstance(body, str) else bytes(body)
                return Page(raw, content_type, etag, float(fetched))
            self._warn_once("page-row", f"{url}: dropping a damaged cached index page")
            self._drop_page(url)
            return None

    def has_pages(self) -> bool:
        with self._lock:
            return bool(self._run(lambda db: db.execute("SELECT 1 FROM pages LIMIT 1").fetchone()))

    def store_page(self, url: str, page: Page) -> None:
        url = redact_url(url)

        def op(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?)",
                    (url, page.etag, page.content_type, page.body, page.fetched),
                )

        with self._lock:
            self._run(op)

    def touch_page(self, url: str) -> None:
        url = redact_url(url)

        def op(db: sqlite3.Connection) -> None:
            with db:
                db.execute("UPDATE pages SET fetched = ? WHERE url = ?", (time.time(), url))

        with self._lock:
            self._run(op)

    def drop_page(self, url: str) -> None:
        url = redact_url(url)
        with self._lock:
            self._drop_page(url)

    def _drop_page(self, url: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            with db:
                db.execute("DELETE FROM pages WHERE url = ?", (url,))

        self._run(op)

    # inspection results

    def facts(self, sha256: str, tool_version: str) -> str | None:
        with self._lock:
            row = self._run(
                lambda db: db.execute(
                    "SELECT body FROM facts WHERE sha256 = ? AND tool_version = ?",
                    (sha256, tool_version),
                ).fetchone()
            )
        if row is None:
            return None
        if not isinstance(row[0], str):
            self.drop_facts(sha256, tool_version)
            return None
        return row[0]

    def store_facts(self, sha256: str, tool_version: str, body: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO facts VALUES (?, ?, ?)", (sha256, tool_version, body)
                )

        with self._lock:
            self._run(op)

    def drop_facts(self, sha256: str, tool_version: str, why: str | None = None) -> None:
        """Forget a result that does not decode (it is computed again)."""
        if why is not None:
            self._warn_once(
                "facts",
                f"cached results do not decode (e.g. {sha256[:16]}: {why}): reading the "
                "files again",
            )

        def op(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "DELETE FROM facts WHERE sha256 = ? AND tool_version = ?",
                    (sha256, tool_version),
                )

        with self._lock:
            self._run(op)

    # artifacts

    def artifact_path(self, url: str, filename: str, sha256: str | None) -> Path:
        """Where the artifact at `url` is kept: under its sha256, or, when the index gave
        none, under a hash of its URL."""
        key = artifact_key(url, sha256)
        safe = Path(filename).name  # never let an index-supplied name leave the cache
        if safe in ("", ".", ".."):
            raise IndexIntegrityError(f"{redact_url(url)}: {filename!r} is not a file name")
        return self.root / "artifacts" / key[:2] / key / safe

    def check_artifact(self, path: Path, sha256: str | None, size: int | None = None) -> bool:
        """Whether a cached artifact is whole: its sha256 (or, without one, its size) is
        what the index says. A damaged one is removed, so that it is fetched again."""
        with self._lock:
            if path in self._checked:
                return True
        try:
            if not path.is_file():
                return False
            if sha256 is not None:
                digest = hashlib.sha256()
                with path.open("rb") as fh:
                    for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
                        digest.update(chunk)
                whole = digest.hexdigest() == sha256.lower()
            else:
                whole = size is None or path.stat().st_size == size
            if not whole:
                self._warn(f"{path.name}: the cached copy is damaged: fetching it again")
                path.unlink(missing_ok=True)
                return False
        except OSError as exc:
            raise CacheError(f"{path}: cannot read the cached artifact ({exc.strerror})") from None
        with self._lock:
            self._checked.add(path)
        return True

    def forget_artifact(self, path: Path) -> None:
        """Remove a cached artifact found unreadable (it is fetched again)."""
        with self._lock:
            self._checked.discard(path)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise CacheError(f"{path}: cannot remove ({exc.strerror})") from None

    def info(self) -> dict[str, object]:
        artifacts = list((self.root / "artifacts").rglob("*.*"))
        size = sum(p.stat().st_size for p in artifacts if p.is_file())
        with self._lock:
            pages = self._run(lambda db: db.execute("SELECT COUNT(*) FROM pages").fetchone()[0])
            facts = self._run(lambda db: db.execute("SELECT COUNT(*) FROM facts").fetchone()[0])
        return {
            "path": str(self.root),
            "index_pages": pages,
            "inspections": facts,
            "artifacts": len(artifacts),
            "artifact_bytes": size,
        }

    def clear(self) -> None:
        def op(db: sqlite3.Connection) -> None:
            with db:
                db.execute("DELETE FROM pages")
                db.execute("DELETE FROM facts")

        with self._lock:
            self._run(op)
            self._checked.clear()
        shutil.rmtree(self.root / "artifacts", ignore_errors=True)
        (self.root / "artifacts").mkdir(exist_ok=True)


def artifact_key(url: str, sha256: str | None) -> str:
    """What names an artifact in the cache: its sha256, else a hash of its URL. A digest
    that is not 64 hex digits never becomes part of a path."""
    if sha256 is None or sha256 == "":
        return "url-" + hashlib.sha256(redact_url(url).encode("utf-8", "surrogatepass")).hexdigest()
    key = sha256.lower()
    if not _SHA256.fullmatch(key):
        shown = sha256 if len(sha256) <= 80 else sha256[:77] + "..."
        raise IndexIntegrityError(f"{redact_url(url)}: sha256 {shown!r} is not 64 hex digits")
    return key
