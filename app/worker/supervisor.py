"""The supervisor: starts the worker process, restarts it when it dies, stops it on shutdown.

Runs as a thread in the serve process. When the worker dies unexpectedly (kill -9, a
plugin crash) the job it was running is marked `failed` with code `worker_lost`, and a
new worker is started at once (with a short back-off if it keeps dying at start-up).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time

from app.settings import Settings
from app.store import Store

logger = logging.getLogger(__name__)

_POLL_S = 0.1
_MAX_BACKOFF_S = 2.0
_HEALTHY_AFTER_S = 10.0


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


class Supervisor:
    """Keeps exactly one worker process alive while the service runs."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._monitor, name="worker-supervisor", daemon=True)
        self.restarts = 0

    @property
    def worker_pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def start(self) -> None:
        """Start the worker and the monitor thread (call from a thread at normal priority)."""
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        command = [
            sys.executable,
            "-m",
            "app.worker",
            "--settings-json",
            self.settings.model_dump_json(),
        ]
        with self._lock:
            if self._stopping.is_set():
                return
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
            self._started_at = time.monotonic()
        logger.info("worker process %d started", self._process.pid)

    def _monitor(self) -> None:
        backoff_s = 0.0
        while not self._stopping.wait(_POLL_S):
            process = self._process
            if process is None or process.poll() is None:
                continue
            with self._lock:
                if self._stopping.is_set():
                    return
            how = describe_exit(process.returncode)
            logger.error("worker process %d %s; restarting it", process.pid, how)
            try:
                lost = self.store.fail_running_jobs(
                    "worker_lost",
                    f"The worker process (pid {process.pid}) {how} while running this job "
                    "(a device plugin crash, or the process was killed). The service restarted "
                    "the worker; submit the job again to retry.",
                    worker_pid=process.pid,
                )
                if lost:
                    logger.error("jobs lost with worker %d: %s", process.pid, ", ".join(lost))
                self.store.clear_worker(process.pid)
            except Exception:
                logger.exception("could not record the lost worker's jobs")
            lived_s = time.monotonic() - self._started_at
            backoff_s = (
                0.0 if lived_s > _HEALTHY_AFTER_S else min(_MAX_BACKOFF_S, backoff_s * 2 or 0.25)
            )
            if backoff_s and self._stopping.wait(backoff_s):
                return
            self.restarts += 1
            self._spawn()

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM the worker (it cancels its job), wait, then SIGKILL; record leftovers."""
        grace_s = self.settings.cancel_grace_s if timeout_s is None else timeout_s
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("worker %d did not stop in %.1f s; killing it", process.pid, grace_s)
                process.kill()
                process.wait(timeout=5)
        if process is not None:
            logger.info("worker process %d %s", process.pid, describe_exit(process.returncode))
            try:
                self.store.cancel_running_jobs(
                    "Cancelled: the service shut down while the job was running",
                    worker_pid=process.pid,
                )
                self.store.clear_worker(process.pid)
            except Exception:
                logger.exception("could not record the stopped worker's jobs")
        if self._thread.is_alive():
            self._thread.join(timeout=2)
