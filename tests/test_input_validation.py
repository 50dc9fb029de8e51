"""Everything that comes from outside is checked before it is used: index pages (each
field's type), lockfiles and pyproject.toml (the exact field at fault), URLs, digests.
Bad input is one line naming the file and exit 2, or an index failure for that page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftaudit.cache import Cache, artifact_key
from ftaudit.cli import main
from ftaudit.errors import IndexIntegrityError, PackageIndexError
from ftaudit.index.simple import parse_html_page, parse_json_page

LOCKS = Path(__file__).parent / "data" / "locks"
URL = "https://index.example/simple/pkg/"
SHA = "ab" * 32
GOOD = {"filename": "pkg-1.0-py3-none-any.whl", "url": "pkg-1.0-py3-none-any.whl"}


def page(**fields: object) -> bytes:
    return json.dumps({"meta": {"api-version": "1.1"}, "files": [{**GOOD, **fields}]}).encode()


# --- PEP 691 JSON ---------------------------------------------------------------------


def test_a_well_formed_json_page() -> None:
    parsed = parse_json_page(
        page(
            hashes={"sha256": SHA.upper(), "md5": "x"},
            **{"requires-python": ">=3.10", "core-metadata": {"sha256": SHA}},
            size=10,
            yanked="broken",
        ),
        URL,
    )
    (f,) = parsed.files
    assert (f.sha256, f.requires_python, f.size, f.yanked) == (SHA, ">=3.10", 10, True)
    assert f.url == URL + GOOD["url"] and f.core_metadata == SHA and f.integrity_error is None


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"[1, 2]", "expected an object at the top, got list"),
        (b'{"files": {}}', "in 'files': expected an array, got dict"),
        (b'{"files": ["x"]}', "in 'files[0]': expected an object, got str"),
        (page(filename=None), "'filename' and 'url' are required"),
        (page(filename=3), "'files[0].filename': expected str, got int"),
        (page(**{"requires-python": 3}), "'files[0].requires-python': expected str, got int"),
        (page(**{"upload-time": 1.5}), "'files[0].upload-time': expected str, got float"),
        (page(hashes="sha256"), "'files[0].hashes': expected dict, got str"),
        (page(hashes={"sha256": 5}), "'files[0].hashes.sha256': expected str, got int"),
        (page(size=True), "'files[0].size': expected int, got bool"),
        (page(size=-1), "'files[0].size': expected a size"),
        (page(yanked=[]), "'files[0].yanked': expected bool or str, got list"),
        (page(**{"core-metadata": 1}), "'files[0].core-metadata'"),
        (page(**{"core-metadata": {"sha256": 1}}), "'files[0].core-metadata.sha256'"),
        (page(url="x\ud800.whl"), "'files[0].url': not valid Unicode"),
        (page(filename="\udcff"), "'files[0].filename': not valid Unicode"),
        (b"{not json", "malformed PEP 691 JSON"),
        (b"[" * 100_000, "malformed PEP 691 JSON"),
    ],
)
def test_json_fields_of_the_wrong_type_name_the_field(body: bytes, needle: str) -> None:
    with pytest.raises(PackageIndexError) as exc:
        parse_json_page(body, URL)
    assert needle in str(exc.value) and str(exc.value).startswith(URL)


def test_a_json_link_that_does_not_parse_is_skipped_and_said() -> None:
    parsed = parse_json_page(page(url="http://[::1/pkg-1.0-py3-none-any.whl"), URL)
    assert parsed.files == ()
    (note,) = parsed.skipped
    assert "unparsable URL" in note and "pkg-1.0-py3-none-any.whl" in note


@pytest.mark.parametrize("digest", ["../../escaped", "ab" * 31, "zz" * 32, "ab" * 33, ""])
def test_a_sha256_that_is_not_one_is_an_integrity_error_for_that_file(digest: str) -> None:
    (f,) = parse_json_page(page(hashes={"sha256": digest}), URL).files
    if digest == "":
        assert f.sha256 is None  # no digest at all: the cache names it by its URL
        return
    assert f.sha256 is None and f.integrity_error is not None
    assert "is not 64 hex digits" in f.integrity_error


# --- PEP 503 HTML --------------------------------------------------------------------


def test_html_links_that_do_not_parse_are_skipped_with_a_note() -> None:
    body = (
        f'<a href="pkg-1.0-py3-none-any.whl#sha256={SHA}">pkg-1.0-py3-none-any.whl</a>'
        '<a href="http://[::1/pkg-1.1-py3-none-any.whl">pkg-1.1</a>'
        '<a href="pkg-1.2-py3-none-any.whl#sha256=../../x">pkg-1.2</a>'
        "<a>no href</a>"
    ).encode()
    parsed = parse_html_page(body, URL)
    assert [f.filename for f in parsed.files] == [
        "pkg-1.0-py3-none-any.whl",
        "pkg-1.2-py3-none-any.whl",
    ]
    assert parsed.files[0].sha256 == SHA
    assert parsed.files[1].sha256 is None and parsed.files[1].integrity_error
    (note,) = parsed.skipped
    assert "unparsable URL" in note


def test_an_unparsable_html_base_is_an_index_error() -> None:
    with pytest.raises(PackageIndexError, match="base href"):
        parse_html_page(b'<base href="http://[::1/"><a href="x.whl">x</a>', URL)


# --- the cache never derives a path from an unchecked digest ---------------------------


@pytest.mark.parametrize("digest", ["../../escaped", "/etc", "ab" * 31 + "/.", "AB" * 31 + "ZZ"])
def test_cache_paths_come_only_from_hex_digests(digest: str, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    try:
        with pytest.raises(IndexIntegrityError, match="is not 64 hex digits"):
            cache.artifact_path("https://x.example/a.whl", "a.whl", digest)
        with pytest.raises(IndexIntegrityError):
            cache.artifact_path("https://x.example/a.whl", "..", SHA)
        path = cache.artifact_path("https://x.example/a.whl", "../../a.whl", SHA)
        assert path.parent.parent.parent == tmp_path / "c" / "artifacts"
        assert path.name == "a.whl"
    finally:
        cache.close()
    assert artifact_key("https://x.example/a.whl", None).startswith("url-")
    assert artifact_key("u", SHA.upper()) == SHA


# --- lockfiles: the exact field at fault ----------------------------------------------


def _fails(path: Path, capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    code = main(["scan", str(path), "--offline", "--target", "3.14t"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", err
    (line,) = err.splitlines()
    assert line.startswith(f"ftaudit: error: {path}") and "Traceback" not in err
    for needle in needles:
        assert needle in line, line


def _edited(kind: str, name: str, old: str, new: str, tmp_path: Path) -> Path:
    text = (LOCKS / kind / name).read_text()
    assert old in text, old
    dest = tmp_path / name
    dest.write_text(text.replace(old, new, 1))
    return dest


UV_CORE_WHEEL = '{ url = "http://127.0.0.1:47391/files/ftlk_core-1.0-py3-none-any.whl"'
UV_CORE_HASH = 'hash = "sha256:0c13bb23b254705bbe25b4525c96823d5beb360eeb9202f55d330ca6480a783e"'


@pytest.mark.parametrize(
    ("kind", "name", "old", "new", "needles"),
    [
        (
            "uv",
            "uv.lock",
            '    { name = "ftlk-util" },\n]',
            '    { name = "ftlk-util", extra = 5 },\n]',
            ("package[0].dependencies[0]", "'extra' should be a list, not int"),
        ),
        (
            "uv",
            "uv.lock",
            '    { name = "ftlk-util" },\n]',
            '    { name = "ftlk-util", extra = [5] },\n]',
            ("package[0].dependencies[0]", "'extra' should be an array of strings"),
        ),
        (
            "uv",
            "uv.lock",
            UV_CORE_WHEEL,
            '{ url = "http://127.0.0.1:47391[/]files/ftlk_core-1.0-py3-none-any.whl"',
            ("package[0].wheels[0]", "invalid URL", "IPv6"),
        ),
        (
            "uv",
            "uv.lock",
            UV_CORE_WHEEL,
            '{ url = "http://127.0.0.1:port/files/ftlk_core-1.0-py3-none-any.whl"',
            ("package[0].wheels[0]", "invalid URL"),
        ),
        (
            "uv",
            "uv.lock",
            UV_CORE_HASH,
            'hash = "sha256:0c13bb23"',
            ("package[0].wheels[0]", "invalid hash"),
        ),
        (
            "uv",
            "uv.lock",
            "size = 906",
            "size = true",
            ("package[0].wheels[0]", "'size' should be a number of bytes"),
        ),
        (
            "uv",
            "uv.lock",
            "dependencies = [\n",
            'sdist = "x"\ndependencies = [\n',
            ("package[0].sdist", "expected a table"),
        ),
        (
            "uv",
            "uv.lock",
            "[package.optional-dependencies]\nspeed = [",
            "[package.optional-dependencies]\nspeed = 3\nfoo = [",
            ("optional-dependencies.speed should be an array",),
        ),
    ],
)
def test_lock_fields_of_the_wrong_type_name_the_field(
    kind: str,
    name: str,
    old: str,
    new: str,
    needles: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _fails(_edited(kind, name, old, new, tmp_path), capsys, *needles)


def test_pylock_urls_and_digests_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (LOCKS / "pylock" / "pylock.toml").read_text()
    marker = 'url = "http://127.0.0.1:47391/files/'
    assert marker in text
    bad = tmp_path / "pylock.toml"
    bad.write_text(text.replace(marker, 'url = "http://127.0.0.1:47391[/]files/', 1))
    _fails(bad, capsys, "IPv6", "'packages[0]")  # packaging.pylock names it itself
    digest = text.split('sha256 = "', 1)[1].split('"', 1)[0]
    bad.write_text(text.replace(digest, digest[:10], 1))
    _fails(bad, capsys, "invalid sha256 hash", ".hashes'")


# --- pyproject.toml -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('tool = "x"\n[project]\nname = "p"\n', "in 'tool': expected a table, got a string"),
        ('[tool]\nftaudit = "x"\n', "in 'tool.ftaudit': expected a table, got a string"),
        ("[tool]\npoetry = [1]\n", "in 'tool.poetry': expected a table, got an array"),
        ('project = "p"\n', "in 'project': expected a table, got a string"),
        (
            '[project]\nname = "p"\noptional-dependencies = 3\n',
            "in 'project.optional-dependencies': expected a table, got int",
        ),
        (
            '[project]\nname = "p"\n[project.optional-dependencies]\nx = "six"\n',
            "in 'project.optional-dependencies.x': expected an array, got a string",
        ),
        (
            '[project]\nname = "p"\nrequires-python = 3\n',
            "in 'project.requires-python': expected a string, got int",
        ),
        ('dependency-groups = "x"\n', "in 'dependency-groups': expected a table"),
        (
            '[tool.poetry.dependencies]\nsix = { version = "1", extras = 5 }\n',
            "tool.poetry.dependencies.six.extras: expected an array of strings",
        ),
        (
            "[tool.poetry.dependencies]\nsix = { version = 1 }\n",
            "tool.poetry.dependencies.six.version: expected a string, got int",
        ),
        ('[tool.poetry.group]\ndev = "x"\n', "in 'tool.poetry.group.dev': expected a table"),
    ],
)
def test_pyproject_shapes_name_the_key(
    toml: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(toml)
    code = main(["scan", str(tmp_path / "pyproject.toml"), "--offline", "--target", "3.14t"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert "pyproject.toml" in line and needle in line, line


def test_pdm_lock_beside_a_pyproject_whose_tool_is_not_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pdm.lock").write_text((LOCKS / "pdm" / "pdm.lock").read_text())
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\n[tool]\npdm = 3\n')
    code = main(["scan", str(tmp_path / "pdm.lock"), "--offline", "--target", "3.14t"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert "pyproject.toml: in 'tool.pdm': expected a table, got int" in line


# --- URLs wherever they come from -----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("--index-url http://[::1/simple", "--index-url: invalid URL"),
        ("--extra-index-url http://h:port/simple", "--extra-index-url: invalid URL"),
        ("-e http://[::1/x#egg=six", "invalid URL 'http://[::1/x#egg=six'"),
        ("-r file://[x/r.txt", "invalid URL 'file://[x/r.txt'"),
    ],
)
def test_requirements_urls_that_do_not_parse(
    line: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(f"{line}\nsix==1.16.0\n")
    code = main(["scan", str(req), "--offline", "--target", "3.14t"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (message,) = err.splitlines()
    assert message.startswith(f"ftaudit: error: {req}:1: ") and needle in message


def test_index_urls_from_the_command_line_and_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("six==1.16.0\n")
    code = main(["scan", str(req), "--offline", "--extra-index-url", "http://[::1/s"])
    assert code == 2
    assert "--extra-index-url: invalid URL 'http://[::1/s'" in capsys.readouterr().err
    (tmp_path / "pyproject.toml").write_text('[tool.ftaudit]\nindex-url = "http://h:x/"\n')
    assert main(["scan", str(tmp_path), "--offline"]) == 2
    err = capsys.readouterr().err
    assert "[tool.ftaudit].index-url: invalid URL 'http://h:x/'" in err


def test_a_lock_registry_that_does_not_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = 'source = { registry = "http://127.0.0.1:47391/simple/" }'
    path = _edited("uv", "uv.lock", old, 'source = { registry = "http://[::1/simple/" }', tmp_path)
    _fails(path, capsys, "package[0]", "'source.registry': invalid URL")


@pytest.mark.parametrize(
    "href",
    [
        "https://files.example/p/x-1.0-py3-none-any.whl",
        "https://files.example/p/x-1.0-py3-none-any.whl#sha256=" + "a" * 64,
        "http://files.example:8080/p/x.whl?token=1",
        "https://files.example/p/x.whl?",
        "https://files.example/p;v=1/x.whl",
        "HTTPS://Files.Example/p/x.whl",
        "../../packages/x.whl",
        "/packages/x.whl",
        "x.whl",
    ],
)
def test_file_urls_resolve_as_urljoin_does(href: str) -> None:
    from urllib.parse import urljoin

    from ftaudit.index.simple import _absolute

    base = "https://index.example/simple/x/"
    assert _absolute(base, href) == urljoin(base, href)
