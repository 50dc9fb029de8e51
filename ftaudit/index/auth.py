"""Index credentials, found where pip finds them, and URLs fit to print or store.

A credential comes from the URL's userinfo, else from the netrc file (NETRC, else
~/.netrc), else, after the index answers 401, from `keyring` when it is importable in
ftaudit's own interpreter (never a dependency). It is sent as Basic auth only to the
scheme, host and port it was given for; netrc, which names hosts, applies to its host.
Everything else (messages, cache keys, reports) sees `redact_url`: `user:****@host`, or
`****@host` for a bare token, as pip shows them.
"""

from __future__ import annotations

import importlib
import netrc
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

import urllib3

MASK = "****"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Anything that looks like scheme://userinfo@ in free text (an exception's message).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s]*)@")

Origin = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password: str
    source: str  # "url", "netrc" or "keyring": what -v may say, never the secret

    def header(self) -> dict[str, str]:
        made = urllib3.util.make_headers(basic_auth=f"{self.username}:{self.password}")
        return {"Authorization": made["authorization"]}


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here, not later
    except ValueError:
        return None
    return parts


def _userinfo(parts: SplitResult) -> tuple[str | None, str | None]:
    """(username, password) as written, %-decoded; pip splits the same way: the last @
    ends the userinfo, the first : ends the username."""
    netloc = parts.netloc
    if "@" not in netloc:
        return None, None
    info = netloc.rsplit("@", 1)[0]
    user, sep, password = info.partition(":")
    return unquote(user), (unquote(password) if sep else None)


def _redact_userinfo(user: str, password: str | None) -> str:
    return MASK if password is None else f"{quote(user, safe='')}:{MASK}"


def redact_url(url: str) -> str:
    """`url` with its password (or bare token) replaced by ****; other text unchanged."""
    parts = _split(url)
    if parts is None or "@" not in parts.netloc:
        return _USERINFO.sub(_mask_match, url) if "@" in url else url
    user, password = _userinfo(parts)
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{_redact_userinfo(user or '', password)}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def redact_text(text: str) -> str:
    """Every URL's userinfo in a free-text message masked (for exception messages)."""
    return _USERINFO.sub(_mask_match, text) if "@" in text else text


def _mask_match(m: re.Match[str]) -> str:
    user, sep, _password = m.group("userinfo").partition(":")
    return m.group("scheme") + (f"{user}:{MASK}@" if sep else f"{MASK}@")


def strip_userinfo(url: str) -> str:
    """The URL a request goes to: no userinfo (credentials travel in a header)."""
    parts = _split(url)
    if parts is None or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def origin(url: str) -> Origin | None:
    parts = _split(url)
    if parts is None or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


class Credentials:
    """The credentials one run knows, by origin. Thread-safe."""

    def __init__(self, *, use_keyring: bool = True) -> None:
        self._lock = threading.Lock()
        # (origin, userinfo as redact_url shows it) -> the credential it stands for
        self._known: dict[tuple[Origin, str], Credential] = {}
        self._by_origin: dict[Origin, Credential] = {}
        self._index_urls: list[str] = []
        self._netrc: netrc.netrc | None = None
        self._netrc_read = False
        self._keyring_tried: set[Origin] = set()
        self._use_keyring = use_keyring

    def remember(self, url: str) -> str:
        """Keep the credentials in a configured index URL; return the URL to use
        everywhere else (redacted)."""
        parts = _split(url)
        where = origin(url)
        if parts is not None and where is not None:
            user, password = _userinfo(parts)
            with self._lock:
                self._index_urls.append(strip_userinfo(url))
                if user is not None:
                    cred = Credential(user, password or "", "url")
                    self._known[(where, _redact_userinfo(user, password))] = cred
                    self._by_origin.setdefault(where, cred)
        return redact_url(url)

    def for_url(self, url: str) -> Credential | None:
        """What to send with a request to `url` (which may carry userinfo, real or
        redacted): only ever a credential of that URL's own origin."""
        parts = _split(url)
        where = origin(url)
        if parts is None or where is None:
            return None
        user, password = _userinfo(parts)
        with self._lock:
            if user is not None:
                known = self._known.get((where, _redact_userinfo(user, password)))
                if known is not None and (password == MASK or user == MASK):
                    return known
                # Userinfo written in this URL itself (e.g. a link on the page): its own.
                return Credential(user, password or "", "url")
            known = self._by_origin.get(where)
        if known is not None:
            return known
        return self._from_netrc(where[1])

    def after_401(self, url: str) -> Credential | None:
        """A credential not yet tried, for a URL that answered 401: keyring's, once per
        origin (a keyring backend may be slow, so it is asked only when needed)."""
        where = origin(url)
        parts = _split(url)
        if where is None or parts is None or not self._use_keyring:
            return None
        with self._lock:
            if where in self._keyring_tried:
                return None
            self._keyring_tried.add(where)
            index_url = next(
                (u for u in self._index_urls if origin(u) == where and _under(url, u)), None
            )
        user, _password = _userinfo(parts)
        netloc = strip_userinfo(url).split("//", 1)[-1].split("/", 1)[0]
        cred = _keyring(index_url, user) or _keyring(netloc, user)
        if cred is not None:
            with self._lock:
                self._by_origin[where] = cred
                if user is not None:
                    self._known[(where, _redact_userinfo(user, _password))] = cred
        return cred

    def _from_netrc(self, host: str) -> Credential | None:
        with self._lock:
            if not self._netrc_read:
                self._netrc_read = True
                self._netrc = _read_netrc()
            rc = self._netrc
        if rc is None:
            return None
        entry = rc.authenticators(host)
        if entry is None:
            return None
        login, account, password = entry
        # requests (so pip) takes the account when the login is empty
        return Credential(login or account or "", password or "", "netrc")


def _under(url: str, index_url: str) -> bool:
    return strip_userinfo(url).startswith(index_url.rstrip("/") + "/")


def netrc_path() -> Path | None:
    env = os.environ.get("NETRC")
    if env:
        return Path(env).expanduser()
    home = Path("~").expanduser()
    for name in (".netrc", "_netrc"):
        if (home / name).is_file():
            return home / name
    return None


def _read_netrc() -> netrc.netrc | None:
    path = netrc_path()
    if path is None or not path.is_file():
        return None
    try:
        return netrc.netrc(str(path))
    except (netrc.NetrcParseError, OSError, UnicodeDecodeError):
        return None  # pip ignores a netrc it cannot read, and so does this


_keyring_lock = threading.Lock()
_keyring_off = False


def _keyring(service: str | None, username: str | None) -> Credential | None:
    """keyring's answer for `service`, when keyring is importable; an exception disables
    keyring for the rest of the run, as pip does."""
    global _keyring_off
    if not service or _keyring_off:
        return None
    with _keyring_lock:
        try:
            keyring = importlib.import_module("keyring")
            if hasattr(keyring, "get_credential"):
                cred = keyring.get_credential(service, username)
                if cred is None:
                    return None
                return Credential(str(cred.username), str(cred.password), "keyring")
            if username is not None:
                password = keyring.get_password(service, username)
                return Credential(username, str(password), "keyring") if password else None
        except ImportError:
            _keyring_off = True
        except Exception:  # noqa: BLE001 - any backend failure means "no keyring"
            _keyring_off = True
    return None
