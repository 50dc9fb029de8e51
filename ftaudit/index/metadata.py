"""A release's dependencies (Requires-Dist) without installing or building anything.

From the index's copy of the wheel's METADATA (PEP 658/714) when it serves one, else out
of the wheel itself (downloaded into the artifact cache, read from the zip). Parsed
answers are kept in the cache under the file's sha256.
"""

from __future__ import annotations

import hashlib
import json

from packaging.metadata import parse_email

from ftaudit.cache import Cache
from ftaudit.errors import HashMismatch
from ftaudit.index.http import Http, fetch_artifact
from ftaudit.index.simple import IndexFile, Offline
from ftaudit.inspect.artifact import wheel_metadata

_CACHE_KEY = "requires-dist/1"
MAX_METADATA_BYTES = 16 * 1024 * 1024


def requires_dist(http: Http, cache: Cache, wheel: IndexFile, *, offline: bool) -> tuple[str, ...]:
    """The Requires-Dist entries of `wheel`, exactly as written (markers included)."""
    key = wheel.sha256 or "url-" + hashlib.sha256(wheel.url.encode()).hexdigest()
    cached = cache.facts(key, _CACHE_KEY)
    if cached is not None:
        return tuple(json.loads(cached))
    raw = _metadata_bytes(http, cache, wheel, offline=offline)
    parsed, _unparsed = parse_email(raw)
    requires = tuple(parsed.get("requires_dist") or ())
    cache.store_facts(key, _CACHE_KEY, json.dumps(requires))
    return requires


def _metadata_bytes(http: Http, cache: Cache, wheel: IndexFile, *, offline: bool) -> bytes:
    if wheel.core_metadata is not None and not offline:
        resp = http.get(wheel.url.split("#", 1)[0] + ".metadata")
        if resp.status == 200 and len(resp.body) <= MAX_METADATA_BYTES:
            digest = hashlib.sha256(resp.body).hexdigest()
            if wheel.core_metadata and digest != wheel.core_metadata:
                raise HashMismatch(
                    f"{wheel.filename}.metadata: sha256 {digest} does not match the "
                    f"index's {wheel.core_metadata}"
                )
            return resp.body
        # An index that announces metadata it does not serve: the wheel still has it.
    path = cache.artifact_path(wheel.url, wheel.filename, wheel.sha256)
    if offline and not path.is_file():
        raise Offline(f"offline, and {wheel.filename} is not in the cache")
    path = fetch_artifact(http, cache, wheel.url, wheel.filename, wheel.sha256)
    return wheel_metadata(path, wheel.filename)
