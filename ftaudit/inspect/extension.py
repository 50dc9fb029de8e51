"""One binary in, one record out: is it an extension module, and what does it declare?"""

from __future__ import annotations

import re
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import replace

from ftaudit.errors import BinaryFormatError
from ftaudit.inspect import slots, walk
from ftaudit.inspect.elf import load_elf
from ftaudit.inspect.image import Image, find_bytes
from ftaudit.inspect.macho import load_macho
from ftaudit.inspect.pe import load_pe
from ftaudit.inspect.walk import CpuPool
from ftaudit.model import BinaryFormat, Extension, Gil, Init, Library

# Imported by every extension compiled for a free-threaded interpreter that touches
# reference counts (Py_DECREF's slow path); never by a GIL build.
FT_ONLY_SYMBOLS = frozenset(
    {
        "_Py_DecRefShared",
        "_Py_DecRefSharedDebug",
        "_Py_MergeZeroLocalRefcount",
        "_Py_ExplicitMergeRefcount",
    }
)
SET_GIL = "PyUnstable_Module_SetGIL"
DEF_INIT = "PyModuleDef_Init"
CREATE_FUNCS = frozenset({"PyModule_Create2", "PyModule_FromDefAndSpec2", "PyModule_Create"})
# Every function of the C API an init function could make its module object with.
MODULE_API = CREATE_FUNCS | {DEF_INIT, SET_GIL, "PyModule_New", "PyModule_NewObject"}
# Imports every binary may have that never make a module.
_RUNTIME = frozenset({"abort", "free", "malloc", "calloc", "realloc", "memcpy", "memset"})
_TAG_IN_NAME = re.compile(r"\.cpython-(\d+)(t?)[-.]|\.cp(\d+)(t?)-|\.abi3(t?)\.")

Loader = Callable[[bytes], Image]
NO_INIT_EXPORT = "no PyInit_ or PyModExport_ export"
# CPU time (of the thread) the walks of one binary's slices may take together; each
# export's walk has its own budget too (walk.WALK_CPU_SECONDS).
FILE_CPU_SECONDS = 12.0


def binary_format(head: bytes) -> BinaryFormat | None:
    """Tell ELF, Mach-O (thin or fat) and PE apart by their magic bytes."""
    if head[:4] == b"\x7fELF":
        return BinaryFormat.ELF
    if head[:4] in (
        b"\xfe\xed\xfa\xce",
        b"\xce\xfa\xed\xfe",
        b"\xfe\xed\xfa\xcf",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
        b"\xbe\xba\xfe\xca",
    ):
        return BinaryFormat.MACHO
    if head[:2] == b"MZ":
        return BinaryFormat.PE
    return None


def module_name(path: str) -> str:
    """The import name of an extension at `path` inside a wheel or site-packages."""
    parts = path.replace("\\", "/").split("/")
    if len(parts) > 2 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib"):
        parts = parts[2:]
    stem = parts[-1].split(".", 1)[0]
    if stem == "__init__" and len(parts) > 1:  # a compiled package: pkg/__init__.so is pkg
        return ".".join(parts[:-1])
    return ".".join([*parts[:-1], stem])


def tagged_free_threaded(path: str) -> bool | None:
    """What the file name's ABI tag says (``.cpython-313t-``: True, ``-313-``: False)."""
    m = _TAG_IN_NAME.search(path.rsplit("/", 1)[-1])
    if m is None:
        return None
    if m.group(1) is not None:
        return m.group(2) == "t"
    if m.group(3) is not None:
        return m.group(4) == "t"
    return m.group(5) == "t"


def inspect_binary(path: str, data: bytes, pool: CpuPool | None = None) -> Extension | Library:
    """Judge one binary file, its walks charged to `pool` (its artifact's CPU time) when
    given. Raises BinaryFormatError when it cannot be parsed."""
    fmt = binary_format(data[:4])
    if fmt is None:
        raise BinaryFormatError("not an ELF, Mach-O or PE file")
    deadline = time.thread_time() + FILE_CPU_SECONDS
    return _judge_slices(
        [judge(image, path, fmt, deadline=deadline, pool=pool) for image in _images(fmt, data)]
    )


def _images(fmt: BinaryFormat, data: bytes) -> list[Image]:
    """The images of a binary: one, or a universal Mach-O's slices."""
    if fmt is BinaryFormat.ELF:
        return [load_elf(data)]
    if fmt is BinaryFormat.PE:
        return [load_pe(data)]
    return load_macho(data)


def _judge_slices(found: list[Extension | Library]) -> Extension | Library:
    """A universal binary: one verdict only when every architecture's slice agrees."""
    if len(found) == 1:
        return found[0]
    if all(isinstance(f, Library) for f in found):
        return found[0]
    exts = [f for f in found if isinstance(f, Extension)]
    if len(exts) == len(found) and len({e.gil for e in exts}) == 1:
        first = exts[0]
        return replace(first, detail=f"{first.detail} (all {len(exts)} slices)")
    first = exts[0]
    slices = "; ".join(f.detail if isinstance(f, Extension) else f.why for f in found)
    return replace(
        first, gil=Gil.UNKNOWN, detail=f"the slices of this universal binary disagree: {slices}"
    )


def judge(
    image: Image,
    path: str,
    fmt: BinaryFormat,
    *,
    deadline: float | None = None,
    pool: CpuPool | None = None,
) -> Extension | Library:
    module = module_name(path)
    short = module.rsplit(".", 1)[-1]
    entry_name, kind = _find_export(image, short)
    if entry_name is None:
        return Library(path=path, why=NO_INIT_EXPORT)
    declared = entry_name.split("_", 1)[1]
    if declared != short:  # the one init export names the module, not the file name
        module = ".".join([*module.split(".")[:-1], declared])
    image.ensure_relocated()
    ft = _free_threaded(image, path)

    def record(gil: Gil, init: Init, detail: str) -> Extension:
        return Extension(
            path=path,
            module=module,
            gil=gil,
            init=init,
            format=fmt,
            free_threaded_build=ft,
            detail=detail,
        )

    # A cffi-generated module's init imports _cffi_backend, which builds the module
    # object, so the file holds no declaration. The signs (the backend's name, cffi's
    # PyPy entry) only explain a walk that found none: a module that embeds a cffi
    # submodule (cryptography's _rust) still declares its own. The backend itself, which
    # also names itself, is an ordinary extension module.
    cffi_signs = short != "_cffi_backend" and (
        image.contains_bytes(b"_cffi_backend\0")
        or any(name.startswith("_cffi_pypyinit_") for name in image.exports)
    )
    handed = () if cffi_signs else handed_over(image)
    if handed:
        return replace(
            record(
                Gil.UNKNOWN,
                Init.UNKNOWN,
                f"{entry_name} hands the module's creation to {', '.join(handed)}, "
                "which no other file of this artifact exports",
            ),
            handed_to=handed,
        )
    found = judge_entry(image, entry_name, kind, module, ft, record, deadline=deadline, pool=pool)
    # No declaration found: unknown, or undeclared by a file that creates no module itself.
    nothing_found = found.gil is Gil.UNKNOWN or (
        found.gil is Gil.UNDECLARED and found.init is Init.UNKNOWN
    )
    if cffi_signs and nothing_found:
        return record(
            Gil.UNKNOWN,
            Init.UNKNOWN,
            "cffi module: _cffi_backend creates the module at import time, so this file "
            f"holds no declaration to read (the walk: {found.detail})",
        )
    return found


def handed_over(image: Image) -> tuple[str, ...]:
    """Imported functions an init function may hand its work to, for a module that
    imports no module-making function of the C API at all (jaxlib's modules are a
    PyInit that jumps to Wrapped_PyInit_<name> in a library beside them)."""
    if image.imports & MODULE_API:
        return ()
    return tuple(
        sorted(
            name
            for name in image.imports
            if not name.startswith("_") and not name.startswith("Py") and name not in _RUNTIME
        )
    )


def judge_entry(
    image: Image,
    entry_name: str,
    kind: Init,
    module: str,
    ft: bool | None,
    record: Record,
    *,
    deadline: float | None = None,
    pool: CpuPool | None = None,
) -> Extension:
    """What the code at export `entry_name` of `image` declares for `module`; `deadline`
    (of time.thread_time) and `pool` bound the walk besides its own budgets."""
    imports = image.imports
    if kind is Init.EXPORT:
        return _judge_export(image, entry_name, record, deadline, pool)
    if (
        DEF_INIT not in imports
        and SET_GIL not in imports
        and "PyModule_FromDefAndSpec2" not in (imports)
    ):
        # Without PyModuleDef_Init there is no multi-phase init, and without the setter a
        # single-phase module cannot declare anything: the interpreter's default applies.
        init = Init.SINGLE_PHASE if imports & CREATE_FUNCS else Init.UNKNOWN
        return record(
            Gil.UNDECLARED,
            init,
            f"imports neither {DEF_INIT} nor {SET_GIL}: no way to declare Py_mod_gil",
        )
    if not walk.can_walk(image):
        return _judge_by_data(image, module, ft, record)

    entry = image.exports[entry_name]
    walked = walk.walk(
        image,
        entry & ~1 if image.arch == "arm" else entry,
        deadline=deadline,
        deadline_reason=_file_budget_ended(),
        pool=pool,
    )
    return _decide(image, module, ft, walked, entry_name, record)


def _find_export(image: Image, short: str) -> tuple[str | None, Init]:
    for prefix, kind in (("PyModExport_", Init.EXPORT), ("PyInit_", Init.MULTI_PHASE)):
        if prefix + short in image.exports:
            return prefix + short, kind
    for prefix, kind in (("PyModExport_", Init.EXPORT), ("PyInit_", Init.MULTI_PHASE)):
        found = sorted(n for n in image.exports if n.startswith(prefix))
        if len(found) == 1:
            return found[0], kind
    return None, Init.UNKNOWN


_PYTHON_DLL = re.compile(r"^python3(\d+)(t?)\.dll$")


def _free_threaded(image: Image, path: str) -> bool | None:
    if image.imports & FT_ONLY_SYMBOLS:
        return True
    for lib in image.libraries:  # Windows: python313t.dll is the free-threaded runtime
        m = _PYTHON_DLL.match(lib)
        if m:
            return m.group(2) == "t"
        if lib == "python3.dll":
            return False  # the stable ABI (abi3) of GIL builds
    tagged = tagged_free_threaded(path)
    if tagged is not None:
        return tagged
    if "_Py_Dealloc" in image.imports:
        return False  # Py_DECREF's GIL-build inline form
    return None


Record = Callable[[Gil, Init, str], Extension]


def _file_budget_ended() -> str:
    return f"the budget of {FILE_CPU_SECONDS:g} s of CPU time for this file ended"


def _judge_export(
    image: Image, entry_name: str, record: Record, deadline: float | None, pool: CpuPool | None
) -> Extension:
    """PEP 793: PyModExport_<name> returns the slot array itself."""
    if not walk.can_walk(image):
        return record(Gil.UNKNOWN, Init.EXPORT, f"no code reader for {image.arch} yet")
    walked = walk.walk(
        image,
        image.exports[entry_name],
        deadline=deadline,
        deadline_reason=_file_budget_ended(),
        pool=pool,
    )
    findings = set()
    details = []
    for ev in walked.events:
        if ev.name is None and ev.args and ev.args[0]:
            f = slots.read_slots(
                walk.TrustedView(ev.memory) if ev.imprecise else ev.memory,
                ev.args[0],
                image.pointer_size,
                image.where(ev.args[0]),
                pyslot=True,
            )
            findings.add(f.gil)
            details.append(f.detail)
    if len(findings) == 1:
        return record(findings.pop(), Init.EXPORT, f"{entry_name} returns slots: {details[0]}")
    if not findings:
        budget = f" ({walked.stopped})" if walked.exhausted else ""
        return record(
            Gil.UNKNOWN, Init.EXPORT, f"could not follow {entry_name} to its slots{budget}"
        )
    return record(Gil.UNKNOWN, Init.EXPORT, "paths of the export disagree: " + "; ".join(details))


def _decide(
    image: Image,
    module: str,
    ft: bool | None,
    walked: walk.Walk,
    entry_name: str,
    record: Record,
) -> Extension:
    multi: dict[Gil, str] = {}
    single: dict[Gil, str] = {}
    created = False
    unresolved_def = False
    for ev in walked.events:
        if ev.name == DEF_INIT:
            def_addr = ev.args[0]
            if def_addr is None:
                unresolved_def = True
                continue
            finding = _read_def(image, ev.memory, def_addr, module, ft, trusted_only=ev.imprecise)
            multi.setdefault(finding.gil, finding.detail)
        elif ev.name == SET_GIL:
            value = ev.args[1]
            where = f"call near {ev.at:#x}"
            if value == slots.PY_MOD_GIL_NOT_USED:
                single.setdefault(Gil.NOT_USED, f"{SET_GIL}(module, Py_MOD_GIL_NOT_USED), {where}")
            elif value == slots.PY_MOD_GIL_USED:
                single.setdefault(Gil.USED, f"{SET_GIL}(module, Py_MOD_GIL_USED), {where}")
            else:
                single.setdefault(Gil.UNKNOWN, f"{SET_GIL} with a value not known statically")
        elif ev.name in CREATE_FUNCS:
            created = True
    if multi or single:
        found = (
            _agree(multi, Init.MULTI_PHASE, record, unresolved_def)
            if multi
            else _agree(single, Init.SINGLE_PHASE, record, False)
        )
        if walked.proof is not None and found.gil is not Gil.UNKNOWN:
            found = replace(found, detail=f"{found.detail}: {walked.proof}")
        elif walked.exhausted and found.gil is not Gil.UNKNOWN:
            # The verdict rests on the paths walked; say when that was not all of them.
            found = replace(
                found, detail=f"{found.detail} (the walk's budget ended before every path)"
            )
        return found
    budget = f" ({walked.stopped})" if walked.exhausted else ""
    if unresolved_def:
        return record(
            Gil.UNKNOWN,
            Init.MULTI_PHASE,
            f"{DEF_INIT} is called with a definition not known statically{budget}",
        )
    if SET_GIL in image.imports:
        return record(
            Gil.UNKNOWN,
            Init.SINGLE_PHASE if created else Init.UNKNOWN,
            f"imports {SET_GIL} but no call to it was reached from {entry_name}{budget}",
        )
    if created:
        return record(
            Gil.UNDECLARED,
            Init.SINGLE_PHASE,
            f"single-phase init ({entry_name} creates the module) with no {SET_GIL} import",
        )
    return record(
        Gil.UNKNOWN, Init.UNKNOWN, f"could not follow {entry_name} to a module definition{budget}"
    )


def _agree(found: dict[Gil, str], init: Init, record: Record, partial: bool) -> Extension:
    if len(found) == 1 and not partial:
        gil, detail = next(iter(found.items()))
        return record(gil, init, f"{init.value}, {detail}")
    details = "; ".join(f"{g.value}: {d}" for g, d in found.items())
    if partial:
        details += "; another path passes a definition not known statically"
    return record(Gil.UNKNOWN, init, f"paths of the init code disagree ({details})")


def _read_def(
    image: Image,
    mem: walk.Memory,
    def_addr: int,
    module: str,
    ft: bool | None,
    *,
    trusted_only: bool = False,
) -> slots.SlotFinding:
    """Read the definition at `def_addr` and its slots. With `trusted_only` (the path
    stepped over a function), the slot entries must be ones the path wrote or read-only
    data; the definition's own fields (a name check and a pointer) are read as they are."""
    where = image.where(def_addr)
    layout, name = slots.choose_layout(
        mem, def_addr, image.pointer_size, module, ft, multi_phase=True
    )
    if layout is None:
        shown = f"m_name is {name!r}" if name else "m_name is not a string"
        return slots.SlotFinding(
            Gil.UNKNOWN, f"the definition passed at {where} does not name {module} ({shown})"
        )
    entries: slots.Readable = walk.TrustedView(mem) if trusted_only else mem
    finding = _def_slots(image, mem, entries, def_addr, layout, from_data=False)
    if trusted_only and finding.gil is Gil.UNKNOWN and "not readable" in finding.detail:
        return slots.SlotFinding(
            Gil.UNKNOWN,
            f"{finding.detail}: the slots lie in writable data and the init code calls a "
            "function the walk stepped over, which could have changed them",
        )
    return finding


def _judge_by_data(image: Image, module: str, ft: bool | None, record: Record) -> Extension:
    """Without a code reader for the architecture: find the module's PyModuleDef in the
    data by the name it carries, and read its slots.

    Only sound for a module that can only be created multi-phase (it imports
    PyModuleDef_Init and no single-phase constructor). What init code might change at run
    time is never taken as read: a definition or slot array in writable memory that is
    still empty is `unknown` (pybind11 and others fill them in PyInit), and only a
    Py_mod_gil value the file itself holds counts.
    """
    no_reader = f"no code reader for {image.arch}"
    # A single-phase module needs a constructor of those; PyModuleDef_Init alone means
    # PyInit returns the definition, whose slots then decide (a PyUnstable_Module_SetGIL
    # call, which Cython also compiles in, acts before the slot is applied).
    if image.imports & CREATE_FUNCS or DEF_INIT not in image.imports:
        return record(
            Gil.UNKNOWN,
            Init.UNKNOWN,
            f"{no_reader} yet, and the module may be created single-phase",
        )
    names = {module, module.rsplit(".", 1)[-1]}
    strings: set[int] = set()
    for seg in image.segments:
        for name in names:
            needle = name.encode() + b"\0"
            at = find_bytes(seg.data, needle)
            while at >= 0:
                if at == 0 or seg.data[at - 1] == 0:
                    strings.add(seg.vaddr + at)
                at = find_bytes(seg.data, needle, at + 1)
    p = image.pointer_size
    findings: dict[Gil, str] = {}
    options = slots.layouts(p)
    # The build kind says where m_name sits; unknown, both are tried and must agree.
    if ft is None:
        candidates = list(options.values())
    else:
        candidates = [options["free-threaded" if ft else "GIL"]]
    for where_ptr in _pointers_to(image, strings):
        for layout in candidates:
            def_addr = where_ptr - layout.m_name
            if not slots.head_is_initial(image, def_addr, layout, p):
                continue  # a pointer to the name that is not a definition's (a GOT entry)
            finding = _def_slots(image, image, image, def_addr, layout, from_data=True)
            findings.setdefault(finding.gil, finding.detail)
    suffix = f" (read from the data: {no_reader}, so the init code was not followed)"
    if not findings:
        return record(
            Gil.UNKNOWN, Init.UNKNOWN, f"{no_reader} yet, and no PyModuleDef naming {module}"
        )
    if len(findings) > 1:
        details = "; ".join(f"{g.value}: {d}" for g, d in findings.items())
        return record(Gil.UNKNOWN, Init.MULTI_PHASE, f"definitions disagree ({details}){suffix}")
    gil, detail = next(iter(findings.items()))
    return record(gil, Init.MULTI_PHASE, f"multi-phase, {detail}{suffix}")


def _pointers_to(image: Image, targets: set[int]) -> list[int]:
    """Addresses of pointer-sized words in data that hold one of `targets`: relocated
    words (RELA) and words whose file bytes are the pointer (REL's implicit addend)."""
    p = image.pointer_size
    found = {addr for addr, value in image.relocated.items() if value in targets}
    code = "I" if p == 4 else "Q"
    for seg in image.segments:
        if seg.executable:
            continue
        usable = len(seg.data) - len(seg.data) % p
        words = array(code)
        words.frombytes(seg.data[:usable])
        if image.little_endian != (sys.byteorder == "little"):
            words.byteswap()
        found.update(seg.vaddr + i * p for i, word in enumerate(words) if word in targets)
    return sorted(a for a in found if image.read_pointer(a) in targets)


def _def_slots(
    image: Image,
    mem: slots.Readable,
    entries: slots.Readable,
    def_addr: int,
    layout: slots.Layout,
    *,
    from_data: bool,
) -> slots.SlotFinding:
    """The Py_mod_gil the definition at `def_addr` holds: its m_slots read from `mem`, the
    slot entries from `entries`. `from_data`: read from the file alone, no init code
    followed, so a definition or slot array still empty in writable data may yet be
    filled at run time."""
    where = image.where(def_addr)
    slots_ptr = mem.read_pointer(def_addr + layout.m_slots)
    if slots_ptr is None:
        return slots.SlotFinding(
            Gil.UNKNOWN, f"PyModuleDef at {where}: m_slots is not known statically"
        )
    if slots_ptr == 0:
        if from_data and image.is_writable(def_addr):
            return slots.SlotFinding(
                Gil.UNKNOWN,
                f"PyModuleDef at {where} has no slots in the file, and lies in writable "
                "data the init code may fill",
            )
        # m_slots NULL with PyModuleDef_Init: multi-phase with no slots at all.
        return slots.SlotFinding(Gil.UNDECLARED, f"PyModuleDef at {where} has no slots")
    finding = slots.read_slots(entries, slots_ptr, image.pointer_size, image.where(slots_ptr))
    if (
        from_data
        and finding.gil is Gil.UNDECLARED
        and entries.read_int(slots_ptr, 4) == 0
        and image.is_writable(slots_ptr)
    ):
        return slots.SlotFinding(
            Gil.UNKNOWN,
            f"the slot array at {image.where(slots_ptr)} is empty in the file and lies in "
            "writable data the init code may fill",
        )
    return finding


def judge_handed_over(ext: Extension, image: Image, symbol: str, library: str) -> Extension:
    """`ext`'s verdict from the function its init hands over to, exported by `image`."""
    image.ensure_relocated()

    def record(gil: Gil, init: Init, detail: str) -> Extension:
        return replace(
            ext,
            gil=gil,
            init=init,
            detail=f"init handed to {symbol} in {library}: {detail}",
            handed_to=(),
        )

    return judge_entry(image, symbol, Init.MULTI_PHASE, ext.module, ext.free_threaded_build, record)


def load_image(data: bytes) -> Image | None:
    """The one image of a binary (None for a universal Mach-O, whose slices differ, and
    for what is not a binary)."""
    fmt = binary_format(data[:4])
    images = _images(fmt, data) if fmt is not None else []
    return images[0] if len(images) == 1 else None
