"""The Simple Repository API: PEP 691 JSON, falling back to PEP 503 HTML.

Project pages are cached; with `offline`, only the cache answers. Several indexes are
merged as pip merges them (every file from every index; the first index's copy of a
file name wins).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from packaging.utils import canonicalize_name

from ftaudit.cache import Cache, Page
from ftaudit.errors import PackageIndexError
from ftaudit.index.http import Http, Unreachable

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
PAGE_TTL = 600.0  # seconds before a cached project page is revalidated


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


class NotOnIndex(PackageIndexError):
    """No configured index knows the project."""


class Offline(PackageIndexError):
    """Offline and nothing cached for this request."""


class Index:
    def __init__(self, urls: tuple[str, ...], http: Http, cache: Cache, *, offline: bool) -> None:
        self.urls = urls
        self.http = http
        self.cache = cache
        self.offline = offline

    def describe(self) -> str:
        return ", ".join(_host(u) for u in self.urls)

    def files(self, project: str) -> list[IndexFile]:
        name = canonicalize_name(project)
        if self.offline and not self.urls:
            raise Offline(f"offline, and no cached index page for {name}")
        merged: dict[str, IndexFile] = {}
        found = False
        failures: list[str] = []
        offline_misses = 0
        for base in self.urls:
            try:
                page_files = self._project(base, name)
            except Offline:
                offline_misses += 1
                continue
            except (Unreachable, PackageIndexError) as exc:
                failures.append(str(exc))
                continue
            if page_files is None:
                continue
            found = True
            for f in page_files:
                merged.setdefault(f.filename, f)
        if found:
            return list(merged.values())
        if offline_misses:
            raise Offline(f"offline, and no cached index page for {name}")
        if failures:
            raise PackageIndexError(failures[0])
        raise NotOnIndex(f"{name} is not on {self.describe()}")

    def _project(self, base: str, name: str) -> list[IndexFile] | None:
        url = base.rstrip("/") + "/" + name + "/"
        cached = self.cache.page(url)
        if cached is not None and (self.offline or time.time() - cached.fetched < PAGE_TTL):
            return _parse(cached, url) if cached.body else None
        if self.offline:
            raise Offline(url)
        headers = {"Accept": ACCEPT}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        resp = self.http.get(url, headers)
        if resp.status == 304 and cached is not None:
            self.cache.touch_page(url)
            return _parse(cached, url) if cached.body else None
        if resp.status == 404:
            self.cache.store_page(url, Page(b"", "", None, time.time()))
            return None
        if resp.status != 200:
            raise PackageIndexError(f"{url}: HTTP {resp.status}")
        page = Page(resp.body, resp.content_type, resp.etag, time.time())
        files = _parse(page, resp.url)
        self.cache.store_page(url, page)
        return files


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or parts.path


def _parse(page: Page, url: str) -> list[IndexFile]:
    if "json" in page.content_type:
        return _parse_json(page.body, url)
    return _parse_html(page.body, url)


def _parse_json(body: bytes, url: str) -> list[IndexFile]:
    try:
        data = json.loads(body)
        out = []
        for f in data["files"]:
            yanked = f.get("yanked", False)
            out.append(
                IndexFile(
                    filename=str(f["filename"]),
                    url=urljoin(url, str(f["url"])),
                    sha256=(f.get("hashes") or {}).get("sha256"),
                    requires_python=f.get("requires-python") or None,
                    yanked=bool(yanked),
                    upload_time=f.get("upload-time"),
                    size=f.get("size"),
                    core_metadata=_core_metadata_json(
                        f.get("core-metadata", f.get("dist-info-metadata"))
                    ),
                )
            )
        return out
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PackageIndexError(f"{url}: malformed PEP 691 JSON ({exc})") from None


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


def _parse_html(body: bytes, url: str) -> list[IndexFile]:
    parser = _Anchors()
    parser.feed(body.decode("utf-8", "replace"))
    base = urljoin(url, parser.base) if parser.base else url
    out = []
    for link in parser.links:
        href = link.get("href")
        if not href:
            continue
        target, _, fragment = href.partition("#")
        filename = target.rsplit("/", 1)[-1].split("?")[0]
        hash_name, _, hash_value = fragment.partition("=")
        out.append(
            IndexFile(
                filename=filename or str(link.get("#text") or ""),
                url=urljoin(base, target),
                sha256=hash_value.lower() if hash_name == "sha256" and hash_value else None,
                requires_python=link.get("data-requires-python") or None,
                yanked="data-yanked" in link,
                core_metadata=_core_metadata_html(
                    link.get("data-core-metadata", link.get("data-dist-info-metadata"))
                ),
            )
        )
    return out


def _core_metadata_json(value: object) -> str | None:
    if isinstance(value, dict):
        return str(value.get("sha256") or "").lower()
    return "" if value is True else None


def _core_metadata_html(value: str | None) -> str | None:
    if value is None:
        return None
    algo, _, digest = value.partition("=")
    return digest.lower() if algo == "sha256" and digest else ""
