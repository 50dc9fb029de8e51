"""The wheel reader: a zip archive in, facts and both renderings out.

Seeds: the real wheels of tests/data/wheels small enough to fuzz, and wheels made here
from the committed fixture binaries with each compression zipfile writes (stored,
deflate, bzip2, LZMA), one with a member name that is rich markup.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from ftaudit.errors import FtauditError
from ftaudit.inspect.artifact import inspect_wheel
from ftaudit.report import json as json_report
from ftaudit.report import terminal
from tests.fuzz.harness import SEEDS_DIR, Target
from tests.fuzz.mutate import mutate_zip

WHEELS = Path(__file__).resolve().parents[1] / "data" / "wheels"
NAME = "fuzz-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl"
_work: Path | None = None


def made_wheel(members: dict[str, bytes], method: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("fuzz-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: cp313-cp313t-any\n")
        zf.writestr("fuzz-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: fuzz\n")
    return buf.getvalue()


def _seeds() -> list[bytes]:
    out = [w.read_bytes() for w in sorted(WHEELS.glob("*.whl")) if w.stat().st_size < 32_000]
    pe = sorted((SEEDS_DIR / "pe").glob("*"))
    elf = sorted((SEEDS_DIR / "elf").glob("*"))
    if pe and elf:
        members = {
            "fuzz/_core.cp313t-win_amd64.pyd": pe[0].read_bytes(),
            "fuzz/[/]_m.cpython-313t-x86_64-linux-gnu.so": elf[0].read_bytes(),
        }
        for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2):
            out.append(made_wheel(members, method))
        out.append(made_wheel({"fuzz/_core.cp313t-win_amd64.pyd": pe[1].read_bytes()}, 14))
    return out


def read_wheel(data: bytes) -> object:
    global _work
    if _work is None:
        _work = Path(tempfile.mkdtemp(prefix="ftaudit-fuzz-zip-"))
    path = _work / NAME
    path.write_bytes(data)
    facts = inspect_wheel(path)
    terminal.render_inspect(facts, width=100)
    return json_report.render_inspect(facts)


TARGETS = {
    "zip-wheel": Target(
        name="zip-wheel",
        run=read_wheel,
        seeds=_seeds(),
        clean_errors=(FtauditError,),
        mutators=(mutate_zip,),
        instrument=("ftaudit", "zipfile"),
    )
}
