"""Constant propagation over a module's init code, decoded with capstone.

Starting at an export (``PyInit_<name>`` or ``PyModExport_<name>``) it walks the code the
way the CPU would, tracking registers and memory whose values are known constants
(addresses included, since the image is laid out at base 0), following direct calls into
the binary's own functions and PLT stubs, and forking at conditional branches. It never
executes anything: it reads instructions and updates a model.

What it reports is a list of events: each call to an imported function with the values of
its first arguments (unknown ones are None), and each return from the export. A memory
view at the moment of the event lets the caller read what the code had stored so far,
which is how slot arrays that init code fills at run time become visible.

Budgets bound the walk; running out of budget only means fewer events, and the caller
turns missing evidence into `unknown`, never into a declaration.
"""

from __future__ import annotations

from ftaudit.inspect.image import Image
from ftaudit.inspect.walk import proof
from ftaudit.inspect.walk.arm64 import Arm64
from ftaudit.inspect.walk.calls import RECORDED
from ftaudit.inspect.walk.machine import (
    MAX_STEPS,
    REACH_BUDGET,
    WALK_CPU_SECONDS,
    WIDE_REACH_BUDGET,
    Budget,
    CpuPool,
    Event,
    Machine,
    Walk,
)
from ftaudit.inspect.walk.memory import Memory, Partial, TrustedView, Value
from ftaudit.inspect.walk.x86 import X86, X86_32, X86Win64

SET_GIL = proof.SET_GIL

__all__ = [
    "MAX_STEPS",
    "RECORDED",
    "WALK_CPU_SECONDS",
    "CpuPool",
    "Event",
    "Memory",
    "Partial",
    "TrustedView",
    "Value",
    "Walk",
    "can_walk",
    "walk",
]


def walk(
    image: Image,
    entry: int,
    *,
    deadline: float | None = None,
    deadline_reason: str | None = None,
    pool: CpuPool | None = None,
) -> Walk:
    """Walk every path from `entry` within the budgets and collect its events.

    A function is walked into unless a bounded look at its call graph shows it cannot
    reach a declaring import, since stepping over it makes writable memory unknown. When
    that spends the whole budget inside a large callee without reaching a declaration
    (pybind11 3's get_internals, about 11,000 instructions, runs before its
    PyModuleDef_Init), a second walk steps over every function a wider look clears. If
    that finds none either, a third counts a call through a pointer as one that may
    declare: PyO3 reaches its module's creation only through the vtable of a closure that
    a once-cell runs, inside a make_module the first walk stepped over. Each walk is
    sound on its own; the first that reaches a declaration is the one reported. When none
    does, walk/proof.py may still prove from the init function alone that a call to
    PyUnstable_Module_SetGIL(module, Py_MOD_GIL_NOT_USED) has the last word."""
    budget = Budget(deadline, deadline_reason, pool)
    first = _machine(image, REACH_BUDGET, eager=False, budget=budget)
    found = first.run(entry)
    if found.declared_at is not None:
        return found
    for reach, eager in ((WIDE_REACH_BUDGET, False), (REACH_BUDGET, True)):
        if found.final:
            break
        machine = _machine(image, reach, eager=eager, budget=budget)
        machine.share_decoding(first)
        again = machine.run(entry)
        if again.declared_at is not None:
            return again
        if again.final:
            # Only this run's events are lost: the first's stand, with the reason the
            # search for more ended.
            found.stopped, found.final = again.stopped, True
    if SET_GIL in image.imports:
        # The walks' budgets ended inside the callees, or their paths: the setter may yet
        # be proved decisive from the init function alone, on a budget of its own.
        proved = proof.prove(image, entry, Budget(deadline, deadline_reason, pool))
        if proved is not None:
            return proved
    return found


def _machine(image: Image, reach_budget: int, *, eager: bool, budget: Budget) -> Machine:
    if image.arch == "x86_64":
        cls: type[Machine] = X86Win64 if image.abi == "win64" else X86
    elif image.arch == "i386" and image.abi != "win32":
        cls = X86_32
    elif image.arch == "aarch64":
        cls = Arm64
    else:
        raise ValueError(f"no code reader for {image.arch}")
    return cls(image, reach_budget, eager=eager, budget=budget)


def can_walk(image: Image) -> bool:
    """Whether there is a code reader for this image's architecture and convention."""
    return image.arch in ("x86_64", "aarch64") or (image.arch == "i386" and image.abi != "win32")
