"""Fuzz targets: the Simple API page readers (PEP 691 JSON, PEP 503 HTML) and the cache's
facts decoder, with the invariants the scan relies on.

An index page is hostile input: each target parses it, then checks what the cache would
make of every file listed (a digest it uses is 64 hex digits; a cache key never holds a
path separator). A cached facts row is damaged input: it decodes or is rejected, and what
decodes encodes back to the same record.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

from ftaudit.cache import artifact_key
from ftaudit.codec import decode_facts, facts_to_json
from ftaudit.errors import CacheError, IndexIntegrityError, PackageIndexError
from ftaudit.index.simple import IndexFile, parse_html_page, parse_json_page
from ftaudit.model import ArtifactFacts, BinaryFormat, Evidence, Extension, Gil, Init, Library
from tests.fuzz.harness import Target

PAGE_URL = "https://index.example/simple/pkg/"
_KEY = re.compile(r"(?:url-)?[0-9a-f]{64}")
_SHA = re.compile(r"[0-9a-f]{64}")
WHEELS = Path(__file__).resolve().parents[1] / "data" / "locks" / "index"


def _check_files(files: tuple[IndexFile, ...]) -> None:
    """What the scan trusts of a parsed listing: a digest it keeps is one, and the cache
    key derived from it names one directory inside the cache."""
    for f in files:
        assert isinstance(f.filename, str) and isinstance(f.url, str)
        assert f.sha256 is None or _SHA.fullmatch(f.sha256), f.sha256
        assert f.core_metadata in (None, "") or _SHA.fullmatch(f.core_metadata)
        assert f.size is None or (isinstance(f.size, int) and f.size >= 0)
        try:
            key = artifact_key(f.url, f.sha256)
        except IndexIntegrityError:  # pragma: no cover - the parser already refused it
            raise AssertionError(f"parser kept a digest the cache refuses: {f.sha256!r}") from None
        assert _KEY.fullmatch(key), key


def run_json(data: bytes) -> object:
    page = parse_json_page(data, PAGE_URL)
    _check_files(page.files)
    return page


def run_html(data: bytes) -> object:
    page = parse_html_page(data, PAGE_URL)
    _check_files(page.files)
    return page


def run_facts(data: bytes) -> object:
    facts = decode_facts(data.decode("utf-8", "replace"))
    again = decode_facts(facts_to_json(facts))
    assert again == facts, "a decoded row does not encode back to itself"
    return facts


# --- seeds: pages as an index serves them for the fixture wheels ----------------------


def _entries() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for wheel in sorted(WHEELS.glob("*.whl"))[:6]:
        data = wheel.read_bytes()
        out.append(
            {
                "filename": wheel.name,
                "url": f"../../files/{wheel.name}",
                "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                "requires-python": ">=3.10",
                "yanked": False,
                "size": len(data),
                "upload-time": "2026-01-02T03:04:05Z",
                "core-metadata": {"sha256": hashlib.sha256(data[:64]).hexdigest()},
            }
        )
    return out


def json_seeds() -> list[bytes]:
    entries = _entries()
    full = {"meta": {"api-version": "1.1"}, "name": "pkg", "files": entries}
    yanked = [{**e, "yanked": "broken build", "core-metadata": True} for e in entries[:2]]
    return [
        json.dumps(full).encode(),
        json.dumps({"meta": {"api-version": "1.0"}, "name": "pkg", "files": []}).encode(),
        json.dumps({"meta": {"api-version": "1.1"}, "name": "pkg", "files": yanked}).encode(),
    ]


def html_seeds() -> list[bytes]:
    links = []
    for e in _entries():
        hashes = e["hashes"]
        assert isinstance(hashes, dict)
        links.append(
            f'<a href="{e["url"]}#sha256={hashes["sha256"]}" data-requires-python="&gt;=3.10"'
            f' data-core-metadata="sha256={hashes["sha256"]}">{e["filename"]}</a><br/>'
        )
    page = "<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>"
    based = '<html><head><base href="https://files.example/x/"></head><body>'
    based += '<a href="a-1.0-py3-none-any.whl" data-yanked="">a-1.0-py3-none-any.whl</a>'
    return [page.encode(), based.encode(), b"<html><body></body></html>"]


def facts_seeds() -> list[bytes]:
    ext = Extension(
        path="pkg/_core.cpython-313t-x86_64-linux-gnu.so",
        module="pkg._core",
        gil=Gil.NOT_USED,
        init=Init.MULTI_PHASE,
        format=BinaryFormat.ELF,
        free_threaded_build=True,
        detail="Py_mod_gil = Py_MOD_GIL_NOT_USED",
        evidence=Evidence.INSPECTED,
        handed_to=("PyInit_other",),
    )
    full = ArtifactFacts(
        artifact="pkg-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl",
        tags=("cp313-cp313t-manylinux_2_17_x86_64",),
        extensions=(ext,),
        libraries=(Library(path="pkg.libs/libz.so.1", why="no PyInit_"),),
        unreadable=(("pkg/_bad.so", "truncated ELF header"),),
        classifiers=("Programming Language :: Python :: Free Threading :: 3 - Stable",),
        import_names=("pkg",),
    )
    return [facts_to_json(full).encode(), facts_to_json(ArtifactFacts(artifact="p")).encode()]


# --- structure-aware mutations ---------------------------------------------------------

_ODD_VALUES = (
    "3",
    "-1",
    "true",
    "null",
    "[]",
    "{}",
    '"../../escaped"',
    '"http://[::1/x.whl"',
    '"' + "a" * 5000 + '"',
    "1e400",
    '"\\ud800"',
    "[" * 50 + "]" * 50,
)
_JSON_VALUE = re.compile(rb'(?<=": )("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)')


def mutate_json_value(data: bytes, rng: random.Random) -> bytes:
    """Replace one value of the page by one of another type or a hostile string."""
    spots = list(_JSON_VALUE.finditer(data))
    if not spots:
        return data
    m = rng.choice(spots)
    return data[: m.start()] + rng.choice(_ODD_VALUES).encode() + data[m.end() :]


def mutate_json_digest(data: bytes, rng: random.Random) -> bytes:
    """A sha256 that is not one: a path, too short, too long, not hex."""
    digest = re.search(rb'"sha256": "([0-9a-f]{64})"', data)
    if digest is None:
        return data
    bad = rng.choice([b"../../../escaped", digest[1][:63], digest[1] + b"0", b"Z" * 64, b""])
    return data[: digest.start(1)] + bad + data[digest.end(1) :]


def mutate_html_href(data: bytes, rng: random.Random) -> bytes:
    """Break one link: brackets, a bad port, a hostile fragment, an unclosed tag."""
    spots = [m.start() for m in re.finditer(rb'href="', data)]
    if not spots:
        return data
    at = rng.choice(spots) + len(b'href="')
    insert = rng.choice(
        [
            b"http://[::1",
            b"http://h:port/",
            b"#sha256=../../x",
            b'"><a href="',
            b"<![CDATA[",
            b"<!--",
            b"&#x110000;",
        ]
    )
    return data[:at] + insert + data[at:]


def mutate_facts_value(data: bytes, rng: random.Random) -> bytes:
    return mutate_json_value(data, rng)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            name="simple-json",
            run=run_json,
            seeds=json_seeds(),
            clean_errors=(PackageIndexError,),
            mutators=(mutate_json_value, mutate_json_digest),
            instrument=("ftaudit.index", "ftaudit.cache"),
        ),
        Target(
            name="simple-html",
            run=run_html,
            seeds=html_seeds(),
            clean_errors=(PackageIndexError,),
            mutators=(mutate_html_href,),
            instrument=("ftaudit.index", "ftaudit.cache", "html.parser", "urllib.parse"),
        ),
        Target(
            name="cache-facts",
            run=run_facts,
            seeds=facts_seeds(),
            clean_errors=(CacheError,),
            mutators=(mutate_facts_value,),
            instrument=("ftaudit.codec",),
        ),
    )
}
