"""HTTP(S) and file:// fetching with connection reuse (urllib3), retries and size limits."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from urllib3.response import BaseHTTPResponse

from ftaudit import __version__
from ftaudit.cache import Cache
from ftaudit.errors import PackageIndexError

MAX_PAGE_BYTES = 64 * 1024 * 1024
MAX_ARTIFACT_BYTES = 4 * 1024 * 1024 * 1024
CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str
    etag: str | None
    url: str


class Unreachable(PackageIndexError):
    """A host that did not answer; later requests to it fail at once."""


class Http:
    def __init__(self, *, cert: str | None = None, timeout: float = 30.0, retries: int = 3):
        self._timeout = urllib3.Timeout(connect=min(timeout, 10.0), read=timeout)
        self._retries = urllib3.Retry(
            total=retries,
            backoff_factor=0.25,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
        )
        kwargs: dict[str, object] = {"headers": {"User-Agent": f"ftaudit/{__version__}"}}
        if cert:
            kwargs["ca_certs"] = cert
        self._pool = urllib3.PoolManager(num_pools=16, maxsize=8, **kwargs)  # type: ignore[arg-type]
        self._proxies: dict[str, urllib3.ProxyManager] = {}
        self._kwargs = kwargs
        self._down: dict[str, str] = {}
        self._lock = threading.Lock()

    def _manager(self, url: str) -> urllib3.PoolManager:
        parts = urlsplit(url)
        proxy = urllib.request.getproxies().get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
            return self._pool
        with self._lock:
            if proxy not in self._proxies:
                self._proxies[proxy] = urllib3.ProxyManager(proxy, **self._kwargs)  # type: ignore[arg-type]
            return self._proxies[proxy]

    def _check_host(self, url: str) -> str:
        host = urlsplit(url).netloc
        if host in self._down:
            raise Unreachable(self._down[host])
        return host

    @contextmanager
    def _open(self, url: str, headers: dict[str, str] | None = None) -> Iterator[BaseHTTPResponse]:
        """A streamed GET; a host that fails is marked down, so later requests fail fast."""
        host = self._check_host(url)
        try:
            resp = self._manager(url).request(
                "GET",
                url,
                headers=headers,
                timeout=self._timeout,
                retries=self._retries,
                preload_content=False,
            )
            try:
                yield resp
            finally:
                resp.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            message = f"cannot reach {host}: {_reason(exc)}"
            self._down[host] = message
            raise Unreachable(message) from None

    def get(self, url: str, headers: dict[str, str] | None = None) -> Response:
        if url.startswith("file:"):
            return self._get_file(url)
        with self._open(url, headers) as resp:
            body = resp.read(MAX_PAGE_BYTES + 1, decode_content=True)
        if len(body) > MAX_PAGE_BYTES:
            raise PackageIndexError(f"{url}: page larger than {MAX_PAGE_BYTES} bytes")
        return Response(
            status=resp.status,
            body=body,
            content_type=resp.headers.get("Content-Type", ""),
            etag=resp.headers.get("ETag"),
            # after a redirect relative links resolve against the final URL; urllib3 may
            # report it as a bare path, which is resolved against the one asked for.
            url=urljoin(url, resp.geturl() or url),
        )

    def _get_file(self, url: str) -> Response:
        path = Path(unquote(urlsplit(url).path))
        if path.is_dir():
            path = path / "index.html"
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            return Response(404, b"", "", None, url)
        except OSError as exc:
            raise PackageIndexError(f"{path}: {exc.strerror}") from None
        return Response(200, body, "text/html", None, url)

    def download(self, url: str, dest: Path, sha256: str | None) -> str:
        """Fetch `url` into `dest` atomically; check and return the sha256."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        tmp = Path(tmp_name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in self._stream(url):
                    size += len(chunk)
                    if size > MAX_ARTIFACT_BYTES:
                        raise PackageIndexError(f"{url}: larger than {MAX_ARTIFACT_BYTES} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            actual = digest.hexdigest()
            if sha256 and actual != sha256.lower():
                raise PackageIndexError(
                    f"{url}: sha256 {actual} does not match the expected {sha256}"
                )
            tmp.replace(dest)
            return actual
        finally:
            tmp.unlink(missing_ok=True)

    def _stream(self, url: str) -> Iterator[bytes]:
        if url.startswith("file:"):
            path = Path(unquote(urlsplit(url).path))
            try:
                with path.open("rb") as fh:
                    yield from iter(lambda: fh.read(CHUNK), b"")
            except OSError as exc:
                raise PackageIndexError(f"{path}: {exc.strerror}") from None
            return
        with self._open(url) as resp:
            if resp.status != 200:
                raise PackageIndexError(f"{url}: HTTP {resp.status}")
            yield from resp.stream(CHUNK)


def fetch_artifact(http: Http, cache: Cache, url: str, filename: str, sha256: str | None) -> Path:
    """The artifact at `url`, from the cache, else downloaded into it (hash checked)."""
    dest = cache.artifact_path(url, filename, sha256)
    if not dest.is_file():
        http.download(url, dest, sha256)
    return dest


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    # urllib3 wraps the real cause in long reprs; the tail says what happened.
    return text.rsplit(": ", 1)[-1].strip("')\"") or exc.__class__.__name__
