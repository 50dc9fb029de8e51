"""The records every stage of the pipeline passes to the next: frozen, hashable, no I/O."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


class Gil(str, enum.Enum):
    """What one extension module declares about the GIL."""

    NOT_USED = "not_used"
    USED = "used"
    UNDECLARED = "undeclared"
    UNKNOWN = "unknown"


class Init(str, enum.Enum):
    MULTI_PHASE = "multi-phase"
    SINGLE_PHASE = "single-phase"
    EXPORT = "export"  # PEP 793 PyModExport_<name>
    UNKNOWN = "unknown"


class BinaryFormat(str, enum.Enum):
    ELF = "elf"
    MACHO = "macho"
    PE = "pe"


class Status(str, enum.Enum):
    """Readiness of one package for one target; declared from best to worst."""

    READY = "ready"
    GIL = "gil"
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    BUILD = "build"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"


class Incomplete(str, enum.Enum):
    """Why a package could not be checked: a failure of the run, never a property of the
    package (an `unknown` a binary reader cannot prove is a finding, and has none)."""

    NETWORK = "network"  # a host did not answer
    INDEX = "index"  # an index answered with an error or a page that does not parse
    OFFLINE = "offline"  # --offline, and the cache does not hold what was needed
    CACHE = "cache"  # the cache could not give back what it holds
    INTEGRITY = "integrity"  # a file or a listing is not what its digest says


class Evidence(str, enum.Enum):
    """How a verdict is known; declared from strongest to weakest."""

    VERIFIED = "verified"
    INSPECTED = "inspected"
    TAGS = "tags"
    CLASSIFIER = "classifier"
    PURE = "pure"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A free-threaded interpreter a project may move to, e.g. ``3.14t``."""

    major: int
    minor: int

    @property
    def name(self) -> str:
        return f"{self.major}.{self.minor}t"

    @property
    def version(self) -> tuple[int, int]:
        return (self.major, self.minor)

    @property
    def abi(self) -> str:
        return f"cp{self.major}{self.minor}t"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class Extension:
    """One compiled extension module and what its binary declares."""

    path: str
    module: str
    gil: Gil
    init: Init
    format: BinaryFormat
    free_threaded_build: bool | None
    detail: str
    evidence: Evidence = Evidence.INSPECTED
    # Imported functions its init hands the module's creation to, still to be found in
    # another file of the same artifact (a library beside it).
    handed_to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Library:
    """A shared library that is not an extension module (vendored, ctypes or cffi loaded)."""

    path: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactFacts:
    """What reading one artifact (a wheel, a binary, an installed distribution) found."""

    artifact: str
    tags: tuple[str, ...] = ()
    extensions: tuple[Extension, ...] = ()
    libraries: tuple[Library, ...] = ()
    # Binaries that could not be read: (path, reason). They make a verdict unknown.
    unreadable: tuple[tuple[str, str], ...] = ()
    classifiers: tuple[str, ...] = ()
    import_names: tuple[str, ...] = ()  # top-level modules and packages it installs
    # How the bytes were had: "whole" (a local file, or downloaded whole and its sha256
    # checked where one was known) or "ranges" (only the members judged were fetched:
    # their sizes and CRC-32s checked against the zip directory, not the file's sha256).
    read: str = "whole"
    # Installs no code: only its dist-info, or nothing but empty __init__.py files (a
    # name held on an index, a release withdrawn by emptying it). Never a fix.
    placeholder: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SdistFacts:
    """What an sdist's file list and build configuration say (read, never built)."""

    artifact: str
    files: int = 0
    backend: str | None = None  # its build backend (setuptools' legacy one without)
    # What says it builds more than Python: "src/x.c (C)", "setup.py: ext_modules".
    compiles: tuple[str, ...] = ()
    unreadable: str | None = None  # why it was not read to the end


@dataclass(frozen=True, slots=True, kw_only=True)
class PinnedFile:
    """An artifact a lock or a hash-checking requirements file pins for a package."""

    filename: str
    url: str | None  # None: look the file up on the index by name and hash
    hashes: tuple[tuple[str, str], ...] = ()  # (algorithm, hex digest), lower case
    size: int | None = None

    @property
    def sha256(self) -> str | None:
        return next((h for algo, h in self.hashes if algo == "sha256"), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependency:
    """One distribution the project depends on, as a source reported it."""

    name: str  # canonical (PEP 503 normalised)
    display_name: str
    version: str | None
    direct: bool = True
    required_by: tuple[str, ...] = ()
    # Where the version comes from: a lock or an exact pin (True), or ftaudit chose the
    # newest release the target can install (False).
    locked: bool = True
    files: tuple[PinnedFile, ...] = ()  # what the source pins; empty: the index decides
    # Hashes the source accepts for any artifact of this package ("--hash" lines).
    hashes: tuple[tuple[str, str], ...] = ()
    # Index URL the source names for this package (a lock's registry), if any.
    index: str | None = None
    # Not from an index: a URL, a local path or a VCS checkout ("url", "path", "vcs").
    direct_reference: str | None = None
    specifier: str = ""  # what an unlocked requirement allows
    # Who asks for it with which specifier ("project" or a file:line for the project's own
    # requirements, else the requiring package): what an upgrade must stay within.
    requirements: tuple[tuple[str, str], ...] = ()
    # Packages that require it whose requirement could not be read (their metadata did
    # not answer): a version advised over it may be one they rule out.
    requirements_unknown: tuple[str, ...] = ()
    # (package, extra): it is installed only because that package's extra was asked for,
    # with the package's other extras that pull in an alternative to it.
    through_extras: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Requested:
    """A requirement the project states itself: a requirements line or a pyproject entry."""

    requirement: str  # PEP 508 text (with ``name @ url`` for direct references)
    name: str  # canonical
    origin: str  # "file:line" or "pyproject.toml: project.dependencies"
    hashes: tuple[tuple[str, str], ...] = ()
    constraint: bool = False  # from a -c file: limits versions, installs nothing
    editable: bool = False
    via: tuple[str, ...] = ()  # "# via" annotations of pip-compile / uv pip compile


@dataclass(frozen=True, slots=True, kw_only=True)
class RequirementSet:
    """What requirements files (or a pyproject) ask for, and the index options they set."""

    requested: tuple[Requested, ...]
    files: tuple[str, ...]  # every file read, includes too
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    no_index: bool = False
    pre: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """A requirement of one locked package (or of the project) on another."""

    name: str  # canonical
    marker: str | None = None
    extras: tuple[str, ...] = ()
    specifier: str = ""
    version: str | None = None  # the locked version it points at, when the lock says


@dataclass(frozen=True, slots=True, kw_only=True)
class LockedPackage:
    """One package entry of a lockfile, whatever the format."""

    name: str  # canonical
    display_name: str
    version: str | None
    marker: str | None = None  # the lock's own "needed when" for the package
    requires_python: str | None = None
    files: tuple[PinnedFile, ...] = ()
    dependencies: tuple[Edge, ...] = ()
    optional: tuple[tuple[str, tuple[Edge, ...]], ...] = ()  # extra -> its edges
    index: str | None = None
    direct_reference: str | None = None
    is_project: bool = False  # the project itself (uv's virtual/editable root)
    # uv's resolution-markers: the forks of the resolution this version belongs to.
    fork_markers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """The optional parts of a lock to audit beyond what its tool installs by default
    (``--extra``, ``--group``, ``--all-extras``, ``--all-groups``)."""

    extras: tuple[str, ...] = ()  # canonical
    groups: tuple[str, ...] = ()  # canonical (Pipfile.lock categories too)
    all_extras: bool = False
    all_groups: bool = False

    def wants_extra(self, name: str) -> bool:
        return self.all_extras or name in self.extras

    def wants_group(self, name: str) -> bool:
        return self.all_groups or name in self.groups


@dataclass(frozen=True, slots=True, kw_only=True)
class LeftOut:
    """A part of a lock its tool does not install by default, so not audited."""

    kind: str  # extra, group, category (Pipfile.lock), member (a uv workspace member)
    name: str
    owner: str | None = None  # the project whose extra or group it is
    # Locked packages only it would add (any platform, any Python).
    packages: tuple[str, ...] = ()
    include: str = ""  # the ftaudit option that audits it too


@dataclass(frozen=True, slots=True, kw_only=True)
class LockGraph:
    """A lockfile read into one shape: its packages and where installation starts.

    With `roots`, a package is installed when it is reachable from a root through edges
    whose markers hold (uv.lock). Without, each package carries its own marker and is
    installed when that holds (pylock.toml, Pipfile.lock, pdm.lock, poetry.lock); its
    edges then only say who requires whom.
    """

    kind: str
    path: str
    packages: tuple[LockedPackage, ...]
    roots: tuple[Edge, ...] | None = None
    direct: frozenset[str] = frozenset()
    index_urls: tuple[str, ...] = ()
    # What the lock's markers may test: the chosen extras (for uv, its conflict names of
    # the chosen extras and groups) and dependency groups (PEP 751).
    extras: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    selected: tuple[str, ...] = ()  # what is audited, in words ("group dev of app")
    left_out: tuple[LeftOut, ...] = ()
    requires_python: str | None = None  # the Pythons the lock was made for


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    """An installed Python environment, as its files (or, for --python, its interpreter run
    with -I -S) describe it."""

    executable: str | None
    prefix: str
    version: tuple[int, int, int]
    free_threaded: bool
    platform: str  # ftaudit platform name, e.g. linux-x86_64
    site_dirs: tuple[str, ...]
    kind: str  # venv, conda, system
    marker_env: tuple[tuple[str, str], ...] = ()

    @property
    def short_version(self) -> str:
        return f"{self.version[0]}.{self.version[1]}{'t' if self.free_threaded else ''}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Installed:
    """One installed distribution: what its metadata says, where its files are."""

    name: str  # canonical
    display_name: str
    version: str
    site_dir: str
    files: tuple[str, ...]  # RECORD paths, relative to site_dir
    requires: tuple[str, ...]
    classifiers: tuple[str, ...]
    wheel_tags: tuple[str, ...]  # from the dist-info WHEEL file ('' when absent)
    installer: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    kind: str
    path: str
    selected: tuple[str, ...] = ()  # a lock's parts audited ("default", "group dev", ...)
    left_out: tuple[LeftOut, ...] = ()
    requires_python: str | None = None  # a lock's own Python range
    # Targets outside that range: the lock pins nothing for them, the index decides.
    not_covered: tuple[str, ...] = ()
    project: str | None = None  # the directory import sites are listed from (None: none)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetReadiness:
    """How far a project is from one target: who is ready, and the changes to get there."""

    target: str
    direct: int
    direct_ready: int
    transitive: int
    transitive_ready: int
    upgrades: int = 0
    pins: int = 0  # downgrades: a pin to an older release
    builds: int = 0  # source builds, whose GIL status is unknown until built
    isolate: int = 0  # need the GIL: worker processes, or a replacement
    blocked: int = 0  # nothing installs
    unknown: int = 0

    @property
    def changes(self) -> int:
        return self.upgrades + self.pins + self.builds + self.isolate + self.blocked

    @property
    def ready(self) -> bool:
        return self.changes == 0 and self.unknown == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where a package is named in the scanned source: the line CI annotations point at."""

    path: str
    line: int | None = None  # None: the file as a whole


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignore:
    """A finding the project accepts for now: which package, why, and until when."""

    package: str  # canonical
    reason: str
    expires: datetime.date | None = None
    targets: tuple[str, ...] = ()  # empty: every target

    def expired(self, today: datetime.date) -> bool:
        return self.expires is not None and today > self.expires

    def covers(self, name: str, target: str, today: datetime.date) -> bool:
        return (
            name == self.package
            and (not self.targets or target in self.targets)
            and not self.expired(today)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """``[tool.ftaudit]``: defaults for the command line, and the accepted findings."""

    path: str | None = None  # the pyproject.toml it came from
    targets: str | None = None  # as --target takes them: "3.13t,3.14t"
    platforms: str | None = None
    fail_on: frozenset[Status] | None = None
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    ignore: tuple[Ignore, ...] = ()
    allow_incomplete: bool | None = None  # None: not set in [tool.ftaudit]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The status of one package for one target on one platform, and why."""

    target: Target
    platform: str
    status: Status
    evidence: Evidence | None
    reason: str
    artifact: str | None = None
    use_version: str | None = None
    # The version judged when the source did not lock one (the newest the target installs).
    version: str | None = None
    # Release dates (PEP 700 upload-time, ISO 8601) the advice weighs: of `use_version`,
    # and of the version judged; for a downgrade, the releases it holds back.
    use_version_date: str | None = None
    version_date: str | None = None
    held_back: tuple[tuple[str, str | None], ...] = ()
    ignored: str | None = None  # the policy's reason, when an ignore entry covers it
    # For an upgrade: the oldest later release confirmed ready (use_version: the newest).
    first_ready: str | None = None
    # For a `build`: the closest other release with a wheel for the target, which needs
    # the GIL (a fallback with a cost, not the status of the version in use).
    gil_wheel: str | None = None
    # Set when the status is `unknown` because the run failed to check the package (the
    # network, an index, the cache, an integrity check), not because of what it ships.
    incomplete: Incomplete | None = None
    # The judged artifact's extension modules, when it is of another release than the
    # package's own (whose modules are PackageReport.extensions).
    extensions: tuple[Extension, ...] = ()
    # For a `build` whose sdist was read: the languages its sources are in ("C", "Rust").
    build_languages: tuple[str, ...] = ()
    # How the judged artifact was read ("whole" or "ranges", see ArtifactFacts.read).
    artifact_read: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportSite:
    """Where the project's own code imports a module."""

    path: str  # relative to the project directory
    line: int
    module: str  # as written: "numpy.linalg"


@dataclass(frozen=True, slots=True, kw_only=True)
class Advice:
    """What to do about a package, for some targets."""

    kind: str  # upgrade, isolate, downgrade, build, replace, verify, resolver-trap, note
    text: str
    targets: tuple[str, ...] = ()
    version: str | None = None  # the version to use, when the advice names one
    # Where the project imports it, and through which chain of dependencies when the
    # import is of a package that requires it.
    import_sites: tuple[tuple[ImportSite, tuple[str, ...]], ...] = ()
    snippet: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageReport:
    dependency: Dependency
    verdicts: tuple[Verdict, ...]
    extensions: tuple[Extension, ...] = ()
    libraries: tuple[Library, ...] = ()
    advice: tuple[Advice, ...] = ()
    import_names: tuple[str, ...] = ()  # top-level modules the distribution provides
    classifiers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanStats:
    """What a scan cost: on the wire, from the cache, and in time per stage."""

    requests: int = 0
    bytes_fetched: int = 0
    wheel_bytes: int = 0  # the judged wheels' sizes: what fetching them whole would cost
    wheels_by_ranges: int = 0
    wheels_whole: int = 0
    facts_cached: int = 0
    pages_cached: int = 0
    seconds: tuple[tuple[str, float], ...] = ()  # (stage, wall seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    tool_version: str
    targets: tuple[Target, ...]
    platforms: tuple[str, ...]
    sources: tuple[Source, ...]
    packages: tuple[PackageReport, ...]
    notes: tuple[str, ...] = field(default=())
    policy: Policy | None = None
    scanned_at: str | None = None  # UTC, ISO 8601 ("2026-12-02T01:40:00Z")
    stats: ScanStats | None = None

    def summary(self) -> dict[str, dict[str, int]]:
        """Packages per status for every target (worst verdict across platforms)."""
        out: dict[str, dict[str, int]] = {
            t.name: {s.value: 0 for s in Status} for t in self.targets
        }
        for pkg in self.packages:
            for target in self.targets:
                verdicts = [v for v in pkg.verdicts if v.target == target]
                if verdicts:
                    out[target.name][worst(v.status for v in verdicts).value] += 1
        return out


_STATUS_ORDER = {status: i for i, status in enumerate(Status)}


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of some statuses (ready < gil < ... < unknown)."""
    return max(statuses, key=_STATUS_ORDER.__getitem__, default=Status.READY)


# --- the runtime guard: `ftaudit run` and the pytest plugin -------------------------------


class Seen(str, enum.Enum):
    """How the guard knows an extension module needs the GIL."""

    RUNTIME = "runtime"  # the GIL was off, and its creation turned it on
    STATIC = "static"  # the GIL could not flip (already on, PYTHON_GIL=0): its binary says


class RunStatus(str, enum.Enum):
    """What one guarded process's GIL did; declared from best to worst."""

    FREE = "free"  # free-threaded to the end: no module it loaded needs the GIL
    GIL = "gil"  # a module it loaded turned the GIL on, or would have
    UNKNOWN = "unknown"  # a module it loaded could not be judged
    NOT_FREE_THREADED = "not_free_threaded"  # a GIL interpreter: nothing to guard


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One module on the way to an extension load: the line that led on."""

    module: str
    path: str
    line: int
    origin: str  # "own" (the program's), "stdlib", "third_party", "extension"
    distribution: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Culprit:
    """An extension module a guarded process loaded that turned the GIL on, would have,
    or could not be judged (gil UNKNOWN)."""

    module: str
    path: str
    distribution: str | None
    version: str | None
    seen: Seen
    reenabled: bool  # this very load turned the GIL on
    gil: Gil  # what its binary declares (UNDECLARED, USED; UNKNOWN when unreadable)
    init: Init | None
    detail: str
    raised: str | None  # what the import raised (-W error turns the warning into one)
    chain: tuple[str, ...]  # the program's modules, then each distribution entered
    frames: tuple[Frame, ...]  # every module on the way


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardedProcess:
    pid: int
    parent_pid: int
    main: bool  # started by the command itself, not by another guarded process
    kind: str  # "program", "multiprocessing spawn worker", "subprocess", ...
    argv: tuple[str, ...]
    executable: str
    python_version: str
    free_threaded: bool
    gil_at_start: bool | None
    gil_at_exit: bool | None  # None: it ended without running its exit handlers
    python_gil: str | None  # PYTHON_GIL as the process saw it, or -X gil
    warnings_error: bool  # -W error: the GIL warning is raised as an exception
    extensions: int  # extension modules it loaded
    culprits: tuple[Culprit, ...]
    status: RunStatus
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardReport:
    tool_version: str
    command: tuple[str, ...]
    command_exit: int
    exit_code: int
    gate: str  # "main" or "all": which processes decide the exit code
    allow_gil: bool
    status: RunStatus
    processes: tuple[GuardedProcess, ...]
    notes: tuple[str, ...] = ()
