"""Build real, installable wheels and sdists from files we compiled ourselves.

pip installs these like any other wheel: the RECORD carries each file's sha256 and size.
Building them here keeps the tests offline (no setuptools download) and exact (we choose
the tags).
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def dist_name(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def build_wheel(
    out_dir: Path,
    name: str,
    version: str,
    tag: str,
    files: dict[str, bytes],
    *,
    requires: tuple[str, ...] = (),
    classifiers: tuple[str, ...] = (),
    requires_python: str | None = None,
    provides_extra: tuple[str, ...] = (),
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    dist = dist_name(name)
    info = f"{dist}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Provides-Extra: {e}" for e in provides_extra]
    metadata += [f"Requires-Dist: {r}" for r in requires]
    metadata += [f"Classifier: {c}" for c in classifiers]
    if requires_python:
        metadata.append(f"Requires-Python: {requires_python}")
    pure = tag.endswith("-none-any")
    wheel_meta = [
        "Wheel-Version: 1.0",
        "Generator: ftaudit-tests",
        f"Root-Is-Purelib: {'true' if pure else 'false'}",
        *(f"Tag: {t}" for t in _expand(tag)),
    ]
    contents = dict(files)
    contents[f"{info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    contents[f"{info}/WHEEL"] = ("\n".join(wheel_meta) + "\n").encode()
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in contents.items()]
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = out_dir / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in contents.items():
            zf.writestr(member, data)
    return path


def _expand(tag: str) -> list[str]:
    py, abi, plat = tag.split("-")
    return [f"{a}-{b}-{c}" for a in py.split(".") for b in abi.split(".") for c in plat.split(".")]


def build_sdist(
    out_dir: Path, name: str, version: str, files: dict[str, bytes] | None = None
) -> Path:
    """An sdist: PKG-INFO and `files` (paths below its top directory). Without `files`
    it holds nothing that says how it builds, which is never called pure Python."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = f"{dist_name(name)}-{version}"
    path = out_dir / f"{base}.tar.gz"
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    with tarfile.open(path, "w:gz") as tf:
        for member, data in {"PKG-INFO": pkg_info, **(files or {})}.items():
            ti = tarfile.TarInfo(f"{base}/{member}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path
