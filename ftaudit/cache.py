"""The on-disk cache: index pages and inspection results in SQLite, artifacts as files.

Artifacts are stored under their sha256, so a file is never trusted by name; inspection
results are keyed by (artifact sha256, ftaudit version), so a new ftaudit re-reads
everything with its own, possibly better, readers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from ftaudit.errors import InputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY, etag TEXT, content_type TEXT, body BLOB, fetched REAL
);
CREATE TABLE IF NOT EXISTS facts (
    sha256 TEXT, tool_version TEXT, body TEXT, PRIMARY KEY (sha256, tool_version)
);
"""


def default_cache_dir() -> Path:
    env = os.environ.get("FTAUDIT_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("ftaudit"))


@dataclass(frozen=True, slots=True)
class Page:
    body: bytes
    content_type: str
    etag: str | None
    fetched: float


class Cache:
    """Thread-safe: one connection behind a lock (the work between calls dominates)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / "artifacts").mkdir(exist_ok=True)
        except OSError as exc:
            raise InputError(f"{root}: cannot use as cache directory ({exc.strerror})") from None
        self._lock = threading.Lock()
        self._db = self._open(root / "index.sqlite3")

    def _open(self, path: Path) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            # A damaged cache is only a cache: start it again.
            path.unlink(missing_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            db.executescript(_SCHEMA)
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # index pages

    def page(self, url: str) -> Page | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body, content_type, etag, fetched FROM pages WHERE url = ?", (url,)
            ).fetchone()
        return Page(bytes(row[0]), row[1], row[2], row[3]) if row else None

    def has_pages(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM pages LIMIT 1").fetchone() is not None

    def store_page(self, url: str, page: Page) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?)",
                (url, page.etag, page.content_type, page.body, page.fetched),
            )

    def touch_page(self, url: str) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE pages SET fetched = ? WHERE url = ?", (time.time(), url))

    # inspection results

    def facts(self, sha256: str, tool_version: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM facts WHERE sha256 = ? AND tool_version = ?",
                (sha256, tool_version),
            ).fetchone()
        return str(row[0]) if row else None

    def store_facts(self, sha256: str, tool_version: str, body: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO facts VALUES (?, ?, ?)", (sha256, tool_version, body)
            )

    # artifacts

    def artifact_path(self, url: str, filename: str, sha256: str | None) -> Path:
        """Where the artifact at `url` is kept: under its sha256, or, when the index gave
        none, under a hash of its URL."""
        key = artifact_key(url, sha256)
        safe = Path(filename).name  # never let an index-supplied name leave the cache
        return self.root / "artifacts" / key[:2] / key / safe

    def info(self) -> dict[str, object]:
        artifacts = list((self.root / "artifacts").rglob("*.*"))
        size = sum(p.stat().st_size for p in artifacts if p.is_file())
        with self._lock:
            pages = self._db.execute("SELECT COUNT(*) FROM pages").fetchone()[0]
            facts = self._db.execute("SELECT COUNT(*) FROM facts").fetchone()[0]
        return {
            "path": str(self.root),
            "index_pages": pages,
            "inspections": facts,
            "artifacts": len(artifacts),
            "artifact_bytes": size,
        }

    def clear(self) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM pages")
            self._db.execute("DELETE FROM facts")
        shutil.rmtree(self.root / "artifacts", ignore_errors=True)
        (self.root / "artifacts").mkdir(exist_ok=True)


def artifact_key(url: str, sha256: str | None) -> str:
    """What names an artifact in the cache: its sha256, else a hash of its URL."""
    return sha256 or "url-" + hashlib.sha256(url.encode()).hexdigest()
