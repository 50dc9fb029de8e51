"""The Simple Repository API: PEP 691 JSON, falling back to PEP 503 HTML.

Project pages are cached; with `offline`, only the cache answers. Several indexes are
merged as pip merges them (every file from every index; the first index's copy of a
file name wins).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from packaging.utils import canonicalize_name

from ftaudit.cache import Cache, Page
from ftaudit.errors import (
    CacheError,
    HashMismatch,
    IndexIntegrityError,
    PackageIndexError,
    UsageError,
)
from ftaudit.index.auth import redact_url
from ftaudit.index.http import Http, Unreachable
from ftaudit.model import Incomplete

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
PAGE_TTL = 600.0  # seconds before a cached project page is revalidated
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None
    requires_python: str | None
    yanked: bool
    upload_time: str | None = None
    size: int | None = None
    # PEP 658/714: the index serves the wheel's METADATA at `url + ".metadata"`; the
    # value is its sha256, or "" when the index gives no hash.
    core_metadata: str | None = None
    # Why the index's own record of the file cannot be trusted (a digest that is not a
    # sha256): the file is then neither fetched nor judged.
    integrity_error: str | None = None


class NotOnIndex(PackageIndexError):
    """Every configured index answered, and none knows the project."""


class Offline(PackageIndexError):
    """Offline and nothing cached for this request."""


class PartialListing(PackageIndexError):
    """Some indexes answered, others failed: what they list is not all there is."""


@dataclass(frozen=True, slots=True)
class Listing:
    """A project's files on every index that answered, and what kept the rest out.

    With `gaps`, a file an installer would pick may be missing: a verdict that depends on
    what is absent (no wheel, no release) cannot be given from it.
    """

    files: tuple[IndexFile, ...]
    gaps: tuple[tuple[Incomplete, str], ...] = ()


def failure_kind(exc: BaseException) -> Incomplete | None:
    """What kind of run failure an error is; None for one that is a finding about the
    package itself (an unreadable wheel, a lock that pins a missing file)."""
    if isinstance(exc, Offline):
        return Incomplete.OFFLINE
    if isinstance(exc, (HashMismatch, IndexIntegrityError)):
        return Incomplete.INTEGRITY
    if isinstance(exc, CacheError):
        return Incomplete.CACHE
    if isinstance(exc, Unreachable):
        return Incomplete.NETWORK
    if isinstance(exc, PartialListing):
        return Incomplete.INDEX
    if isinstance(exc, PackageIndexError):
        return Incomplete.INDEX
    return None


class Index:
    def __init__(self, urls: tuple[str, ...], http: Http, cache: Cache, *, offline: bool) -> None:
        for url in urls:
            try:
                urlsplit(url).port  # noqa: B018 - a port that is not a number raises only here
            except ValueError as exc:
                # pip's own configuration may hold it: every lookup fails, and says why.
                shown = redact_url(url)
                raise PackageIndexError(f"invalid index URL {shown!r} ({exc})") from None
        # from here on the URLs are redacted; the credentials stay with `http`
        self.urls = tuple(http.remember(u) for u in urls)
        self.http = http
        self.cache = cache
        self.offline = offline
        self.page_ttl = _page_ttl()
        self.pages_cached = 0  # answered by the cache: fresh, or revalidated unchanged
        self._count_lock = threading.Lock()

    def describe(self) -> str:
        return ", ".join(_host(u) for u in self.urls)

    def files(self, project: str) -> list[IndexFile]:
        """Every file of the project; an index that fails fails the call, even when
        others answered (a partial answer is only for callers that say so: `listing`)."""
        listing = self.listing(project)
        if listing.gaps:
            raise PartialListing(listing.gaps[0][1])
        return list(listing.files)

    def listing(self, project: str) -> Listing:
        """The project's files on every index; raises when none answered with a page
        (NotOnIndex only when every one answered that it does not know the project)."""
        name = canonicalize_name(project)
        if self.offline and not self.urls:
            raise Offline(f"offline, and no cached index page for {name}")
        merged: dict[str, IndexFile] = {}
        found = False
        failures: list[PackageIndexError] = []
        gaps: list[tuple[Incomplete, str]] = []
        for base in self.urls:
            try:
                page = self._project(base, name)
            except PackageIndexError as exc:
                failures.append(exc)
                kind = failure_kind(exc) or Incomplete.INDEX
                gaps.append((kind, _failure_text(exc, base, name)))
                continue
            if page is None:
                continue
            found = True
            for f in page.files:
                merged.setdefault(f.filename, f)
            gaps.extend((Incomplete.INDEX, note) for note in page.skipped)
        if found:
            return Listing(tuple(merged.values()), tuple(gaps))
        if failures:
            if all(isinstance(f, Offline) for f in failures):
                raise Offline(f"offline, and no cached index page for {name}")
            if len(failures) == 1:
                raise failures[0]
            # The first failure's kind, every index's reason.
            text = "; ".join(dict.fromkeys(g[1] for g in gaps))
            raise type(failures[0])(text)
        raise NotOnIndex(f"{name} is not on {self.describe()}")

    def _cached_page(self) -> None:
        with self._count_lock:
            self.pages_cached += 1

    def _project(self, base: str, name: str) -> _Page | None:
        url = base.rstrip("/") + "/" + name + "/"
        cached = self.cache.page(url)
        if cached is not None and (self.offline or time.time() - cached.fetched < self.page_ttl):
            self._cached_page()
            if not cached.body:
                return None
            try:
                return _parse(cached, url)
            except PackageIndexError:
                if self.offline:
                    raise
                # Stored by an ftaudit that read it differently: ask the index again.
                self.cache.drop_page(url)
                cached = None
        if self.offline:
            raise Offline(url)
        headers = {"Accept": ACCEPT}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        resp = self.http.get(url, headers)
        if resp.status == 304 and cached is not None:
            self._cached_page()
            self.cache.touch_page(url)
            return _parse(cached, url) if cached.body else None
        if resp.status == 404:
            self.cache.store_page(url, Page(b"", "", None, time.time()))
            return None
        if resp.status != 200:
            raise PackageIndexError(f"{url}: HTTP {resp.status}")
        page = Page(resp.body, resp.content_type, resp.etag, time.time())
        parsed = _parse(page, resp.url)
        self.cache.store_page(url, page)
        return parsed


def _page_ttl() -> float:
    """How long a cached project page is used without asking the index again:
    FTAUDIT_PAGE_TTL seconds (0: always revalidate), else 10 minutes."""
    value = os.environ.get("FTAUDIT_PAGE_TTL", "").strip()
    if not value:
        return PAGE_TTL
    try:
        return max(0.0, float(value))
    except ValueError:
        raise UsageError(f"FTAUDIT_PAGE_TTL={value!r}: expected seconds") from None


def _failure_text(exc: PackageIndexError, base: str, name: str) -> str:
    if isinstance(exc, Offline):
        return f"offline, and no cached page of {name} from {_host(base)}"
    return str(exc)


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or parts.path


@dataclass(frozen=True, slots=True)
class _Page:
    files: tuple[IndexFile, ...]
    skipped: tuple[str, ...] = ()  # why some links were left out (one line each)


def _parse(page: Page, url: str) -> _Page:
    if "json" in page.content_type:
        return parse_json_page(page.body, url)
    return parse_html_page(page.body, url)


class _Malformed(Exception):
    """A field of a PEP 691 page with the wrong type (the message names it)."""


def _field(f: dict[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
    value = f.get(key)
    if isinstance(value, str) and str in kinds:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # JSON may escape a lone surrogate; no URL, file name or report can hold one.
            raise _Malformed(f"in '{where}.{key}': not valid Unicode") from None
        return value
    if (
        value is None
        or (isinstance(value, kinds) and not isinstance(value, bool))
        or (bool in kinds and isinstance(value, bool))
    ):
        return value
    expected = " or ".join(k.__name__ for k in kinds)
    raise _Malformed(f"in '{where}.{key}': expected {expected}, got {type(value).__name__}")


def _absolute(base: str, href: str) -> str:
    """`href` resolved against the page URL. Indexes mostly give absolute URLs, which
    urljoin would only take apart and put together again (the bulk of parsing a page of
    thousands of files): those are checked by splitting them, and kept as they are."""
    if href.startswith(("https://", "http://")) and not href.endswith(("?", "#")):
        urlsplit(href)  # raises ValueError where urljoin would (an invalid IPv6 host)
        return href
    return urljoin(base, href)


def parse_json_page(body: bytes, url: str) -> _Page:
    """A PEP 691 project page. The type of every field used is checked: a page that
    breaks the format is the index's error, not a crash and not a guess."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise PackageIndexError(f"{url}: malformed PEP 691 JSON ({_short(exc)})") from None
    try:
        if not isinstance(data, dict):
            raise _Malformed(f"expected an object at the top, got {type(data).__name__}")
        files = data.get("files")
        if not isinstance(files, list):
            raise _Malformed(f"in 'files': expected an array, got {type(files).__name__}")
        out: list[IndexFile] = []
        skipped: list[str] = []
        for i, f in enumerate(files):
            where = f"files[{i}]"
            if not isinstance(f, dict):
                raise _Malformed(f"in '{where}': expected an object, got {type(f).__name__}")
            filename = _field(f, "filename", (str,), where)
            href = _field(f, "url", (str,), where)
            if not filename or not href:
                raise _Malformed(f"in '{where}': 'filename' and 'url' are required")
            hashes = _field(f, "hashes", (dict,), where) or {}
            sha = _field(hashes, "sha256", (str,), f"{where}.hashes")
            size = _field(f, "size", (int,), where)
            if size is not None and size < 0:
                raise _Malformed(f"in '{where}.size': expected a size, got {size}")
            metadata = f.get("core-metadata", f.get("dist-info-metadata"))
            if metadata is not None and not isinstance(metadata, (bool, dict)):
                raise _Malformed(
                    f"in '{where}.core-metadata': expected a boolean or an object, got "
                    f"{type(metadata).__name__}"
                )
            if isinstance(metadata, dict):
                _field(metadata, "sha256", (str,), f"{where}.core-metadata")
            yanked = _field(f, "yanked", (bool, str), where)
            try:
                absolute = _absolute(url, href)
            except ValueError as exc:
                skipped.append(f"{url}: {filename}: unparsable URL ({_short(exc)})")
                continue
            digest, problem = _digest(sha)
            out.append(
                IndexFile(
                    filename=filename,
                    url=absolute,
                    sha256=digest,
                    requires_python=_field(f, "requires-python", (str,), where) or None,
                    yanked=bool(yanked),
                    upload_time=_field(f, "upload-time", (str,), where),
                    size=size,
                    core_metadata=_core_metadata_json(metadata),
                    integrity_error=problem and f"{url}: {filename}: {problem}",
                )
            )
    except _Malformed as exc:
        raise PackageIndexError(f"{url}: malformed PEP 691 JSON: {exc}") from None
    return _Page(tuple(out), tuple(skipped))


def _digest(value: str | None) -> tuple[str | None, str | None]:
    """A sha256 as the cache may use it (64 hex digits, lower case), or why it is not."""
    if value is None:
        return None, None
    if _SHA256.fullmatch(value):
        return value.lower(), None
    shown = value if len(value) <= 80 else value[:77] + "..."
    return None, f"sha256 {shown!r} is not 64 hex digits"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[dict[str, str | None]] = []
        self.base: str | None = None
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base":
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._current = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self._current["#text"] = "".join(self._text).strip()
            self.links.append(self._current)
            self._current = None


def parse_html_page(body: bytes, url: str) -> _Page:
    """A PEP 503 project page. A link whose URL does not parse is left out and named in
    `skipped` (the listing is then incomplete); the rest is read."""
    parser = _Anchors()
    try:
        parser.feed(body.decode("utf-8", "replace"))
        parser.close()
    except (ValueError, AssertionError, RecursionError) as exc:
        # html.parser gives up on some broken markup; what it read so far stands.
        raise PackageIndexError(f"{url}: unreadable HTML page ({_short(exc)})") from None
    base = url
    if parser.base:
        try:
            base = urljoin(url, parser.base)
        except ValueError as exc:
            raise PackageIndexError(f"{url}: unparsable <base href> ({_short(exc)})") from None
    out = []
    skipped: list[str] = []
    for link in parser.links:
        href = link.get("href")
        if not href:
            continue
        target, _, fragment = href.partition("#")
        filename = target.rsplit("/", 1)[-1].split("?")[0] or str(link.get("#text") or "")
        try:
            absolute = urljoin(base, target)
        except ValueError as exc:
            skipped.append(f"{url}: {filename or href[:80]}: unparsable URL ({_short(exc)})")
            continue
        hash_name, _, hash_value = fragment.partition("=")
        digest, problem = _digest(hash_value if hash_name == "sha256" and hash_value else None)
        out.append(
            IndexFile(
                filename=filename,
                url=absolute,
                sha256=digest,
                requires_python=link.get("data-requires-python") or None,
                yanked="data-yanked" in link,
                core_metadata=_core_metadata_html(
                    link.get("data-core-metadata", link.get("data-dist-info-metadata"))
                ),
                integrity_error=problem and f"{url}: {filename}: {problem}",
            )
        )
    return _Page(tuple(out), tuple(skipped))


def _core_metadata_json(value: object) -> str | None:
    if isinstance(value, dict):
        digest = value.get("sha256")
        # A digest that is not one is no digest: the metadata is then checked against
        # nothing, and only used for what it says, never to name a cache file.
        return digest.lower() if isinstance(digest, str) and _SHA256.fullmatch(digest) else ""
    return "" if value is True else None


def _core_metadata_html(value: str | None) -> str | None:
    if value is None:
        return None
    algo, _, digest = value.partition("=")
    return digest.lower() if algo == "sha256" and _SHA256.fullmatch(digest) else ""
