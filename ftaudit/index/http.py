"""HTTP(S) and file:// fetching: connection reuse (urllib3), credentials, retries, limits.

Each request stands alone: a reset, a 5xx, a 429 or a body cut short is retried with
a capped exponential backoff (a 429's or 503's Retry-After honoured, capped), and a
request that still fails fails only itself. The one memo across requests is a host that
has refused every connection and never answered: later requests to it fail at once.
Redirects are followed here, not by urllib3, so that each hop gets the credentials of
its own origin and no other. `cancel()` abandons every request in flight within a chunk
(the sockets are shut down, so even a read waiting on a stalled server returns).
"""

from __future__ import annotations

import email.utils
import hashlib
import io
import os
import random
import socket
import tempfile
import threading
import time
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse

from ftaudit import __version__
from ftaudit.cache import Cache
from ftaudit.errors import HashMismatch, PackageIndexError
from ftaudit.index.auth import Credential, Credentials, origin, redact_text, redact_url
from ftaudit.index.auth import strip_userinfo as _strip

MAX_PAGE_BYTES = 64 * 1024 * 1024
MAX_ARTIFACT_BYTES = 4 * 1024 * 1024 * 1024
CHUNK = 256 * 1024
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 15.0  # between two reads, not for the whole body
ATTEMPTS = 4  # per request, for resets, 5xx, 429 and bodies cut short
TIMEOUT_ATTEMPTS = 2  # a server that stalls twice is not waited for a third time
BACKOFF = 0.25  # seconds before the first retry, doubled each time ...
BACKOFF_CAP = 4.0  # ... up to this
RETRY_AFTER_CAP = 10.0
MAX_REDIRECTS = 10
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

T = TypeVar("T")
M = TypeVar("M", bound=urllib3.PoolManager)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str
    etag: str | None
    url: str


@dataclass(frozen=True, slots=True)
class RangeAnswer:
    """A byte range of a remote file: where it starts, the file's whole size, the bytes."""

    start: int
    total: int
    body: bytes


class NoRanges(PackageIndexError):
    """The server does not serve byte ranges of this file (or serves them wrongly): fetch
    it whole instead."""


class Unreachable(PackageIndexError):
    """A request that got no usable answer after its retries."""


class Cancelled(PackageIndexError):
    """The run is being interrupted: requests in flight were abandoned."""

    exit_code = 130


class _Retry(Exception):
    """One attempt failed in a way the next attempt may not."""

    def __init__(
        self,
        reason: str,
        *,
        delay: float | None = None,
        timeout: bool = False,
        connect: bool = False,
        result: object = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        self.timeout = timeout
        self.connect = connect
        self.result = result  # what to return when the retries run out (a 5xx page)


_clients: weakref.WeakSet[Http] = weakref.WeakSet()
_clients_lock = threading.Lock()


def cancel() -> None:
    """Abandon every request of every Http in this process (for Ctrl-C)."""
    with _clients_lock:
        clients = list(_clients)
    for client in clients:
        client.cancel()


class Http:
    def __init__(
        self,
        *,
        cert: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        attempts: int | None = None,
        backoff: float | None = None,
        retry_after_cap: float | None = None,
        page_limit: int | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        # module constants read at construction, so a test (or a caller) can tune them
        self._timeout = urllib3.Timeout(
            connect=connect_timeout if connect_timeout is not None else CONNECT_TIMEOUT,
            read=read_timeout if read_timeout is not None else READ_TIMEOUT,
        )
        self._attempts = max(1, attempts if attempts is not None else ATTEMPTS)
        self._backoff = backoff if backoff is not None else BACKOFF
        self._retry_after_cap = retry_after_cap if retry_after_cap is not None else RETRY_AFTER_CAP
        self._page_limit = page_limit if page_limit is not None else MAX_PAGE_BYTES
        self.credentials = credentials or Credentials()
        self._cancelled = threading.Event()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._answered: set[tuple[str, str, int]] = set()
        self._refused: dict[tuple[str, str, int], str] = {}
        self._kwargs: dict[str, object] = {}
        if cert:
            self._kwargs["ca_certs"] = cert
        self._pool = self._tracked(urllib3.PoolManager(num_pools=16, maxsize=8, **self._kwargs))  # type: ignore[arg-type]
        self._proxies: dict[str, urllib3.ProxyManager] = {}
        # What the run cost on the wire (the report's `stats`).
        self.requests = 0
        self.bytes_fetched = 0
        with _clients_lock:
            _clients.add(self)

    # --- credentials and cancellation ---------------------------------------------------

    def remember(self, url: str) -> str:
        """Take the credentials out of a configured index URL; the redacted URL is what
        the caller uses from then on (requests made with it still authenticate)."""
        return self.credentials.remember(url)

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled("interrupted")

    def _tracked(self, manager: M) -> M:
        """Pools whose connections register their sockets, so `cancel` can shut them.
        The socket itself is kept, not the connection: http.client lets go of a
        connection's socket once a response that ends at close has its headers."""
        live, lock = self._sockets, self._lock

        class Conn(HTTPConnection):
            def connect(self) -> None:
                super().connect()
                with lock:
                    live.add(self.sock)

        class SConn(HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                with lock:
                    live.add(self.sock)

        class Pool(HTTPConnectionPool):
            ConnectionCls = Conn

        class SPool(HTTPSConnectionPool):
            ConnectionCls = SConn

        manager.pool_classes_by_scheme = {"http": Pool, "https": SPool}
        return manager

    def _manager(self, url: str) -> urllib3.PoolManager:
        parts = urlsplit(url)
        proxy = urllib.request.getproxies().get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
            return self._pool
        with self._lock:
            if proxy not in self._proxies:
                manager = urllib3.ProxyManager(proxy, **self._kwargs)  # type: ignore[arg-type]
                self._proxies[proxy] = self._tracked(manager)
            return self._proxies[proxy]

    # --- one exchange, with redirects ----------------------------------------------------

    def _send(self, url: str, headers: dict[str, str], cred: Credential | None) -> BaseHTTPResponse:
        target = _strip(url)
        sent = {"User-Agent": f"ftaudit/{__version__}", **headers}
        if cred is not None:
            sent.update(cred.header())
        resp = self._manager(target).request(
            "GET",
            target,
            headers=sent,
            timeout=self._timeout,
            retries=False,
            redirect=False,
            preload_content=False,
        )
        where = origin(url)
        with self._lock:
            self.requests += 1
            if where is not None:
                self._answered.add(where)
        return resp

    def _count(self, chunk: bytes) -> bytes:
        with self._lock:
            self.bytes_fetched += len(chunk)
        return chunk

    @contextmanager
    def _exchange(
        self, url: str, headers: dict[str, str] | None
    ) -> Iterator[tuple[BaseHTTPResponse, str]]:
        """A streamed GET of `url`, redirects followed: (response, final URL). Each hop
        carries the credential of its own origin only, so a redirect to another host or
        port never receives this one's."""
        target = url
        asked_keyring = False
        for _hop in range(MAX_REDIRECTS + 1):
            self._check_cancelled()
            cred = self.credentials.for_url(target)
            resp = self._send(target, headers or {}, cred)
            location = resp.headers.get("Location")
            if resp.status in REDIRECT_STATUSES and location:
                _discard(resp)
                target = urljoin(target, location)
                continue
            if resp.status == 401 and not asked_keyring:
                asked_keyring = True
                better = self.credentials.after_401(target)
                if better is not None and better != cred:
                    _discard(resp)
                    resp = self._send(target, headers or {}, better)
            done = False
            try:
                yield resp, target
                done = True
            finally:
                if not done:
                    resp.close()  # unread bytes would poison the connection for the next user
                resp.release_conn()
            return
        raise PackageIndexError(f"{redact_url(url)}: more than {MAX_REDIRECTS} redirects")

    # --- retries -------------------------------------------------------------------------

    def _retrying(self, url: str, attempt: Callable[[], T]) -> T:
        where = origin(url)
        host = _hostport(url)
        failures = timeouts = 0
        all_connect = True
        while True:
            self._check_cancelled()
            if where is not None and where in self._refused:
                raise Unreachable(self._refused[where])
            try:
                return attempt()
            except _Retry as exc:
                failure = exc
            except urllib3.exceptions.HTTPError as exc:
                self._check_cancelled()  # a socket shut by cancel() surfaces as an error
                classified = _classify(exc)
                if classified is None:
                    raise Unreachable(f"cannot reach {host}: {_reason(exc)}") from None
                failure = classified
            failures += 1
            timeouts += failure.timeout
            all_connect = all_connect and failure.connect
            if failures >= self._attempts or timeouts >= TIMEOUT_ATTEMPTS:
                break
            delay = failure.delay
            if delay is None:
                delay = min(BACKOFF_CAP, self._backoff * 2 ** (failures - 1))
                delay *= 0.5 + random.random() / 2  # jitter: workers retry apart
            if self._cancelled.wait(delay):
                raise Cancelled("interrupted")
        if failure.result is not None:
            return failure.result  # type: ignore[return-value]
        tries = f"{failures} attempt{'s' if failures > 1 else ''}"
        if failure.connect or failure.timeout:
            message = f"cannot reach {host}: {failure.reason} ({tries})"
        else:
            message = f"{redact_url(url)}: {failure.reason} ({tries})"
        if all_connect and where is not None:
            with self._lock:
                if where not in self._answered:
                    self._refused[where] = message
        raise Unreachable(message)

    def _status_retry(self, resp: BaseHTTPResponse, result: object = None) -> _Retry | None:
        if resp.status not in RETRY_STATUSES:
            return None
        delay = _retry_after(resp.headers.get("Retry-After"))
        if delay is not None:
            delay = min(delay, self._retry_after_cap)
        return _Retry(f"HTTP {resp.status}", delay=delay, result=result)

    # --- pages ---------------------------------------------------------------------------

    def get(self, url: str, headers: dict[str, str] | None = None) -> Response:
        """A page, whole, at most the page limit; a status other than 2xx is returned
        (after retries, for 5xx and 429), not raised."""
        if url.startswith("file:"):
            return self._get_file(url)

        def attempt() -> Response:
            with self._exchange(url, headers) as (resp, final):
                answer = Response(
                    status=resp.status,
                    body=b"",
                    content_type=resp.headers.get("Content-Type", ""),
                    etag=resp.headers.get("ETag"),
                    url=final,
                )
                retry = self._status_retry(resp, answer)
                if retry is not None:
                    raise retry
                body = self._read_page(resp, url)
                return Response(answer.status, body, answer.content_type, answer.etag, answer.url)

        return self._retrying(url, attempt)

    def _read_page(self, resp: BaseHTTPResponse, url: str) -> bytes:
        limit = self._page_limit
        too_big = PackageIndexError(f"{redact_url(url)}: page larger than {limit} bytes")
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit and not resp.headers.get("Content-Encoding"):
            raise too_big
        # BytesIO hands its buffer to getvalue() without a copy: the page is held once
        buf = io.BytesIO()
        for chunk in resp.stream(CHUNK, decode_content=True):
            self._check_cancelled()
            buf.write(self._count(chunk))
            if buf.tell() > limit:
                raise too_big
        return buf.getvalue()

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

    # --- byte ranges ---------------------------------------------------------------------

    def get_range(self, url: str, start: int | None, end: int) -> RangeAnswer:
        """Bytes `start`..`end` (inclusive) of `url`, or with `start` None the last `end`
        bytes. NoRanges when the server answers with the whole file (200), a range other
        than the one asked for, or none at all; a body cut short is retried."""
        spec = f"bytes=-{end}" if start is None else f"bytes={start}-{end}"
        # identity: a compressed body's byte offsets are not the file's
        headers = {"Range": spec, "Accept-Encoding": "identity"}

        def attempt() -> RangeAnswer:
            with self._exchange(url, headers) as (resp, _final):
                retry = self._status_retry(resp)
                if retry is not None:
                    raise retry
                if resp.status == 200:
                    raise NoRanges(f"{redact_url(url)}: the server does not serve byte ranges")
                if resp.status != 206:
                    raise PackageIndexError(f"{redact_url(url)}: HTTP {resp.status}")
                first, last, total = _content_range(resp.headers.get("Content-Range", ""))
                want_first = max(0, total - end) if start is None else start
                want_last = total - 1 if start is None else min(end, total - 1)
                if (first, last) != (want_first, want_last) or resp.headers.get(
                    "Content-Encoding", "identity"
                ) not in ("identity", ""):
                    raise NoRanges(
                        f"{redact_url(url)}: asked for {spec}, the server answered "
                        f"{resp.headers.get('Content-Range', 'no Content-Range')!r}"
                    )
                expected = last - first + 1
                buf = io.BytesIO()
                for chunk in resp.stream(CHUNK, decode_content=False):
                    self._check_cancelled()
                    buf.write(self._count(chunk))
                    if buf.tell() > expected:
                        raise NoRanges(f"{redact_url(url)}: a range body longer than its range")
                if buf.tell() != expected:
                    raise _Retry(f"range body cut short ({buf.tell()} of {expected} bytes)")
                return RangeAnswer(start=first, total=total, body=buf.getvalue())

        return self._retrying(url, attempt)

    # --- artifacts -----------------------------------------------------------------------

    def download(self, url: str, dest: Path, sha256: str | None) -> str:
        """Fetch `url` into `dest` atomically (a .part file renamed into place, removed on
        any failure or cancel); check and return the sha256."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                partial = _Partial(out, checked=bool(sha256))
                if url.startswith("file:"):
                    self._copy_file(url, partial)
                else:
                    self._retrying(url, lambda: self._download_attempt(url, partial))
            actual = partial.digest.hexdigest()
            if sha256 and actual != sha256.lower():
                raise HashMismatch(
                    f"{redact_url(url)}: sha256 {actual} does not match the expected {sha256}"
                )
            tmp.replace(dest)
            return actual
        finally:
            tmp.unlink(missing_ok=True)

    def _download_attempt(self, url: str, partial: _Partial) -> None:
        headers = {}
        if partial.size and partial.resumable:
            # resume where the last attempt was cut; If-Range makes a changed file whole
            headers = {"Range": f"bytes={partial.size}-"}
            if partial.validator:
                headers["If-Range"] = partial.validator
        with self._exchange(url, headers) as (resp, _final):
            retry = self._status_retry(resp)
            if retry is not None:
                raise retry
            if resp.status == 206 and partial.size and _range_start(resp) == partial.size:
                pass
            elif resp.status == 200:
                partial.restart(resp)
            elif resp.status == 206:
                partial.resumable = False  # a range we did not ask for: start again, whole
                raise _Retry("HTTP 206 with an unexpected range")
            else:
                raise PackageIndexError(f"{redact_url(url)}: HTTP {resp.status}")
            for chunk in resp.stream(CHUNK, decode_content=True):
                self._check_cancelled()
                partial.write(self._count(chunk), url)

    def _copy_file(self, url: str, partial: _Partial) -> None:
        path = Path(unquote(urlsplit(url).path))
        try:
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(CHUNK), b""):
                    self._check_cancelled()
                    partial.write(chunk, url)
        except OSError as exc:
            raise PackageIndexError(f"{path}: {exc.strerror}") from None


class _Partial:
    """A download's bytes so far, across attempts."""

    def __init__(self, out: IO[bytes], *, checked: bool) -> None:
        self.out = out
        self.checked = checked  # a known sha256 catches a file that changed mid-way
        self.digest = hashlib.sha256()
        self.size = 0
        self.resumable = False
        self.validator: str | None = None

    def restart(self, resp: BaseHTTPResponse) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.digest = hashlib.sha256()
        self.size = 0
        etag = resp.headers.get("ETag")
        strong = etag if etag and not etag.startswith("W/") else None
        resumable = resp.headers.get("Accept-Ranges") == "bytes"
        plain = not resp.headers.get("Content-Encoding")
        self.validator = strong or resp.headers.get("Last-Modified")
        self.resumable = resumable and plain and bool(self.validator or self.checked)

    def write(self, chunk: bytes, url: str) -> None:
        self.size += len(chunk)
        if self.size > MAX_ARTIFACT_BYTES:
            raise PackageIndexError(f"{redact_url(url)}: larger than {MAX_ARTIFACT_BYTES} bytes")
        self.digest.update(chunk)
        self.out.write(chunk)


def fetch_artifact(http: Http, cache: Cache, url: str, filename: str, sha256: str | None) -> Path:
    """The artifact at `url`, from the cache, else downloaded into it (hash checked)."""
    dest = cache.artifact_path(url, filename, sha256)
    if not dest.is_file():
        http.download(url, dest, sha256)
    return dest


def _discard(resp: BaseHTTPResponse) -> None:
    resp.close()
    resp.release_conn()


def _hostport(url: str) -> str:
    """host[:port] of a URL, never its userinfo."""
    return urlsplit(_strip(url)).netloc or redact_url(url)


def _range_start(resp: BaseHTTPResponse) -> int | None:
    value = resp.headers.get("Content-Range", "")
    unit, _, rest = value.partition(" ")
    start = rest.split("-", 1)[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def _content_range(value: str) -> tuple[int, int, int]:
    """(first, last, total) of ``bytes first-last/total``; (-1, -1, 0) when malformed."""
    unit, _, rest = value.strip().partition(" ")
    span, _, total = rest.partition("/")
    first, _, last = span.partition("-")
    if unit != "bytes" or not (first.isdigit() and last.isdigit() and total.isdigit()):
        return -1, -1, 0
    a, b, n = int(first), int(last), int(total)
    if not a <= b < n:
        return -1, -1, 0
    return a, b, n


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _classify(exc: urllib3.exceptions.HTTPError) -> _Retry | None:
    """What a transport failure means for retrying; None when retrying cannot help."""
    e = urllib3.exceptions
    reason = _reason(exc)
    if isinstance(exc, (e.SSLError, e.LocationValueError)):
        return None
    if isinstance(exc, e.ConnectTimeoutError) and not isinstance(exc, e.NewConnectionError):
        return _Retry(f"connect timed out ({reason})", timeout=True, connect=True)
    if isinstance(exc, (e.NewConnectionError, e.NameResolutionError)):
        return _Retry(reason, connect=True)
    if isinstance(exc, e.ReadTimeoutError):
        return _Retry("read timed out", timeout=True)
    if isinstance(exc, e.ProtocolError):
        return _Retry(f"connection broken ({reason})")
    return _Retry(reason)


def _reason(exc: BaseException) -> str:
    # urllib3 wraps the real cause (in .reason, the args or __cause__) in long reprs:
    # the innermost error says what happened.
    inner = exc
    for _ in range(6):
        nested = getattr(inner, "reason", None)
        if not isinstance(nested, BaseException):
            nested = next((a for a in inner.args if isinstance(a, BaseException)), None)
        nested = nested or inner.__cause__
        if nested is None or nested is inner:
            break
        inner = nested
    if isinstance(inner, OSError) and inner.strerror:
        text = inner.strerror
    else:
        text = str(inner).rsplit(": ", 1)[-1].strip("')\"")
    return redact_text(text or inner.__class__.__name__)
