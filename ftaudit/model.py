"""The records every stage of the pipeline passes to the next: frozen, hashable, no I/O."""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependency:
    """One distribution the project depends on, as a source reported it."""

    name: str  # canonical (PEP 503 normalised)
    display_name: str
    version: str | None
    direct: bool = True
    required_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    """An installed Python environment, as its interpreter describes itself."""

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Advice:
    kind: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageReport:
    dependency: Dependency
    verdicts: tuple[Verdict, ...]
    extensions: tuple[Extension, ...] = ()
    libraries: tuple[Library, ...] = ()
    advice: tuple[Advice, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    tool_version: str
    targets: tuple[Target, ...]
    platforms: tuple[str, ...]
    sources: tuple[Source, ...]
    packages: tuple[PackageReport, ...]
    notes: tuple[str, ...] = field(default=())

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
