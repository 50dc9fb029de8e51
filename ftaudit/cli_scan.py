"""`ftaudit scan`: detect the source, plan, scan, verify, advise, apply the policy, report,
and the exit code. The stages are the other modules'; this wires them."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ftaudit.cli_common import color_for, emit, is_tty, say, warn, width
from ftaudit.errors import EXIT_INCOMPLETE, InputError, UsageError
from ftaudit.model import (
    Installed,
    Policy,
    Report,
    Requested,
    ScanStats,
    Selection,
    Source,
    Status,
    Target,
    Verdict,
)
from ftaudit.report import OutputFormat

if TYPE_CHECKING:
    from ftaudit.cache import Cache
    from ftaudit.scan import Scanner
    from ftaudit.sources.detect import Detected
    from ftaudit.sources.plan import Plan


def scan_command(args: argparse.Namespace) -> int:
    from ftaudit.cache import Cache, default_cache_dir
    from ftaudit.cli_checks import check_paths, parse_ignores, policy_line
    from ftaudit.config import DEFAULT_FAIL_ON, load_policy, parse_statuses
    from ftaudit.policy import apply_policy, expired, failing, incomplete
    from ftaudit.report import render
    from ftaudit.report.locate import locations
    from ftaudit.sources.detect import detect
    from ftaudit.sources.lockfile import url_problem
    from ftaudit.targets import parse_platforms, parse_targets, this_platform

    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    for option, url in (
        *(("--index-url", u) for u in ([args.index_url] if args.index_url else [])),
        *(("--extra-index-url", u) for u in args.extra_index_url),
    ):
        if problem := url_problem(url):
            raise UsageError(f"{option}: invalid URL {url!r} ({problem})")
    # Usage errors come before anything is read.
    check_paths(args)
    cli_ignores = parse_ignores(args.ignore)
    cli_fail_on = None if args.fail_on is None else parse_statuses(args.fail_on, "--fail-on")
    cli_targets = parse_targets(args.target) if args.target else None
    cli_platforms = parse_platforms(args.platform) if args.platform else None
    found = detect(
        Path(args.path or "."),
        python=args.python,
        env_dir=args.env,
        lockfile=args.lockfile,
        requirements=tuple(args.requirement),
        selection=_selection(args),
        explicit=args.path is not None,
    )
    _check_selection(args, found)
    pyproject = _pyproject_of(found)
    policy = load_policy(pyproject) if pyproject is not None else Policy()
    if line := policy_line(policy, args):
        say(args, line)
    if cli_ignores:
        policy = replace(policy, ignore=(*policy.ignore, *cli_ignores))
    fail_on = next(f for f in (cli_fail_on, policy.fail_on, DEFAULT_FAIL_ON) if f is not None)
    env = found.environment
    targets = (
        cli_targets
        or (parse_targets(policy.targets) if policy.targets else None)
        or _default_targets(found)
    )
    platforms = (
        cli_platforms
        or (parse_platforms(policy.platforms) if policy.platforms else None)
        or ((env.platform,) if env else (this_platform(),))
    )
    cache = Cache(args.cache_dir or default_cache_dir(), warn=warn)
    try:
        report = _run_scan(args, found, targets, platforms, cache, policy)
    finally:
        cache.close()
    report = _with_advice(report, found.root)
    now = datetime.datetime.now(datetime.timezone.utc)
    report = replace(report, scanned_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    today = datetime.date.today()
    report = apply_policy(report, replace(policy, fail_on=fail_on), today)
    for rule in expired(policy, today):
        assert rule.expires is not None
        print(
            f"ftaudit: {policy.path}: the ignore for {rule.package} expired on "
            f"{rule.expires.isoformat()} ({rule.reason}): renew or remove it",
            file=sys.stderr,
        )
    if args.why:
        _why(report, args.why)
    fmt = OutputFormat(args.format)
    color = args.output is None and color_for(sys.stdout)
    located = locations(report) if fmt in (OutputFormat.GITHUB, OutputFormat.SARIF) else {}
    summary_written = fmt is OutputFormat.GITHUB and _step_summary(report)
    emit(
        render(
            report,
            fmt,
            width=width() if args.output is None else 160,
            color=color,
            only_problems=args.quiet,
            fail_on=fail_on,
            located=located,
            summary_written=summary_written,
        ),
        args.output,
    )
    gaps = incomplete(report)
    allow = next(
        a for a in (args.allow_incomplete, policy.allow_incomplete, False) if a is not None
    )
    if gaps:
        print(f"ftaudit: {_incomplete_line(gaps, allow)}", file=sys.stderr)
        if not allow:
            return EXIT_INCOMPLETE
    return 1 if failing(report, fail_on) or expired(policy, today) else 0


def _step_summary(report: Report) -> bool:
    """In GitHub Actions, the whole report goes to the job summary (annotations are capped
    at 10 per step); whether it was written."""
    from ftaudit.report import render

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    try:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(render(report, OutputFormat.MARKDOWN))
    except OSError as exc:
        warn(f"GITHUB_STEP_SUMMARY {path}: cannot write ({exc.strerror or exc})")
        return False
    return True


def _incomplete_line(gaps: Sequence[tuple[str, Verdict]], allowed: bool) -> str:
    """One line: how many packages were not checked, grouped by why, with one example
    reason of each kind."""
    first: dict[str, Verdict] = {}
    for name, v in gaps:
        first.setdefault(name, v)
    by_kind: dict[str, list[str]] = {}
    for name, v in first.items():
        assert v.incomplete is not None
        by_kind.setdefault(v.incomplete.value, []).append(name)
    parts = []
    for kind, names in sorted(by_kind.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        example = next(v.reason for n, v in first.items() if n == names[0])
        if len(example) > 90:
            example = example[:87] + "..."
        parts.append(f"{len(names)} {kind} (e.g. {names[0]}: {example})")
    tail = (
        "--allow-incomplete: exiting by --fail-on"
        if allowed
        else "exit 2; --allow-incomplete to exit by --fail-on"
    )
    count = len(first)
    return (
        f"incomplete scan: {count} package{'s' if count != 1 else ''} could not be checked: "
        f"{'; '.join(parts)}; {tail}"
    )


def _run_scan(
    args: argparse.Namespace,
    found: Detected,
    targets: tuple[Target, ...],
    platforms: tuple[str, ...],
    cache: Cache,
    policy: Policy,
) -> Report:
    from packaging.utils import canonicalize_name

    from ftaudit.index.auth import redact_url
    from ftaudit.index.http import Http
    from ftaudit.index.pipconfig import pip_index_config
    from ftaudit.index.simple import Index
    from ftaudit.scan import Scanner, ScanSettings

    env = found.environment
    source_urls = _source_index_urls(found)
    # The command line, then [tool.ftaudit], then what the lock or requirements name.
    index_url = args.index_url or policy.index_url or (source_urls[0] if source_urls else None)
    extra_urls = tuple(args.extra_index_url) or policy.extra_index_urls or source_urls[1:]

    def make_index() -> Index:
        if args.offline and not cache.has_pages():
            # Nothing cached to look up: pip's configuration would not be used.
            return Index((), Http(), cache, offline=True)
        config = pip_index_config(
            env.executable if env else None,
            index_url,
            extra_urls,
            prefix=env.prefix if env else None,
        )
        if args.verbose:
            print(f"ftaudit: index: {', '.join(map(redact_url, config.urls))}", file=sys.stderr)
        return Index(config.urls, Http(cert=config.cert), cache, offline=args.offline)

    settings = ScanSettings(
        targets=targets,
        platforms=platforms,
        offline=args.offline,
        inspect=not args.no_inspect,
        jobs=args.jobs,
    )
    show_progress = is_tty(sys.stderr) and not args.quiet
    scanner = Scanner(settings, cache, make_index)
    clock = time.monotonic()
    seconds: list[tuple[str, float]] = []

    def stage(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        seconds.append((name, now - clock))
        clock = now

    plan, sources, notes, installed = _plan(found, targets, platforms, scanner, show_progress)
    root = str(found.root) if found.root is not None else None
    sources = tuple(replace(s, project=root) for s in sources)
    stage("plan")
    names = {d.name for deps in plan.values() for d in deps}
    count = len(names)
    if args.why and canonicalize_name(args.why) not in names:
        raise UsageError(f"--why {args.why}: not among the {count} distributions to scan")
    say(
        args,
        f"scanning {_describe(found)}: {count} distributions for "
        f"{', '.join(t.name for t in targets)} on {', '.join(platforms)}",
    )
    if show_progress:
        report = _with_progress(
            lambda progress: scanner.scan(plan, sources, installed, env, notes, progress),
            fetched=lambda: scanner.stats().bytes_fetched,
        )
    else:
        report = scanner.scan(plan, sources, installed, env, notes)
    report = scanner.with_dependents(report, installed)
    stage("scan")
    if args.verify:
        report = _verify(args, report, scanner, found, show_progress)
        stage("verify")
    stats = scanner.stats(seconds)
    say(args, _cost_line(stats))
    return replace(report, stats=stats)


def _cost_line(stats: ScanStats) -> str:
    """One line of what the scan cost: the wire, the cache, the time."""
    mib = 1024 * 1024
    parts = [f"{stats.requests} requests, {stats.bytes_fetched / mib:.1f} MiB fetched"]
    if stats.wheel_bytes:
        share = 100 * stats.bytes_fetched / stats.wheel_bytes
        parts[0] += f" ({share:.0f}% of the {stats.wheel_bytes / mib:.1f} MiB of wheels judged)"
    if stats.wheels_by_ranges or stats.wheels_whole:
        parts.append(f"{stats.wheels_by_ranges} wheels read by ranges, {stats.wheels_whole} whole")
    if stats.facts_cached or stats.pages_cached:
        parts.append(f"cache: {stats.facts_cached} wheels, {stats.pages_cached} pages")
    parts.append(f"{sum(s for _n, s in stats.seconds):.1f} s")
    return "cost: " + "; ".join(parts)


def _verify(
    args: argparse.Namespace,
    report: Report,
    scanner: Scanner,
    found: Detected,
    show_progress: bool,
) -> Report:
    from ftaudit.targets import this_platform
    from ftaudit.verify import find_interpreter, verify

    if args.verify_timeout <= 0:
        raise UsageError("--verify-timeout must be positive")
    interpreter = find_interpreter(args.ft_python)
    if interpreter.target not in report.targets:
        raise UsageError(
            f"--verify: {interpreter.executable} is {interpreter.target.name}, which is not "
            f"among the scanned targets ({', '.join(t.name for t in report.targets)})"
        )
    platform = this_platform()
    wheels: dict[str, Path] = {}
    for pkg in report.packages:
        for v in pkg.verdicts:
            if v.artifact and v.target == interpreter.target and v.platform == platform:
                path = scanner.artifact_file(v.artifact)
                if path is not None:
                    wheels[v.artifact] = path
    env = found.environment
    # Installed files count only when they were built for this very interpreter.
    site_dirs: list[str] = []
    if env is not None and env.free_threaded and env.version[:2] == interpreter.target.version:
        site_dirs = list(env.site_dirs)

    def run(progress: Callable[[str, int, int], None] | None) -> Report:
        return verify(
            report,
            interpreter,
            platform,
            wheels,
            site_dirs,
            timeout=args.verify_timeout,
            jobs=min(args.jobs, 4),
            progress=progress,
        )

    return _with_progress(run, "importing") if show_progress else run(None)


def _source_index_urls(found: Detected) -> tuple[str, ...]:
    """Index URLs the lock or the requirements files name (they come before pip's)."""
    if found.lock is not None:
        return found.lock.index_urls
    reqs = found.requirements
    if reqs is not None:
        return ((reqs.index_url,) if reqs.index_url else ()) + reqs.extra_index_urls
    return ()


def _with_advice(report: Report, root: Path | None) -> Report:
    """Advice per package, pointing at the project's own imports (an AST walk of the
    Python files of the source's project; nothing is imported)."""
    from ftaudit.advice import advise
    from ftaudit.sources.imports import project_imports

    needs_sites = any(
        v.status in (Status.GIL, Status.BLOCKED) for p in report.packages for v in p.verdicts
    )
    if not needs_sites:
        return advise(report, {})
    if root is None:
        note = (
            "import sites: none listed: the scanned source belongs to no project directory "
            "(give the project as PATH to list where its code imports each package)"
        )
        return advise(replace(report, notes=(*report.notes, note)), {})
    scan = project_imports(root)
    if scan.unparsable:
        shown = ", ".join(scan.unparsable[:3])
        more = len(scan.unparsable) - 3
        report = replace(
            report,
            notes=(
                *report.notes,
                f"import sites: {len(scan.unparsable)} Python files do not parse and were "
                f"skipped ({shown}{f' and {more} more' if more > 0 else ''})",
            ),
        )
    return advise(report, scan.sites)


def _selection(args: argparse.Namespace) -> Selection:
    from packaging.utils import canonicalize_name

    return Selection(
        extras=tuple(dict.fromkeys(canonicalize_name(x) for x in args.extra)),
        groups=tuple(dict.fromkeys(canonicalize_name(g) for g in args.group)),
        all_extras=args.all_extras,
        all_groups=args.all_groups,
    )


def _check_selection(args: argparse.Namespace, found: Detected) -> None:
    if found.lock is None and (args.extra or args.group or args.all_extras or args.all_groups):
        raise UsageError(
            "--extra, --group, --all-extras and --all-groups choose parts of a lockfile; "
            f"{found.label} is {'an' if found.kind == 'environment' else 'a'} {found.kind}"
        )


def _pyproject_of(found: Detected) -> Path | None:
    """The pyproject.toml whose [tool.ftaudit] applies: the scanned project's."""
    if found.project is not None:
        return Path(found.project.path)
    return found.root / "pyproject.toml" if found.root is not None else None


def _default_targets(found: Detected) -> tuple[Target, ...]:
    from ftaudit.targets import known_target, targets_for_requires_python

    env = found.environment
    twin = known_target(*env.version[:2]) if env is not None else None
    if twin is not None:
        return (twin,)
    return targets_for_requires_python(found.project.requires_python if found.project else None)


def _describe(found: Detected) -> str:
    env = found.environment
    if env is None:
        return f"{found.label} ({found.kind})"
    return (
        f"{found.label} ({env.kind}, CPython {'.'.join(map(str, env.version))}"
        f"{', free-threaded' if env.free_threaded else ''})"
    )


def _plan(
    found: Detected,
    targets: tuple[Target, ...],
    platforms: tuple[str, ...],
    resolver: Scanner,
    show_progress: bool,
) -> tuple[Plan, tuple[Source, ...], list[str], dict[str, Installed]]:
    """What each target installs, from whichever source was found."""
    from ftaudit.sources.environment import installed_distributions
    from ftaudit.sources.graph import dependencies_from_installed
    from ftaudit.sources.plan import lock_notes, lock_plan, lock_source, uniform_plan
    from ftaudit.sources.resolve import with_metadata_edges

    notes: list[str] = []
    if found.environment is not None:
        env, project = found.environment, found.project
        dists = installed_distributions(env)
        names = {d.name for d in dists}
        # The project's declared dependencies say what is direct, when they describe this
        # environment at all (a --python pointing elsewhere may have nothing in common).
        direct = set(project.direct) if project and project.direct & names else None
        deps = dependencies_from_installed(dists, dict(env.marker_env), direct)
        source = Source(kind="environment", path=found.label)
        installed = {d.name: d for d in dists}
        return uniform_plan(deps, targets, platforms), (source,), notes, installed
    if found.lock is not None:
        lock = found.lock
        source = lock_source(lock, targets)
        notes.extend(lock_notes(lock, source))
        plan = lock_plan(lock, targets, platforms)
        if not any(p.dependencies for p in lock.packages):
            # Pipfile.lock, and pylock.toml as uv writes it, record no edges: each
            # package's own metadata says whom it requires.
            for key, deps in plan.items():
                plan[key], edge_notes = with_metadata_edges(
                    deps,
                    *key,
                    resolver,
                    direct_known=bool(lock.direct),
                    jobs=resolver.settings.jobs,
                )
                notes.extend(n for n in edge_notes if n not in notes)
        return plan, (source,), notes, {}
    if found.requirements is not None:
        reqs = found.requirements
        if reqs.no_index:
            raise InputError(f"{reqs.files[0]}: --no-index leaves no package index to look in")
        requested = reqs.requested
        sources = tuple(Source(kind="requirements", path=f) for f in reqs.files)
    else:
        project = found.project
        assert project is not None
        requested = project.requested
        sources = (Source(kind="pyproject", path=str(project.path)),)
    plan, resolve_notes = _resolve(requested, targets, platforms, resolver, show_progress)
    notes.extend(_unlocked_note(plan))
    notes.extend(resolve_notes)
    return plan, sources, notes, {}


def _resolve(
    requested: Sequence[Requested],
    targets: tuple[Target, ...],
    platforms: tuple[str, ...],
    resolver: Scanner,
    show_progress: bool,
) -> tuple[Plan, list[str]]:
    from ftaudit.sources.plan import requested_plan

    def run() -> tuple[Plan, list[str]]:
        return requested_plan(requested, targets, platforms, resolver, jobs=resolver.settings.jobs)

    if not show_progress:
        return run()
    from rich.console import Console

    with Console(file=sys.stderr).status("resolving the project's requirements"):
        return run()


def _unlocked_note(plan: Plan) -> list[str]:
    unlocked = sorted({d.display_name for deps in plan.values() for d in deps if not d.locked})
    if not unlocked:
        return []
    return [
        f"not locked: {', '.join(unlocked)}: versions are the newest releases the "
        "requirements allow on each target (resolved by ftaudit, without backtracking); "
        "scan a lockfile to audit exactly what gets installed"
    ]


def _why(report: Report, name: str) -> None:
    """Print every chain from a direct requirement to `name` (stderr, before the report)."""
    from packaging.utils import canonicalize_name

    from ftaudit.report.view import chains

    wanted = canonicalize_name(name)
    deps = {p.dependency.name: p.dependency for p in report.packages}
    if wanted not in deps:
        raise UsageError(f"--why {name}: not among the scanned packages")
    print(f"why {deps[wanted].display_name}:", file=sys.stderr)
    for chain in chains(report, wanted):
        print(f"  project -> {' -> '.join(chain)}", file=sys.stderr)


def _with_progress(
    run: Callable[[Callable[[str, int, int], None]], Report],
    verb: str = "checking",
    fetched: Callable[[], int] | None = None,
) -> Report:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(file=sys.stderr)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(verb, total=None)

        def update(name: str, done: int, total: int) -> None:
            got = f" ({fetched() / 1048576:.1f} MiB fetched)" if fetched is not None else ""
            progress.update(
                task, completed=done, total=total, description=f"{verb} {escape(name)}{got}"
            )

        return run(update)
