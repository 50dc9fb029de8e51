"""Index credentials: from the URL, netrc or keyring, sent only to their own origin, and
never written anywhere: not in messages, reports, -v output or the cache."""

from __future__ import annotations

import base64
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftaudit.cli import main
from ftaudit.index import auth
from ftaudit.index.auth import redact_url
from ftaudit.index.http import Http
from tests.conftest import FixtureWheels
from tests.helpers.fault_server import FaultServer
from tests.helpers.wheels import build_wheel

SECRET = "s3cr3t-Pa55"
USER = "alice"
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


@pytest.fixture(autouse=True)
def _no_keyring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test asks the machine's keyring or reads its ~/.netrc."""
    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring -> ImportError
    monkeypatch.setattr(auth, "_keyring_off", False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture(scope="module")
def pure(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("auth-index")
    build_wheel(out, "ftauth", "1.0", "py3-none-any", {"ftauth/__init__.py": b""})
    return out


@pytest.fixture
def locked(pure: Path) -> Iterator[FaultServer]:
    with FaultServer(pure, auth=(USER, SECRET)) as server:
        yield server


def with_userinfo(url: str, userinfo: str) -> str:
    return url.replace("http://", f"http://{userinfo}@", 1)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h.example/simple/", "https://u:****@h.example/simple/"),
        ("https://tok@h.example:8443/s/", "https://****@h.example:8443/s/"),
        ("https://h.example/simple/", "https://h.example/simple/"),
        ("https://u%40x:p%3Aw@h.example/", "https://u%40x:****@h.example/"),
        ("https://u:p@ss@h.example/", "https://u:****@h.example/"),
        ("https://u:@h.example/", "https://u:****@h.example/"),
        ("see git+https://u:tok@h.example/r.git now", "see git+https://u:****@h.example/r.git now"),
        ("http://u:p@[bad/x", "http://u:****@[bad/x"),
        ("/a/path/file.whl", "/a/path/file.whl"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_credentials_in_the_url_authenticate(locked: FaultServer) -> None:
    url = with_userinfo(locked.url, f"{USER}:{SECRET}") + "ftauth/"
    assert Http().get(url, JSON).status == 200
    assert Http().get(locked.url + "ftauth/", JSON).status == 401
    path, headers = locked.headers_seen[0]
    assert headers["Authorization"] == basic(USER, SECRET) and "@" not in path


def test_a_remembered_index_url_authenticates_in_its_redacted_form(locked: FaultServer) -> None:
    """What the scan carries around is the redacted URL; the password stays in Http, and
    other URLs of the same origin (links on the page) get it too."""
    http = Http()
    shown = http.remember(with_userinfo(locked.url, f"{USER}:{SECRET}"))
    assert SECRET not in shown and f"{USER}:****@" in shown
    assert http.get(shown + "ftauth/", JSON).status == 200
    assert http.get(locked.url + "ftauth/", JSON).status == 200  # no userinfo, same origin


def test_a_bare_token_is_a_username_with_no_password(pure: Path) -> None:
    with FaultServer(pure, auth=(SECRET, "")) as server:
        http = Http()
        shown = http.remember(with_userinfo(server.url, SECRET))
        assert shown == with_userinfo(server.url, "****")
        assert http.get(shown + "ftauth/", JSON).status == 200


def test_credentials_from_netrc(
    locked: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = tmp_path / "netrc"
    rc.write_text(f"machine 127.0.0.1\n  login {USER}\n  password {SECRET}\n")
    monkeypatch.setenv("NETRC", str(rc))
    assert Http().get(locked.url + "ftauth/", JSON).status == 200
    rc.write_text(f"machine 127.0.0.1 login {USER} password wrong\n")
    assert Http().get(locked.url + "ftauth/", JSON).status == 401
    # the URL's own credentials come first
    url = with_userinfo(locked.url, f"{USER}:{SECRET}") + "ftauth/"
    assert Http().get(url, JSON).status == 200


def test_an_unreadable_netrc_is_no_credentials(
    locked: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = tmp_path / "netrc"
    rc.write_text('machine 127.0.0.1 login "unterminated\n')
    monkeypatch.setenv("NETRC", str(rc))
    assert Http().get(locked.url + "ftauth/", JSON).status == 401


def test_keyring_is_asked_after_a_401(locked: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str | None]] = []

    def get_credential(service: str, username: str | None) -> object:
        asked.append((service, username))
        if service.startswith("127.0.0.1:"):
            return types.SimpleNamespace(username=USER, password=SECRET)
        return None

    fake = types.ModuleType("keyring")
    fake.get_credential = get_credential  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", fake)
    http = Http()
    index = http.remember(locked.url)
    assert http.get(index + "ftauth/", JSON).status == 200
    host = locked.url.split("//")[1].split("/")[0]
    assert asked == [(locked.url, None), (host, None)]  # the index URL first, as pip asks
    assert http.get(index + "other/", JSON).status != 401  # remembered for the origin
    assert len(asked) == 2


def test_a_redirect_to_another_port_gets_no_credentials(pure: Path) -> None:
    with FaultServer(pure) as other, FaultServer(pure, auth=(USER, SECRET)) as locked:
        locked.fault("/simple/", f"redirect:{other.url[: -len('/simple/')]}/+")
        http = Http()
        index = http.remember(with_userinfo(locked.url, f"{USER}:{SECRET}"))
        resp = http.get(index + "ftauth/", JSON)
        assert resp.status == 200 and resp.url.startswith(other.url)
        assert locked.headers_seen[0][1]["Authorization"] == basic(USER, SECRET)
        assert other.requests == ["/simple/ftauth/"]
        assert "Authorization" not in other.headers_seen[0][1]


def test_a_redirect_to_another_host_gets_no_netrc_credentials(
    pure: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = tmp_path / "netrc"
    rc.write_text(f"machine 127.0.0.1 login {USER} password {SECRET}\n")
    monkeypatch.setenv("NETRC", str(rc))
    with FaultServer(pure) as other, FaultServer(pure, auth=(USER, SECRET)) as locked:
        elsewhere = other.url.replace("127.0.0.1", "localhost")
        locked.fault("/simple/", f"redirect:{elsewhere[: -len('/simple/')]}/+")
        assert Http().get(locked.url + "ftauth/", JSON).status == 200
        assert "Authorization" in locked.headers_seen[0][1]
        assert "Authorization" not in other.headers_seen[0][1]


def test_a_redirect_on_the_same_origin_keeps_the_credentials(locked: FaultServer) -> None:
    locked.fault("/simple/moved/", "redirect:/simple/ftauth/")
    url = with_userinfo(locked.url, f"{USER}:{SECRET}") + "moved/"
    assert Http().get(url, JSON).status == 200


# --- end to end: nothing written anywhere holds the password ----------------------------


def _scan(args: list[str], tmp_path: Path) -> dict[str, object]:
    outputs = {}
    for fmt, ext in (("json", "json"), ("markdown", "md"), ("html", "html"), ("table", "txt")):
        out = tmp_path / f"report.{ext}"
        main(["scan", *args, "--format", fmt, "-o", str(out), "-v", "--fail-on", "none"])
        outputs[fmt] = out
    return json.loads(outputs["json"].read_text())  # type: ignore[no-any-return]


def _leaks(where: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in where.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def scan_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_text("ftfix-ready==1.0\n")
    return tmp_path


def _status(doc: dict[str, object], name: str) -> dict[str, str]:
    packages = doc["packages"]
    assert isinstance(packages, list)
    return next(p["targets"]["3.13t"] for p in packages if p["name"] == name)  # type: ignore[no-any-return]


@pytest.mark.ft
def test_scan_with_credentials_in_the_url_leaks_them_nowhere(
    fixture_wheels: FixtureWheels, scan_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with FaultServer(fixture_wheels.directory, auth=(USER, SECRET)) as server:
        url = with_userinfo(server.url, f"{USER}:{SECRET}")
        doc = _scan(["-r", "requirements.txt", "--index-url", url, "--target", "3.13t"], scan_dir)
        assert all(h.get("Authorization") == basic(USER, SECRET) for _, h in server.headers_seen)
        assert any(p.startswith("/files/") and p.endswith(".whl") for p in server.requests)
    ready = _status(doc, "ftfix-ready")
    assert (ready["status"], ready["evidence"]) == ("ready", "inspected")
    out, err = capfd.readouterr()
    assert f"{USER}:****@127.0.0.1" in err  # -v names the index, redacted
    assert SECRET not in out + err
    cache = scan_dir / "ftaudit-cache"
    assert any((cache / "artifacts").rglob("*.whl"))
    assert _leaks(scan_dir, SECRET) == []  # reports and the whole cache, byte for byte


@pytest.mark.ft
def test_scan_with_wrong_credentials_is_unknown_with_a_clean_reason(
    fixture_wheels: FixtureWheels, scan_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    wrong = "not-the-" + SECRET
    with FaultServer(fixture_wheels.directory, auth=(USER, SECRET)) as server:
        url = with_userinfo(server.url, f"{USER}:{wrong}")
        doc = _scan(["-r", "requirements.txt", "--index-url", url, "--target", "3.13t"], scan_dir)
    out, err = capfd.readouterr()
    text = json.dumps(doc) + out + err
    assert "HTTP 401" in text and f"{USER}:****@127.0.0.1" in text
    assert wrong not in text and SECRET not in text
    assert _leaks(scan_dir, wrong) == []


@pytest.mark.ft
def test_scan_with_credentials_from_netrc(
    fixture_wheels: FixtureWheels,
    scan_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    rc = scan_dir.parent / "netrc"
    rc.write_text(f"machine 127.0.0.1 login {USER} password {SECRET}\n")
    monkeypatch.setenv("NETRC", str(rc))
    with FaultServer(fixture_wheels.directory, auth=(USER, SECRET)) as server:
        doc = _scan(
            ["-r", "requirements.txt", "--index-url", server.url, "--target", "3.13t"], scan_dir
        )
    assert _status(doc, "ftfix-ready")["status"] == "ready"
    out, err = capfd.readouterr()
    assert SECRET not in out + err
    assert _leaks(scan_dir, SECRET) == []
