"""Reading a `PyModuleDef` and its `PyModuleDef_Slot` array out of a laid-out image.

Layout (CPython's `moduleobject.h`): a `PyModuleDef` starts with `PyModuleDef_Base`
(a `PyObject` header, then m_init, m_index, m_copy), then m_name, m_doc, m_size,
m_methods, m_slots. The `PyObject` header is two words in a GIL build and, in a
free-threaded build, ob_tid, 4 bytes of flags/mutex/gc bits, the 32-bit local refcount,
the shared refcount and ob_type. Each slot is `{int slot; void *value;}`, padded to two
words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ftaudit.model import Gil

# Py_mod_gil is 4 before 3.15. CPython 3.15's unified slot numbering (PEP 820) gives the
# module slots new ids when compiled against its headers — Py_mod_create 84, Py_mod_exec 85,
# Py_mod_multiple_interpreters 86, Py_mod_gil 87, read off real cp315t wheels — and keeps
# accepting the old ones.
PY_MOD_GIL_IDS = frozenset({4, 87})
PY_MOD_GIL_USED = 0
PY_MOD_GIL_NOT_USED = 1
_MODULE_SLOT_IDS = frozenset(range(1, 14)) | frozenset(range(84, 100))
MAX_SLOTS = 64


class Readable(Protocol):
    def read_int(self, addr: int, size: int, *, signed: bool = False) -> int | None: ...
    def read_pointer(self, addr: int) -> int | None: ...
    def read_cstring(self, addr: int) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Layout:
    name: str  # "free-threaded" or "GIL"
    m_name: int
    m_slots: int


def layouts(pointer_size: int) -> dict[str, Layout]:
    p = pointer_size
    ft_head = p + 4 + 4 + p + p  # ob_tid, flags+mutex+gc bits, ob_ref_local, shared, type
    gil_head = 2 * p
    return {
        "free-threaded": Layout("free-threaded", ft_head + 3 * p, ft_head + 7 * p),
        "GIL": Layout("GIL", gil_head + 3 * p, gil_head + 7 * p),
    }


@dataclass(frozen=True, slots=True)
class SlotFinding:
    gil: Gil
    detail: str


def read_slots(
    mem: Readable, slots_addr: int, pointer_size: int, where: str, *, pyslot: bool = False
) -> SlotFinding:
    """Find Py_mod_gil in a zero-terminated slot array.

    `PyModuleDef_Slot` is `{int slot; void *value;}`; PEP 820's `PySlot` (what a 3.15
    `PyModExport_` returns) is `{uint16 sl_id; uint16 sl_flags; uint32; value}`. Both are two
    words long with the value in the second word.
    """
    entry = 2 * pointer_size
    seen: list[int] = []
    for i in range(MAX_SLOTS):
        at = slots_addr + i * entry
        slot_id = mem.read_int(at, 2) if pyslot else mem.read_int(at, 4, signed=True)
        if slot_id is None:
            return SlotFinding(Gil.UNKNOWN, f"slot {i} of the array at {where} is not readable")
        if slot_id == 0:
            names = ", ".join(str(s) for s in seen) or "none"
            return SlotFinding(
                Gil.UNDECLARED,
                f"slot array at {where} has no Py_mod_gil slot (slot ids: {names})",
            )
        if slot_id not in _MODULE_SLOT_IDS:
            return SlotFinding(
                Gil.UNKNOWN, f"slot array at {where} holds an unknown slot id {slot_id}"
            )
        seen.append(slot_id)
        if slot_id in PY_MOD_GIL_IDS:
            value = mem.read_pointer(at + pointer_size)
            label = f"slot {i} at {where}" + (f", Py_mod_gil id {slot_id}" if slot_id != 4 else "")
            if value == PY_MOD_GIL_NOT_USED:
                return SlotFinding(Gil.NOT_USED, f"Py_mod_gil = Py_MOD_GIL_NOT_USED ({label})")
            if value == PY_MOD_GIL_USED:
                return SlotFinding(Gil.USED, f"Py_mod_gil = Py_MOD_GIL_USED ({label})")
            shown = "not known statically" if value is None else f"{value:#x}"
            return SlotFinding(Gil.UNKNOWN, f"Py_mod_gil value {shown} ({label})")
    return SlotFinding(Gil.UNKNOWN, f"slot array at {where} has no terminator")


def name_matches(found: str | None, module: str) -> bool:
    if found is None:
        return False
    short = module.rsplit(".", 1)[-1]
    return found in (module, short) or found.endswith("." + short)


def choose_layout(
    mem: Readable,
    def_addr: int,
    pointer_size: int,
    module: str,
    free_threaded: bool | None,
    *,
    multi_phase: bool = False,
) -> tuple[Layout | None, str | None]:
    """The layout under which `def_addr` is a PyModuleDef naming `module`.

    The build kind decides which layout is tried first; m_name must then hold the module's
    name. A definition that names no module under either layout is not trusted: the
    address may not be a PyModuleDef at all. Returns the layout (or None) and, for the
    error message, the name found under the preferred layout.
    """
    options = layouts(pointer_size)
    order = (
        [options["free-threaded"], options["GIL"]]
        if free_threaded is not False
        else [options["GIL"], options["free-threaded"]]
    )
    named = []
    for layout in order:
        name_ptr = mem.read_pointer(def_addr + layout.m_name)
        named.append((layout, mem.read_cstring(name_ptr) if name_ptr else None))
    for layout, name in named:
        if name_matches(name, module):
            return layout, name
    # Multi-phase import names the module after its spec, so m_name may say anything
    # (whenever's Rust module calls itself "whenever"). A definition is then trusted only
    # when it starts as PyModuleDef_HEAD_INIT leaves one: ob_type, m_init, m_index and
    # m_copy zero, right before m_name, and m_name is a string.
    if multi_phase:
        for layout, name in named:
            if name and head_is_initial(mem, def_addr, layout, pointer_size):
                return layout, name
    return None, named[0][1]


def head_is_initial(mem: Readable, def_addr: int, layout: Layout, pointer_size: int) -> bool:
    """Whether ob_type, m_init, m_index and m_copy (the four words before m_name) are
    zero, as PyModuleDef_HEAD_INIT leaves every static definition."""
    start = def_addr + layout.m_name - 4 * pointer_size
    return all(mem.read_pointer(start + i * pointer_size) == 0 for i in range(4))
