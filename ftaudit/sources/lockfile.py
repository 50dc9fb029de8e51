"""What every lockfile reader shares: typed access to parsed TOML/JSON with errors that name
the file and the entry, and the pieces (hashes, pinned files, edges) they all build."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ftaudit.errors import InputError, first_line
from ftaudit.model import Edge, LockedPackage, PinnedFile
from ftaudit.sources.markers import valid_marker
from ftaudit.sources.textfile import read_text

T = TypeVar("T")
MAX_JSON_BYTES = 64 * 1024 * 1024
_HEX = re.compile(r"^[0-9a-fA-F]+$")
# Hex digits each algorithm's digest has: a pinned sha256 also names a cache file.
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128, "md5": 32, "sha1": 40}


class Entry:
    """One table of a lockfile, with the path of keys that leads to it (for messages)."""

    def __init__(self, path: Path, where: str, data: object) -> None:
        if not isinstance(data, dict):
            raise InputError(f"{path}: {where}: expected a table, got {type(data).__name__}")
        self.path = path
        self.where = where
        self.data: dict[str, Any] = data

    def error(self, message: str) -> InputError:
        return InputError(f"{self.path}: {self.where}: {message}")

    def _get(self, key: str, kind: type[T], required: bool) -> T | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.error(f"missing {key!r}")
            return None
        if not isinstance(value, kind):
            raise self.error(f"{key!r} should be a {kind.__name__}, not {type(value).__name__}")
        return value

    def text(self, key: str) -> str:
        value = self._get(key, str, True)
        assert value is not None
        return value

    def opt_text(self, key: str) -> str | None:
        return self._get(key, str, False)

    def array(self, key: str) -> list[Any]:
        return self._get(key, list, False) or []

    def mapping(self, key: str) -> dict[str, Any]:
        return self._get(key, dict, False) or {}

    def entries(self, key: str) -> list[Entry]:
        return self.entries_in(key, self.array(key))

    def entries_in(self, where: str, value: object) -> list[Entry]:
        """Tables of an array found under some other key (e.g. one extra's edges)."""
        if not isinstance(value, list):
            raise self.error(f"{where} should be an array")
        return [Entry(self.path, f"{self.where}.{where}[{i}]", v) for i, v in enumerate(value)]

    def child(self, key: str) -> Entry:
        return Entry(self.path, f"{self.where}.{key}", self.mapping(key))


def load_json(path: Path) -> dict[str, Any]:
    text = read_text(path, limit=MAX_JSON_BYTES, what="a lock file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object at the top")
    return data


def split_hash(text: str, *, strict: bool = False) -> tuple[str, str] | None:
    """("sha256", hex digest) from "sha256:<hex>", lower case; None if malformed. With
    `strict`, a digest must also have its algorithm's length (a lock's, which names the
    file to fetch; pip's --hash only ever compares)."""
    algo, sep, digest = text.partition(":")
    if not sep or not algo or not _valid_digest(algo, digest, strict=strict):
        return None
    return algo.lower(), digest.lower()


def _valid_digest(algo: str, digest: str, *, strict: bool = True) -> bool:
    length = _DIGEST_LENGTHS.get(algo.lower()) if strict else None
    return bool(_HEX.match(digest)) and (length is None or len(digest) == length)


def parse_hash(text: str, entry: Entry) -> tuple[str, str]:
    found = split_hash(text, strict=True)
    if found is None:
        raise entry.error(f"invalid hash {text!r}: expected <algorithm>:<hex digest>")
    return found


def hash_table(table: dict[str, Any], entry: Entry) -> tuple[tuple[str, str], ...]:
    out = []
    for algo, digest in table.items():
        if not isinstance(digest, str) or not _valid_digest(algo, digest):
            raise entry.error(f"invalid {algo} hash {digest!r}")
        out.append((algo.lower(), digest.lower()))
    return tuple(out)


def filename_of(url: str) -> str:
    """The file name at the end of a URL; ValueError for a URL that does not parse."""
    return unquote(Path(urlsplit(url).path).name)


def url_problem(url: str) -> str | None:
    """Why urllib cannot take a URL apart (an unbalanced IPv6 bracket, a port that is not
    a number), or None."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises only here
        url.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        return str(exc) or type(exc).__name__
    return None


def checked_url(url: str | None, entry: Entry, key: str = "url") -> str | None:
    """A URL urllib can take apart; an error naming the field otherwise."""
    if url is None:
        return None
    problem = url_problem(url)
    if problem:
        raise entry.error(f"{key!r}: invalid URL {url!r} ({problem})")
    return url


def pinned(
    entry: Entry,
    *,
    url: str | None,
    filename: str | None,
    hashes: tuple[tuple[str, str], ...],
    size: object = None,
) -> PinnedFile:
    url = checked_url(url, entry)
    name = filename or (filename_of(url) if url else None)
    if not name:
        raise entry.error("a file needs a url or a file name")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise entry.error(f"'size' should be a number of bytes, not {size!r}")
    return PinnedFile(filename=name, url=url, hashes=hashes, size=size)


def checked_marker(text: str | None, entry: Entry) -> str | None:
    if not text:
        return None
    reason = valid_marker(text)
    if reason:
        raise entry.error(f"invalid marker {text!r}: {reason}")
    return text


def checked_version(text: str | None, entry: Entry) -> str | None:
    if text is None:
        return None
    try:
        Version(text)
    except InvalidVersion:
        raise entry.error(f"invalid version {text!r}") from None
    return text


def requirement_edge(text: str, entry: Entry) -> Edge:
    """An edge from a PEP 508 string (pdm.lock, pylock dependencies, metadata)."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise entry.error(f"invalid requirement {text!r}: {first_line(exc)}") from None
    return Edge(
        name=canonicalize_name(req.name),
        marker=str(req.marker) if req.marker else None,
        extras=tuple(sorted(canonicalize_name(e) for e in req.extras)),
        specifier=str(req.specifier),
    )


def merge_variants(packages: list[LockedPackage]) -> list[LockedPackage]:
    """One entry per (name, version): PDM writes `pkg` and `pkg[extra]` as two entries."""
    merged: dict[tuple[str, str | None], LockedPackage] = {}
    for pkg in packages:
        key = (pkg.name, pkg.version)
        if key not in merged:
            merged[key] = pkg
            continue
        first = merged[key]
        deps = tuple(dict.fromkeys((*first.dependencies, *pkg.dependencies)))
        merged[key] = LockedPackage(
            name=first.name,
            display_name=first.display_name,
            version=first.version,
            marker=first.marker,
            requires_python=first.requires_python,
            files=first.files or pkg.files,
            dependencies=tuple(d for d in deps if d.name != first.name),
            optional=first.optional + pkg.optional,
            index=first.index,
            direct_reference=first.direct_reference,
            is_project=first.is_project,
        )
    return list(merged.values())
