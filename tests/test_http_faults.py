"""The HTTP layer against a misbehaving index on 127.0.0.1: resets, stalls, bodies cut
short, 5xx, 429, huge pages, redirects, and Ctrl-C (cancel) mid-download."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftaudit.cli import main
from ftaudit.errors import PackageIndexError
from ftaudit.index import http as http_module
from ftaudit.index.http import Cancelled, Http, Unreachable
from tests.helpers.fault_server import FaultServer
from tests.helpers.wheels import build_wheel

PROJECTS = [f"ftfault-{i}" for i in range(12)]
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fault-index")
    for name in PROJECTS:
        pkg = name.replace("-", "_")
        build_wheel(out, name, "1.0", "py3-none-any", {f"{pkg}/__init__.py": b"x = 1\n" * 4000})
    # incompressible, several chunks long: a download cut in the middle has bytes to keep
    noise = random.Random(0).randbytes(3 * http_module.CHUNK)
    build_wheel(out, "ftfault-big", "1.0", "py3-none-any", {"ftfault_big/data.bin": noise})
    return out


@pytest.fixture
def server(wheels: Path) -> Iterator[FaultServer]:
    with FaultServer(wheels) as s:
        yield s


def fast(**kwargs: float) -> Http:
    """Timeouts and backoff short enough for tests; the logic is the shipped one."""
    options: dict[str, float] = {"read_timeout": 0.5, "backoff": 0.01, **kwargs}
    return Http(**options)  # type: ignore[arg-type]


def page(server: FaultServer, name: str = "ftfault-0") -> str:
    return f"{server.url}{name}/"


def wheel_url(server: FaultServer, name: str = "ftfault-0") -> str:
    return server.url.replace("/simple/", f"/files/{name.replace('-', '_')}-1.0-py3-none-any.whl")


def test_reset_mid_body_then_ok(server: FaultServer) -> None:
    server.fault("/simple/ftfault-0/", "reset-body")
    resp = fast().get(page(server), JSON)
    assert resp.status == 200 and json.loads(resp.body)["name"] == "ftfault-0"
    assert server.requests.count("/simple/ftfault-0/") == 2


def test_reset_before_answering_then_ok(server: FaultServer) -> None:
    server.fault("/simple/ftfault-0/", "reset", "reset")
    assert fast().get(page(server), JSON).status == 200
    assert server.requests.count("/simple/ftfault-0/") == 3


def test_one_failing_request_does_not_poison_the_host(server: FaultServer) -> None:
    server.fault("/simple/ftfault-0/", *["reset"] * http_module.ATTEMPTS)
    http = fast()
    with pytest.raises(Unreachable, match=r"connection broken .*\(4 attempts\)"):
        http.get(page(server), JSON)
    assert http.get(page(server, "ftfault-1"), JSON).status == 200
    assert http.get(page(server), JSON).status == 200  # and the same URL, asked again


def test_stall_is_a_read_timeout_retried_once(server: FaultServer) -> None:
    server.fault("/simple/ftfault-0/", "stall", "stall", "stall")
    http = fast(read_timeout=0.3)
    with pytest.raises(Unreachable, match=r"read timed out \(2 attempts\)"):
        http.get(page(server), JSON)
    assert server.requests.count("/simple/ftfault-0/") == http_module.TIMEOUT_ATTEMPTS
    assert http.get(page(server, "ftfault-1"), JSON).status == 200


def test_stall_mid_body_then_ok(server: FaultServer) -> None:
    server.fault("/simple/ftfault-0/", "stall-body")
    assert fast(read_timeout=0.3).get(page(server), JSON).status == 200


def test_wrong_content_length_is_retried_then_a_clean_error(server: FaultServer) -> None:
    server.fault("/simple/ftfault-0/", "short-body")
    assert fast().get(page(server), JSON).status == 200
    server.fault("/simple/ftfault-1/", *["short-body"] * http_module.ATTEMPTS)
    with pytest.raises(Unreachable, match=r"IncompleteRead.*\(4 attempts\)"):
        fast().get(page(server, "ftfault-1"), JSON)


def test_500_then_ok(server: FaultServer) -> None:
    server.fault("/simple/ftfault-0/", "status:500", "status:503")
    assert fast().get(page(server), JSON).status == 200
    server.fault("/simple/ftfault-1/", *["status:502"] * http_module.ATTEMPTS)
    assert fast().get(page(server, "ftfault-1"), JSON).status == 502  # the caller's to say


def test_429_honours_retry_after_within_its_cap(server: FaultServer) -> None:
    server.fault("/simple/ftfault-0/", "status:429:retry-after=1")
    assert fast().get(page(server), JSON).status == 200
    first, second = server.times[-2:]
    assert second - first >= 0.9  # waited as told (a lower bound: not a timing budget)
    server.fault("/simple/ftfault-1/", "status:429:retry-after=86400")
    assert fast(retry_after_cap=0.05).get(page(server, "ftfault-1"), JSON).status == 200


@pytest.mark.parametrize("fault", ["huge", "huge-stream"])
def test_a_page_over_the_cap_is_a_clean_error(server: FaultServer, fault: str) -> None:
    server.fault("/simple/ftfault-0/", f"{fault}:{3 * 1024 * 1024}")
    with pytest.raises(PackageIndexError, match="page larger than 1048576 bytes"):
        fast(page_limit=1024 * 1024).get(page(server), JSON)


def test_a_50_mb_page_under_the_cap_is_read(server: FaultServer) -> None:
    size = 50 * 1024 * 1024
    server.fault("/simple/ftfault-0/", f"huge-stream:{size}")
    resp = fast().get(page(server), JSON)
    assert len(resp.body) == size and resp.body.endswith(b"--></body></html>")


def test_download_resumes_after_a_reset_mid_body(server: FaultServer, tmp_path: Path) -> None:
    url = wheel_url(server, "ftfault-big")
    expected = hashlib.sha256((server.directory / url.rsplit("/", 1)[1]).read_bytes()).hexdigest()
    server.fault("/files/", "reset-body")
    dest = tmp_path / "a" / "w.whl"
    assert fast().download(url, dest, expected) == expected
    ranges = [h.get("Range") for p, h in server.headers_seen if p.startswith("/files/")]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert ranges[1] != "bytes=0-"
    assert list(dest.parent.iterdir()) == [dest]


def test_download_cut_short_every_time_leaves_no_file(server: FaultServer, tmp_path: Path) -> None:
    server.fault("/files/", *["short-body"] * http_module.ATTEMPTS)
    dest = tmp_path / "a" / "w.whl"
    with pytest.raises(Unreachable):
        fast().download(wheel_url(server), dest, None)
    assert list(dest.parent.iterdir()) == []


def test_refused_connections_mark_only_a_host_that_never_answered(server: FaultServer) -> None:
    http = fast()
    sent: list[str] = []
    send = http._send

    def counting(url: str, *args: object) -> object:
        sent.append(url)
        return send(url, *args)  # type: ignore[arg-type]

    http._send = counting  # type: ignore[method-assign,assignment]
    with pytest.raises(Unreachable, match=r"cannot reach 127\.0\.0\.1:9: .*\(4 attempts\)"):
        http.get("http://127.0.0.1:9/simple/a/")
    assert len(sent) == http_module.ATTEMPTS
    with pytest.raises(Unreachable, match=r"cannot reach 127\.0\.0\.1:9"):
        http.get("http://127.0.0.1:9/simple/b/")
    assert len(sent) == http_module.ATTEMPTS  # failed at once
    # a host that has answered is never written off, whatever happens next
    assert http.get(page(server), JSON).status == 200
    server.fault("/simple/ftfault-1/", *["reset"] * (2 * http_module.ATTEMPTS))
    for _ in range(2):
        with pytest.raises(Unreachable):
            http.get(page(server, "ftfault-1"), JSON)
    assert server.requests.count("/simple/ftfault-1/") == 2 * http_module.ATTEMPTS


def _cancel_during(server: FaultServer, run: object) -> BaseException | None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert server.requested.wait(10)
    http_module.cancel()
    thread.join(10)
    assert not thread.is_alive(), "cancel() did not stop the request in flight"
    return errors[0] if errors else None


@pytest.mark.parametrize("fault", ["trickle", "stall"])
def test_cancel_abandons_a_download_in_flight(
    server: FaultServer, tmp_path: Path, fault: str
) -> None:
    """The server never finishes; cancel() (Ctrl-C) ends the download anyway, and no
    partial file stays behind. The read timeout is the shipped one: only cancel ends it."""
    server.fault("/files/", fault)
    http = Http()
    dest = tmp_path / "a" / "w.whl"
    error = _cancel_during(server, lambda: http.download(wheel_url(server), dest, None))
    assert isinstance(error, Cancelled) and error.exit_code == 130
    assert list(dest.parent.iterdir()) == []


def test_cancel_interrupts_a_backoff(server: FaultServer) -> None:
    server.fault("/simple/ftfault-0/", "status:503:retry-after=600")
    http = Http(retry_after_cap=600)
    error = _cancel_during(server, lambda: http.get(page(server), JSON))
    assert isinstance(error, Cancelled)


def test_scan_survives_resets_on_most_packages(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One reset per package (page, metadata, wheel) costs a retry, never a verdict."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(http_module, "BACKOFF", 0.01)
    monkeypatch.setattr(http_module, "READ_TIMEOUT", 0.5)
    for i in range(9):
        server.fault(f"/simple/ftfault-{i}/", "reset")
        server.fault(f"/files/ftfault_{i}-.*\\.whl$", "reset-body")
        server.fault(f"/files/ftfault_{i}-.*\\.metadata$", "status:500")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("".join(f"{p}==1.0\n" for p in PROJECTS))
    server.fault("/simple/ftfault-11/", "status:503", "stall-body")
    out = tmp_path / "report.json"
    args = ["scan", "-r", str(reqs), "--index-url", server.url, "--target", "3.13t"]
    assert main([*args, "--format", "json", "-o", str(out), "-q", "--fail-on", "unknown"]) == 0
    doc = json.loads(out.read_text())
    statuses = {p["name"]: p["targets"]["3.13t"]["status"] for p in doc["packages"]}
    assert statuses == dict.fromkeys(PROJECTS, "ready")
    assert sum(p.endswith(".whl") for p in server.requests) == 12 + 9  # each fetched, 9 twice


def test_ctrl_c_during_a_download_exits_130_and_leaves_no_partial_file(
    server: FaultServer, tmp_path: Path
) -> None:
    """The download never ends (a byte every 50 ms, so no read timeout either): only the
    interrupt can stop the scan, and it must not wait for the download."""
    server.fault(r"/files/.*\.whl$", *["trickle"] * 20)  # the wheel, not its .metadata
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("ftfault-big==1.0\n")
    cache = tmp_path / "cache"
    env = {**os.environ, "FTAUDIT_CACHE_DIR": str(cache), "PIP_CONFIG_FILE": os.devnull}
    argv = [sys.executable, "-m", "ftaudit", "scan", "-r", str(reqs), "-q"]
    argv += ["--index-url", server.url, "--target", "3.13t", "--format", "json"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.requested.wait(60), "the scan never started its download"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert [p for p in cache.rglob("*") if p.name.startswith(".part")] == []
