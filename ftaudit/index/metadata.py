"""A release's dependencies (Requires-Dist) without installing or building anything.

From the index's copy of the wheel's METADATA (PEP 658/714) when it serves one, else out
of the wheel itself (downloaded into the artifact cache, read from the zip). Parsed
answers are kept in the cache under the file's sha256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from packaging.metadata import parse_email

from ftaudit.cache import Cache, artifact_key
from ftaudit.errors import HashMismatch
from ftaudit.index.http import Http
from ftaudit.index.simple import IndexFile

_CACHE_KEY = "requires-dist/1"
MAX_METADATA_BYTES = 16 * 1024 * 1024


def requires_dist(
    http: Http,
    cache: Cache,
    wheel: IndexFile,
    metadata_of: Callable[[IndexFile], bytes],
    *,
    offline: bool,
) -> tuple[str, ...]:
    """The Requires-Dist entries of `wheel`, exactly as written (markers included).

    `metadata_of` reads the wheel's own METADATA when the index serves no metadata file
    for it."""
    key = artifact_key(wheel.url, wheel.sha256)
    cached = cache.facts(key, _CACHE_KEY)
    if cached is not None:
        found = _decode(cached)
        if found is not None:
            return found
        cache.drop_facts(key, _CACHE_KEY, why="not an array of strings")
    raw = _metadata_bytes(http, wheel, metadata_of, offline=offline)
    parsed, _unparsed = parse_email(raw)
    requires = tuple(parsed.get("requires_dist") or ())
    cache.store_facts(key, _CACHE_KEY, json.dumps(requires))
    return requires


def _decode(text: str) -> tuple[str, ...] | None:
    """A cached Requires-Dist list, or None when the row is not one (damaged)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _metadata_bytes(
    http: Http, wheel: IndexFile, metadata_of: Callable[[IndexFile], bytes], *, offline: bool
) -> bytes:
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
    return metadata_of(wheel)
