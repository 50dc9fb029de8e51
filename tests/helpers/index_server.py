"""A real package index on 127.0.0.1: PEP 691 JSON and PEP 503 HTML, files, ETags, Range.

Serves every wheel and sdist in a directory; the project a file belongs to comes from its
name. Tests start it with `IndexServer(directory)` as a context manager.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename


def _project_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        return str(parse_sdist_filename(filename)[0])
    except Exception:  # noqa: BLE001 - a stray file in the directory is simply not served
        return None


class IndexServer:
    def __init__(
        self,
        directory: Path,
        *,
        html_only: bool = False,
        yanked: frozenset[str] = frozenset(),
        requires_python: dict[str, str] | None = None,
        corrupt_hash: frozenset[str] = frozenset(),
        port: int = 0,
        core_metadata: bool = True,
        ranges: str = "ok",
    ) -> None:
        """`ranges`: "ok" (206, suffix ranges too), "none" (a Range header is ignored:
        200 and the whole body), "wrong" (206 with a Content-Range that starts elsewhere),
        "short" (206 whose body stops halfway)."""
        self.directory = directory
        self.html_only = html_only
        self.yanked = yanked
        self.requires_python = requires_python or {}
        self.corrupt_hash = corrupt_hash
        self.core_metadata = core_metadata
        self.ranges = ranges
        self.file_bytes_sent = 0  # bytes of /files/ bodies, whole or ranges
        self.requests: list[str] = []
        self.headers_seen: list[tuple[str, dict[str, str]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/simple/"

    def __enter__(self) -> IndexServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def intercept(self, handler: BaseHTTPRequestHandler) -> bool:
        """A subclass's chance to answer a request itself (tests/helpers/fault_server.py)."""
        return False

    def files(self, project: str) -> list[Path]:
        name = canonicalize_name(project)
        return sorted(
            p for p in self.directory.iterdir() if p.is_file() and _project_of(p.name) == name
        )

    def metadata(self, filename: str) -> bytes | None:
        """PEP 658: the wheel's METADATA, served beside it as ``<wheel>.metadata``."""
        path = self.directory / filename
        if not self.core_metadata or not filename.endswith(".whl") or not path.is_file():
            return None
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return zf.read(name)
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                server.headers_seen.append((self.path, dict(self.headers.items())))
                if not server.intercept(self):
                    self.serve()

            def serve(self) -> None:
                m = re.fullmatch(r"/simple/([^/]+)/", self.path)
                if m:
                    return self._project(m.group(1))
                m = re.fullmatch(r"/files/([^/]+)\.metadata", self.path)
                if m:
                    return self._metadata(m.group(1))
                m = re.fullmatch(r"/files/([^/]+)", self.path)
                if m:
                    return self._file(m.group(1))
                self.send_error(404)
                return None

            def _metadata(self, filename: str) -> None:
                body = server.metadata(filename)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _project(self, name: str) -> None:
                files = server.files(name)
                if not files:
                    self.send_error(404)
                    return
                entries = []
                for p in files:
                    data = p.read_bytes()
                    sha = hashlib.sha256(data).hexdigest()
                    if p.name in server.corrupt_hash:
                        sha = "0" * 64
                    meta = server.metadata(p.name)
                    entries.append(
                        {
                            "core-metadata": (
                                {"sha256": hashlib.sha256(meta).hexdigest()} if meta else False
                            ),
                            "filename": p.name,
                            "url": f"../../files/{p.name}",
                            "hashes": {"sha256": sha},
                            "requires-python": server.requires_python.get(p.name),
                            "yanked": p.name in server.yanked,
                            "size": len(data),
                        }
                    )
                wants_json = "vnd.pypi.simple.v1+json" in (self.headers.get("Accept") or "")
                if wants_json and not server.html_only:
                    body = json.dumps(
                        {"meta": {"api-version": "1.1"}, "name": name, "files": entries}
                    ).encode()
                    ctype = "application/vnd.pypi.simple.v1+json"
                else:
                    links = []
                    for e in entries:
                        attrs = f' href="{e["url"]}#sha256={e["hashes"]["sha256"]}"'
                        if e["requires-python"]:
                            rp = str(e["requires-python"]).replace("<", "&lt;").replace(">", "&gt;")
                            attrs += f' data-requires-python="{rp}"'
                        if e["yanked"]:
                            attrs += ' data-yanked=""'
                        if e["core-metadata"]:
                            digest = e["core-metadata"]["sha256"]  # type: ignore[index]
                            attrs += f' data-core-metadata="sha256={digest}"'
                        links.append(f"<a{attrs}>{e['filename']}</a><br/>")
                    body = (
                        "<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>"
                    ).encode()
                    ctype = "text/html"
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                m = re.fullmatch(r"/files/([^/]+)", self.path)
                path = server.directory / m.group(1) if m else None
                if path is None or not path.is_file():
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(path.stat().st_size))
                self.end_headers()

            def _file(self, filename: str) -> None:
                path = server.directory / filename
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                asked = self.headers.get("Range") or ""
                rng = re.fullmatch(r"bytes=(\d*)-(\d*)", asked)
                if rng and server.ranges != "none" and (rng.group(1) or rng.group(2)):
                    if rng.group(1):
                        start = int(rng.group(1))
                        end = (
                            min(int(rng.group(2)), len(data) - 1) if rng.group(2) else len(data) - 1
                        )
                    else:  # the last N bytes
                        start = max(0, len(data) - int(rng.group(2)))
                        end = len(data) - 1
                    chunk = data[start : end + 1]
                    shown = start + 1 if server.ranges == "wrong" else start
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {shown}-{end}/{len(data)}")
                else:
                    chunk = data
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if server.ranges == "short" and rng:
                    chunk = chunk[: len(chunk) // 2]
                    self.close_connection = True
                server.file_bytes_sent += len(chunk)
                # The client may stop reading (a 200 to a Range it will not use).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(chunk)

        return Handler
