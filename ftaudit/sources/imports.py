"""Where the project's own code imports things: an AST walk of its Python files.

The advice for a package that needs the GIL points at these lines. Files are parsed,
never imported or executed; environments, caches and build output inside the project
are skipped; a file that does not parse is skipped and counted, not fatal.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ftaudit.model import ImportSite

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_FILES = 20_000
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".tox",
        ".nox",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        "site-packages",
        "build",
        "dist",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
    }
)


@dataclass(frozen=True, slots=True)
class ImportScan:
    sites: dict[str, tuple[ImportSite, ...]]  # top-level module -> where it is imported
    files: int
    unparsable: tuple[str, ...]


def project_imports(root: Path) -> ImportScan:
    """Every absolute import in the Python files under `root`, by top-level module."""
    sites: dict[str, list[ImportSite]] = {}
    files = 0
    bad: list[str] = []
    for path in _python_files(root):
        files += 1
        rel = path.relative_to(root).as_posix()
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                bad.append(rel)
                continue
            tree = ast.parse(path.read_bytes(), filename=rel)
        except (SyntaxError, ValueError, OSError, RecursionError):
            bad.append(rel)
            continue
        for module, line in _imports(tree):
            if module.startswith("."):
                continue
            top = module.split(".", 1)[0]
            sites.setdefault(top, []).append(ImportSite(path=rel, line=line, module=module))
    return ImportScan(
        sites={k: tuple(sorted(v, key=lambda s: (s.path, s.line))) for k, v in sites.items()},
        files=files,
        unparsable=tuple(sorted(bad)),
    )


def _python_files(root: Path) -> Iterator[Path]:
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        # An environment inside the project (any name) holds other people's code.
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS
            and not d.endswith(".egg-info")
            and not (here / d / "pyvenv.cfg").exists()
            and not (here / d / "conda-meta").is_dir()
        )
        for name in sorted(filenames):
            if name.endswith((".py", ".pyw")):
                count += 1
                if count > MAX_FILES:
                    return
                yield here / name


def _imports(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
        elif (
            isinstance(node, ast.Call)
            and _is_import_module(node.func)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            # importlib.import_module("x") / __import__("x") with a literal name.
            yield node.args[0].value, node.lineno


def _is_import_module(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"
