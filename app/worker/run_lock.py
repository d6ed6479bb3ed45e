"""The host's run lock: at most one benchmark at a time per data dir, across processes.

An exclusive `fcntl.flock` on `<data_dir>/run.lock`, taken by the worker before it claims a
job and released after the job's outcome is stored. The kernel drops the lock when the
holder dies (kill -9, a plugin crash), so a dead worker never blocks the next one. A second
worker on the same data dir (a stray `python -m app.worker`, a second serve's worker) waits
for the lock and says so in its log; it never claims a job while another run is on.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"


class RunLock:
    """One process's handle on the run lock (not re-entrant; not shared across threads)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.held = False
        self._told_waiting = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free (never blocks); True when this process holds it."""
        if self.held:
            return True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not self._told_waiting:
                logger.warning(
                    "pid %d: another process holds %s (a benchmark is running there); "
                    "waiting for it before running any job",
                    os.getpid(),
                    self.path,
                )
                self._told_waiting = True
            return False
        if self._told_waiting:
            logger.info("pid %d: got %s", os.getpid(), self.path)
        self.held, self._told_waiting = True, False
        return True

    def held_elsewhere(self) -> bool:
        """True when another open handle (another process) holds the lock right now."""
        if self.held:
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return False

    def release(self) -> None:
        if self.held:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self.held = False

    def close(self) -> None:
        self.release()
        os.close(self._fd)
