"""pip requirements files, read the way pip reads them, without running pip.

pip has no public API for this, and pip-api's parser drops markers and ``-c`` files, so
this is a small parser that follows pip's own order of work: join continuation lines,
strip comments, expand ``${VAR}``, split a line into its requirement and its options.
What it accepts: requirements with extras, specifiers, markers and ``--hash`` options;
``name @ URL``, bare URLs and paths (named by ``#egg=``, the file name, or the project's
own pyproject.toml); ``-r``/``-c`` includes (relative to the including file; cycles are
an error); ``-e``; ``-i``/``--index-url``, ``--extra-index-url``, ``--no-index``, ``--pre``;
and pip's other options, which do not change what is installed, are accepted and ignored.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from ftaudit.errors import InputError, first_line
from ftaudit.model import Requested, RequirementSet
from ftaudit.sources.lockfile import split_hash, url_problem
from ftaudit.sources.textfile import read_text

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_LINE_CHARS = 1024 * 1024  # a line with hundreds of --hash options is ~100 KB

_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"(?P<var>\$\{(?P<name>[A-Z0-9_]+)\})")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_VCS = ("git+", "hg+", "svn+", "bzr+")
_NAMED_URL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@")
_VIA = re.compile(r"^\s*#\s+via\s*(.*)$")
_VIA_MORE = re.compile(r"^\s*#\s{2,}\S")
# Options that take a value, so that the value is not read as the next option.
_VALUE_OPTIONS = {
    "-i": "index_url",
    "--index-url": "index_url",
    "--extra-index-url": "extra_index_url",
    "-r": "requirement",
    "--requirement": "requirement",
    "-c": "constraint",
    "--constraint": "constraint",
    "-e": "editable",
    "--editable": "editable",
    "-f": "ignored",
    "--find-links": "ignored",
    "--trusted-host": "ignored",
    "--only-binary": "ignored",
    "--no-binary": "ignored",
    "--use-feature": "ignored",
    "--hash": "hash",
    "--config-settings": "ignored",
    "-C": "ignored",
    "--global-option": "ignored",
    "--install-option": "ignored",
}
_FLAG_OPTIONS = {
    "--no-index": "no_index",
    "--pre": "pre",
    "--prefer-binary": "ignored",
    "--require-hashes": "ignored",
}


@dataclass
class _State:
    requested: list[Requested] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    no_index: bool = False
    pre: bool = False


def read_requirements(paths: list[Path]) -> RequirementSet:
    """Read requirements files (and everything they include) into one set."""
    state = _State()
    seen: set[Path] = set()
    for path in paths:
        _read_file(path, state, stack=(), constraint=False, seen=seen)
    return RequirementSet(
        requested=tuple(state.requested),
        files=tuple(state.files),
        index_url=state.index_url,
        extra_index_urls=tuple(dict.fromkeys(state.extra_index_urls)),
        no_index=state.no_index,
        pre=state.pre,
    )


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line number, joined line) after pip's join/comment/env steps."""
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not parts:
            start = number
        if line.endswith("\\") and not _COMMENT.match(line):
            parts.append(line[:-1] + " ")
            continue
        parts.append(line)
        out.append((start, "".join(parts)))
        parts = []
    if parts:
        out.append((start, "".join(parts)))
    return out


def _expand_env(line: str) -> str:
    def sub(m: re.Match[str]) -> str:
        return os.environ.get(m["name"], m["var"])

    return _ENV_VAR.sub(sub, line)


def _read_file(
    path: Path,
    state: _State,
    *,
    stack: tuple[Path, ...],
    constraint: bool,
    seen: set[Path],
) -> None:
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(str(p) for p in (*stack, resolved))
        raise InputError(f"{path}: requirements include cycle: {chain}")
    if resolved in seen:
        return
    seen.add(resolved)
    state.files.append(str(path))
    # pip reads requirements files with a byte-order mark too.
    text = read_text(path, limit=MAX_FILE_BYTES, what="a requirements file", encoding="utf-8-sig")
    via: list[str] | None = None  # the "# via" block after the last requirement, if open
    for number, raw in _logical_lines(text):
        where = f"{path}:{number}"
        if len(raw) > MAX_LINE_CHARS:
            raise InputError(f"{where}: line is longer than {MAX_LINE_CHARS} characters")
        line = _expand_env(_COMMENT.sub("", raw)).strip()
        if not line:
            via = _via(raw, via, state)
            continue
        _read_line(line, where, path, state, stack=(*stack, resolved), constraint=constraint)
        via = []


def _via(comment: str, block: list[str] | None, state: _State) -> list[str] | None:
    """Follow pip-compile's "# via a" / "# via\n#   a\n#   b" annotations: they are the
    only record of who requires whom in a compiled requirements file."""
    if block is None or not state.requested:
        return None
    m = _VIA.match(comment)
    if m:
        block = [*block, *(m[1].split(",") if m[1] else [])]
    elif _VIA_MORE.match(comment) and block is not None:
        block = [*block, comment.lstrip("# ").strip()]
    else:
        return None
    # "-r requirements.in" / "-c ..." entries stay as written: they mark a direct requirement.
    names = tuple(
        v.strip() if v.strip().startswith("-") else canonicalize_name(v.strip())
        for v in block
        if v.strip()
    )
    state.requested[-1] = replace(state.requested[-1], via=names)
    return block


def _split(line: str, where: str) -> tuple[str, list[str]]:
    """The requirement text and the option tokens of a line (pip's break_args_options)."""
    tokens = line.split(" ")
    args: list[str] = []
    for i, token in enumerate(tokens):
        if token.startswith("-"):
            try:
                return " ".join(args).strip(), shlex.split(" ".join(tokens[i:]))
            except ValueError as exc:
                raise InputError(f"{where}: cannot split the options ({exc})") from None
        args.append(token)
    return " ".join(args).strip(), []


def _read_line(
    line: str,
    where: str,
    path: Path,
    state: _State,
    *,
    stack: tuple[Path, ...],
    constraint: bool,
) -> None:
    requirement, options = _split(line, where)
    hashes: list[tuple[str, str]] = []
    editable: str | None = None
    i = 0
    while i < len(options):
        option, has_value, value = options[i].partition("=")
        if option in _FLAG_OPTIONS and not has_value:
            kind = _FLAG_OPTIONS[option]
            if kind == "no_index":
                state.no_index = True
            elif kind == "pre":
                state.pre = True
            i += 1
            continue
        if option not in _VALUE_OPTIONS:
            raise InputError(f"{where}: unknown option {option!r}")
        if not has_value:
            # Short options also take their value glued on: -rfile.txt
            if option.startswith("-") and not option.startswith("--") and len(options[i]) > 2:
                option, value = options[i][:2], options[i][2:]
            elif i + 1 < len(options):
                value = options[i + 1]
                i += 1
            else:
                raise InputError(f"{where}: option {option} needs a value")
        i += 1
        kind = _VALUE_OPTIONS[option]
        if kind in ("index_url", "extra_index_url") and (problem := url_problem(value)):
            raise InputError(f"{where}: {option}: invalid URL {value!r} ({problem})")
        if kind == "index_url":
            state.index_url = value
        elif kind == "extra_index_url":
            state.extra_index_urls.append(value)
        elif kind in ("requirement", "constraint"):
            _include(value, where, path, state, stack, constraint or kind == "constraint")
        elif kind == "editable":
            editable = value
        elif kind == "hash":
            pair = split_hash(value)
            if pair is None:
                raise InputError(f"{where}: invalid --hash {value!r}: expected sha256:<hex>")
            hashes.append(pair)
    if editable is not None:
        if requirement:
            raise InputError(f"{where}: -e takes one path or URL, not also {requirement!r}")
        requirement = editable
    if not requirement:
        if hashes:
            raise InputError(f"{where}: --hash without a requirement")
        return
    text, name = _requirement(requirement, where, path.parent)
    state.requested.append(
        Requested(
            requirement=text,
            name=name,
            origin=where,
            hashes=tuple(hashes),
            constraint=constraint,
            editable=editable is not None,
        )
    )


def _include(
    value: str,
    where: str,
    path: Path,
    state: _State,
    stack: tuple[Path, ...],
    constraint: bool,
) -> None:
    if _URL.match(value) and not value.startswith("file:"):
        raise InputError(
            f"{where}: including a remote requirements file ({value}) is not supported"
        )
    if problem := url_problem(value):
        raise InputError(f"{where}: invalid URL {value!r} ({problem})")
    target = Path(unquote(urlsplit(value).path)) if value.startswith("file:") else Path(value)
    if not target.is_absolute():
        target = path.parent / target
    if not target.is_file():
        raise InputError(f"{where}: included file {value} not found")
    _read_file(target, state, stack=stack, constraint=constraint, seen=set())


def _requirement(text: str, where: str, base: Path) -> tuple[str, str]:
    """(PEP 508 text, canonical name) for one requirement, URL or path."""
    if _URL.match(text) or text.startswith(_VCS) or _looks_like_path(text, base):
        return _direct_reference(text, where, base)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise InputError(f"{where}: invalid requirement {text!r}: {first_line(exc)}") from None
    return str(req), canonicalize_name(req.name)


def _looks_like_path(text: str, base: Path) -> bool:
    if _NAMED_URL.match(text):
        return False  # "name @ url" is PEP 508, whatever the URL looks like
    head = text.split(";", 1)[0].strip()
    if head.startswith((".", "/", "~")) or os.sep in head or "/" in head:
        return True
    return head.endswith((".whl", ".tar.gz", ".zip")) and (base / head).exists()


def _direct_reference(text: str, where: str, base: Path) -> tuple[str, str]:
    location, _, marker = text.partition(" ;")
    if not marker and ";" in location and not _URL.match(location):
        location, _, marker = location.partition(";")
    location = location.strip()
    marker = marker.strip()
    if problem := url_problem(location):
        raise InputError(f"{where}: invalid URL {location!r} ({problem})")
    name = _name_of_location(location, base)
    if name is None:
        raise InputError(
            f"{where}: cannot tell which project {location!r} is: add #egg=<name> "
            "or write it as '<name> @ <url>'"
        )
    if _URL.match(location) or location.startswith(_VCS):
        url = location
    else:
        url = (base / location).resolve().as_uri()
    text = f"{name} @ {url}" + (f" ; {marker}" if marker else "")
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise InputError(f"{where}: invalid requirement {text!r}: {first_line(exc)}") from None
    return str(req), canonicalize_name(name)


def _name_of_location(location: str, base: Path) -> str | None:
    parts = urlsplit(location)
    egg = re.search(r"(?:^|&)egg=([A-Za-z0-9._-]+)", parts.fragment)
    if egg:
        return canonicalize_name(egg.group(1))
    filename = Path(unquote(parts.path)).name
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        if filename.endswith((".tar.gz", ".zip")):
            return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    if _URL.match(location) and not location.startswith("file:"):
        return None
    local = Path(unquote(parts.path)) if location.startswith("file:") else Path(location)
    local = local if local.is_absolute() else base / local
    return _local_project_name(local)


def _local_project_name(directory: Path) -> str | None:
    from ftaudit.sources.pyproject import load_toml

    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        project = load_toml(pyproject).get("project")
        if isinstance(project, dict) and isinstance(project.get("name"), str):
            return canonicalize_name(project["name"])
    return None
