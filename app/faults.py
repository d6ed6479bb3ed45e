"""Fault points for the reliability tests: named places where a process can be made to die.

`fault_point("before_result")` does nothing unless the fault named `before_result` was
switched on for this process with `configure_faults(settings.fault)` (from `OVBENCH_FAULT`,
a comma-separated list, read once at process start, never at import time). Then:

- names starting with `hang_` block the calling thread for good (signals are blocked and
  the sleep is retried), like a run stuck inside a native call;
- any other name SIGKILLs the current process on the spot, like a plugin crash or `kill -9`.

Tests only: production leaves `OVBENCH_FAULT` unset, and then a fault point is one check of
an empty frozenset.
"""

from __future__ import annotations

import logging
import os
import signal
import time

logger = logging.getLogger(__name__)

FAULT_POINTS = frozenset(
    {
        "after_claim",  # worker: a job was just claimed (status running), nothing run yet
        "before_result",  # worker: the run finished, its result is not stored yet
        "hang_in_run",  # worker: the run never returns (a stuck native call)
        "before_publish",  # fleet API: a job was committed, not yet handed to the broker
    }
)

_active: frozenset[str] = frozenset()


def configure_faults(spec: str | None) -> frozenset[str]:
    """Switch on the named fault points for this process (comma-separated; "" for none)."""
    global _active
    names = frozenset(n.strip() for n in (spec or "").split(",") if n.strip())
    unknown = names - FAULT_POINTS
    if unknown:
        logger.warning("unknown fault points ignored: %s", ", ".join(sorted(unknown)))
    _active = names & FAULT_POINTS
    if _active:
        logger.warning("FAULT POINTS ARMED (tests only): %s", ", ".join(sorted(_active)))
    return _active


def fault_point(name: str) -> None:
    """Die (or hang, for `hang_*`) here if this fault point is armed; otherwise nothing."""
    if name not in _active:
        return
    if name.startswith("hang_"):
        logger.error("fault point %s: hanging (pid %d)", name, os.getpid())
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        while True:
            time.sleep(3600)
    logger.error("fault point %s: killing this process (pid %d)", name, os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)
