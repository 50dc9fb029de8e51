"""What the walk knows of imported functions: which calls to record, which it models,
and through which arguments the others may write."""

from __future__ import annotations

# The imports whose calls (with their arguments and the memory at that moment) are worth
# recording; every other import is only stepped over.
RECORDED = frozenset(
    {
        "PyModuleDef_Init",
        "PyUnstable_Module_SetGIL",
        "PyModule_Create2",
        "PyModule_Create",
        "PyModule_FromDefAndSpec2",
    }
)
# Imports whose effect on memory the walker models (see _emulate_libc, _returns).
MODELLED = frozenset(
    {
        "memcpy",
        "memmove",
        "__memcpy_chk",
        "memset",
        "__memset_chk",
        "__cxa_guard_acquire",
        "__cxa_guard_release",
        "_Init_thread_header",
        "_Init_thread_footer",
        "PyModuleDef_Init",
    }
)
# Imports known to write through only their first N arguments (0: through none). The
# other argument registers may still hold the caller's pointers: `__tls_get_addr` takes
# one argument while five more registers point into the caller's frame,
# PyEval_SaveThread takes none while rdx points at a once-cell's state, and
# ReleaseSRWLockExclusive(lock) is called with r8 pointing at the thread's TLS block.
WRITES_THROUGH: dict[str, int] = {
    **dict.fromkeys(
        (
            "__tls_get_addr",
            "_tlv_bootstrap",  # macOS thread-local variables: x0 in, the address out
            "strlen",
            "strcmp",
            "strncmp",
            "memcmp",
            "getenv",
            "Py_GetVersion",
            "PyInterpreterState_Get",
            "PyInterpreterState_Main",
            "PyThreadState_Get",
            "PyGILState_Check",
            "PyGILState_Ensure",
            "PyGILState_Release",
            "PyEval_SaveThread",
            "PyEval_RestoreThread",
            "PyInterpreterState_GetID",
            "PyErr_Occurred",
        ),
        0,
    ),
    **dict.fromkeys(
        (
            "AcquireSRWLockExclusive",
            "ReleaseSRWLockExclusive",
            "AcquireSRWLockShared",
            "ReleaseSRWLockShared",
            "WakeAllConditionVariable",
            "WakeConditionVariable",
            "pthread_mutex_lock",
            "pthread_mutex_unlock",
            "pthread_once",
        ),
        1,
    ),
    "SleepConditionVariableSRW": 2,
}
ZEROED = frozenset({"calloc", "PyMem_Calloc", "PyMem_RawCalloc", "PyObject_Calloc"})
ALLOCATORS = ZEROED | {
    "malloc",
    "PyMem_Malloc",
    "PyMem_RawMalloc",
    "PyObject_Malloc",
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
}
