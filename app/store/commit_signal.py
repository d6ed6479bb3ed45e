"""A file descriptor that becomes readable when some process writes to the SQLite store.

Every commit to a database in WAL mode appends to its `-wal` file, whichever process makes
it, so an inotify watch on that file (`IN_MODIFY`) tells a watcher that a commit is under
way without asking the database on a timer: a process that waits on it wakes for commits,
not for ticks. On this kind of shared VM each wake-up of a sleeping thread costs 50-200 us
of CPU, so a watcher that ticks 20 times a second costs more than the work it finds.

The write comes before the commit is visible (SQLite writes the frames, syncs them, then
updates the WAL index): after a signal, compare `Store.change_token()` again for a short
while. Linux only; `open_commit_signal` returns None elsewhere, for a database that is not a
local SQLite file, or when inotify is unavailable (then poll as before).
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

_IN_MODIFY = 0x00000002
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC


class CommitSignal:
    """An inotify descriptor watching one `-wal` file: `fileno()` for a selector or an event
    loop's `add_reader`, `drain()` once woken, `close()` when done."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    def fileno(self) -> int:
        return self._fd

    def drain(self) -> bool:
        """Read every pending notification; whether there was any."""
        seen = False
        while True:
            try:
                if not os.read(self._fd, 4096):
                    return seen
            except BlockingIOError:
                return seen
            seen = True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_commit_signal(wal_path: Path) -> CommitSignal | None:
    """A signal on `wal_path` (which must exist), or None where inotify cannot watch it."""
    if not wal_path.exists():
        return None
    try:
        # The process's own symbols (libc's among them): no library search, which would run
        # ldconfig, on the event loop, each time a first subscriber comes.
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    except (OSError, AttributeError):  # no inotify here (not Linux)
        return None
    if fd < 0:
        logger.info("inotify is unavailable (errno %d): the event hub polls", ctypes.get_errno())
        return None
    if libc.inotify_add_watch(fd, os.fsencode(wal_path), _IN_MODIFY) < 0:
        logger.info("cannot watch %s (errno %d): the event hub polls", wal_path, ctypes.get_errno())
        os.close(fd)
        return None
    return CommitSignal(fd, wal_path)
