"""The host's run lock: at most one benchmark at a time per host, across processes and data dirs.

An exclusive `fcntl.flock` on one lock file per host (setting `run_lock_path`, env
`OVBENCH_RUN_LOCK_PATH`), taken by the worker before it claims a job and released after the
job's outcome is stored. The kernel drops the lock when the holder dies (kill -9, a plugin
crash), so a dead worker never blocks the next one. Every other worker that opens the same
file (a stray `python -m app.worker`, the worker of a second serve on another data dir) waits
for the lock and says so in its log, naming the file; it never claims a job while another
run is on. Two serves given different lock paths are two "hosts" and run side by side.

Where the lock lives by default (`default_lock_path`), the same answer for every process and
user on the host, decided only by what the host has:

- `/run/lock/ovbench/run.lock` when `/run/lock/ovbench` exists (an administrator made it) or
  `/run/lock` is world-writable with the sticky bit, so any user may make it (Debian,
  Ubuntu: `/run/lock` is 1777 root). `/run/lock` is a tmpfs, so the file is gone at boot,
  and systemd's `PrivateTmp` does not hide it from services.
- `/tmp/ovbench/run.lock` otherwise (e.g. Fedora, where `/run/lock` is 755 root, as in
  systemd 258's own default; macOS). `/tmp`, not `$TMPDIR`: that one is per user or per
  session and would split the host's lock.

Never inside a data dir: two data dirs on one host share one benchmark at a time.

Permissions. Whichever ovbench process comes first, under whichever user, makes what is
missing, so that every later one can open it:

- the lock file's directory, when missing (that one level only), with mode 1777 (sticky,
  like /tmp: anyone may create the file, nobody may delete another user's);
- the file, with mode 0666 (chmod'ed past the umask; its content is never read or written).

Opening never creates a file that already exists (`O_CREAT` only with `O_EXCL`, when it is
missing): with `fs.protected_regular` an `O_CREAT` open of another user's file in a sticky
directory is refused even when the file itself is open to all. The file is opened for reading
and writing when its mode allows, else read-only (`flock` needs no write access on a local
filesystem). A symlink in place of the file is refused (`O_NOFOLLOW`: nothing another user
planted is followed), so is anything but a regular file (`O_NONBLOCK`: a FIFO cannot hang the
open). When the file cannot be opened, `RunLockError` names the path, why, and the setting
that picks another. The lock is cooperative: it keeps ovbench processes from running two
benchmarks at once by accident, not a hostile local user from running one.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
SETTING_ENV = "OVBENCH_RUN_LOCK_PATH"
RUN_LOCK_DIR = Path("/run/lock")
TEMP_DIR = Path("/tmp")  # the host-wide temp dir on purpose, not $TMPDIR
DIR_MODE = 0o1777
FILE_MODE = 0o666
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPEN_ATTEMPTS = 5  # missing, then there: another process made it (it is never deleted)


class RunLockError(Exception):
    """The run lock file cannot be opened; the message names the path and the setting."""


def default_lock_path(run_lock_dir: Path = RUN_LOCK_DIR, temp_dir: Path = TEMP_DIR) -> Path:
    """The host's lock file when `run_lock_path` is not set (module docstring: why there)."""
    own = run_lock_dir / "ovbench"
    try:
        mode = run_lock_dir.stat().st_mode
    except OSError:
        mode = 0
    anyone_may_create = stat.S_ISDIR(mode) and mode & DIR_MODE == DIR_MODE
    if own.is_dir() or anyone_may_create:
        return own / LOCK_NAME
    return temp_dir / "ovbench" / LOCK_NAME


def _make_directory(directory: Path) -> None:
    """Make the lock's directory (one level) with mode 1777, unless it is there already."""
    try:
        os.mkdir(directory, DIR_MODE)
    except FileExistsError:
        return
    os.chmod(directory, DIR_MODE)  # past the umask


def _open_lock_file(path: Path) -> int:
    """A descriptor on the lock file, made (0666) if missing; OSError when it cannot be."""
    if not path.parent.is_dir():
        _make_directory(path.parent)
    for _ in range(_OPEN_ATTEMPTS):
        for access in (os.O_RDWR, os.O_RDONLY):
            try:
                return os.open(path, access | _OPEN_FLAGS)
            except PermissionError:
                if access == os.O_RDONLY:
                    raise
            except FileNotFoundError:
                break
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, FILE_MODE)
        except FileExistsError:
            continue  # another process made it just now: open that one
        os.fchmod(fd, FILE_MODE)  # past the umask
        return fd
    raise OSError(errno.EEXIST, "it keeps vanishing and reappearing")


def _why(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ELOOP and path.is_symlink():
        return "it is a symbolic link (refused: a link someone planted is never followed)"
    if exc.errno == errno.ENOENT and not path.parent.parent.is_dir():
        return f"{path.parent.parent} does not exist (only the lock's own directory is made)"
    return exc.strerror or str(exc)


class RunLock:
    """One process's handle on the run lock (not re-entrant; not shared across threads).

    Opens (or makes) the file at once: RunLockError when it cannot be opened.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._fd = _open_lock_file(self.path)
        except OSError as exc:
            raise RunLockError(self._cannot(_why(exc, self.path))) from exc
        if not stat.S_ISREG(os.fstat(self._fd).st_mode):
            os.close(self._fd)
            raise RunLockError(self._cannot("it is not a regular file"))
        self.held = False
        self._told_waiting = False

    def _cannot(self, why: str) -> str:
        return (
            f"cannot open the run lock {self.path}: {why}. Every ovbench process on this host "
            f"must be able to open it; set {SETTING_ENV} to a file they all can open (its "
            "directory is made with mode 1777 when missing)"
        )

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
