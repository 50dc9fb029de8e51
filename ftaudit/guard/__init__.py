"""The runtime guard: which extension modules a real program loads that turn the GIL on.

hook.py runs inside the guarded process (a sitecustomize for `ftaudit run`, installed
in-process by the pytest plugin) and only records; collect.py judges the records after the
fact; report.py writes them; plugin.py is the pytest plugin.
"""
