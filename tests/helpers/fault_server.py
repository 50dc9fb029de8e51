"""The local index of index_server.py, with faults injected on request and Basic auth.

`server.fault(pattern, *actions)` queues actions for the next requests whose path matches
the regular expression `pattern`, one action per request, in order; once a pattern's
actions are used up its requests are served normally. Actions:

    reset           RST the connection before answering
    reset-body      send the headers and half the body, then RST
    short-body      a Content-Length 1000 bytes larger than the body, then close
    stall           answer nothing until the server is closed (or `release()`)
    stall-body      send the headers and half the body, then stall
    trickle         headers, then one byte every 50 ms until closed
    status:N        answer HTTP N; "status:429:retry-after=V" adds Retry-After: V
    redirect:URL    302 to URL (the request's path appended when URL ends with "/+")
    huge:N          an HTML page of N bytes, with Content-Length
    huge-stream:N   an HTML page of N bytes, no Content-Length (ends at close)

With `auth=(user, password)` every request without that Basic credential gets 401.
"""

from __future__ import annotations

import base64
import io
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.helpers.index_server import IndexServer


class FaultServer(IndexServer):
    def __init__(
        self, directory: Path, *, auth: tuple[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(directory, **kwargs)
        self.auth = auth
        self._plan: list[tuple[re.Pattern[str], str]] = []
        self._plan_lock = threading.Lock()
        self._released = threading.Event()
        self.requested = threading.Event()  # set at each request a fault answered
        self.times: list[float] = []
        # a connection reset on purpose is not an error worth a traceback on stderr
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]

    def fault(self, pattern: str, *actions: str) -> None:
        with self._plan_lock:
            self._plan.extend((re.compile(pattern), a) for a in actions)

    def release(self) -> None:
        self._released.set()

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        super().__exit__(*exc)

    def _next_action(self, path: str) -> str | None:
        with self._plan_lock:
            for i, (pattern, action) in enumerate(self._plan):
                if pattern.search(path):
                    del self._plan[i]
                    return action
        return None

    def intercept(self, handler: BaseHTTPRequestHandler) -> bool:
        self.times.append(time.monotonic())
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            if handler.headers.get("Authorization") != f"Basic {token}":
                handler.send_response(401)
                handler.send_header("WWW-Authenticate", 'Basic realm="index"')
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return True
        action = self._next_action(handler.path)
        if action is None:
            return False
        self.requested.set()
        kind, _, arg = action.partition(":")
        wfile = handler.wfile
        if kind == "reset":
            _rst(handler)
        elif kind in ("reset-body", "stall-body"):
            raw = _render(handler)
            head, _, body = raw.partition(b"\r\n\r\n")
            wfile.write(head + b"\r\n\r\n" + body[: len(body) // 2])
            wfile.flush()
            if kind == "stall-body":
                self._released.wait()
            else:
                time.sleep(0.3)  # let the client take what was sent before the reset
            _rst(handler)
        elif kind == "short-body":
            raw = _render(handler)
            head, _, body = raw.partition(b"\r\n\r\n")
            head = re.sub(
                rb"Content-Length: (\d+)",
                lambda m: b"Content-Length: " + str(int(m.group(1)) + 1000).encode(),
                head,
            )
            wfile.write(head + b"\r\n\r\n" + body)
            wfile.flush()
            handler.close_connection = True
        elif kind == "stall":
            self._released.wait()
            _rst(handler)
        elif kind == "trickle":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/octet-stream")
            handler.send_header("Content-Length", str(10**9))
            handler.end_headers()
            try:
                while not self._released.wait(0.05):
                    wfile.write(b"x")
                    wfile.flush()
            except OSError:
                pass
            handler.close_connection = True
        elif kind == "status":
            code, _, extra = arg.partition(":")
            handler.send_response(int(code))
            if extra.startswith("retry-after="):
                handler.send_header("Retry-After", extra.split("=", 1)[1])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif kind == "redirect":
            target = arg[:-2] + handler.path if arg.endswith("/+") else arg
            handler.send_response(302)
            handler.send_header("Location", target)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif kind in ("huge", "huge-stream"):
            _huge(handler, int(arg), with_length=kind == "huge")
        else:
            raise ValueError(f"unknown fault {action!r}")
        return True


def _render(handler: BaseHTTPRequestHandler) -> bytes:
    """The normal answer to this request, as bytes on the wire."""
    real = handler.wfile
    buf = io.BytesIO()
    handler.wfile = buf
    try:
        handler.serve()  # type: ignore[attr-defined]
    finally:
        handler.wfile = real
    return buf.getvalue()


def _rst(handler: BaseHTTPRequestHandler) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed proxy or server would."""
    conn: socket.socket = handler.connection
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass
    handler.close_connection = True
    handler.wfile = io.BytesIO()  # what the handler flushes on the way out goes nowhere


def _huge(handler: BaseHTTPRequestHandler, size: int, *, with_length: bool) -> None:
    head = b"<!DOCTYPE html><html><body><!-- "
    tail = b" --></body></html>"
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    if with_length:
        handler.send_header("Content-Length", str(size))
    handler.end_headers()
    pad = size - len(head) - len(tail)
    block = b"x" * (1024 * 1024)
    try:
        handler.wfile.write(head)
        while pad > 0:
            n = min(pad, len(block))
            handler.wfile.write(block[:n])
            pad -= n
        handler.wfile.write(tail)
    except OSError:
        pass  # the client stopped reading at its limit
    handler.close_connection = True
