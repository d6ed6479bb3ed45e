"""The supervisor: starts the worker process, restarts it when it dies, stops it on shutdown.

Runs as a thread in the serve process. When the worker dies unexpectedly (kill -9, a
plugin crash) the job it was running is marked `failed` with code `worker_lost` (never
re-run: a job that crashed its worker would likely crash the next one too), and a new
worker is started at once (with a short back-off if it keeps dying at start-up).

It also watches the worker's running job and kills the worker (SIGKILL) when:
- the job was cancelled and the run has not stopped `run_kill_grace_s` later (stuck in a
  native call): the job ends `cancelled`;
- the run passed its wall-time budget (`wall_time_budget_s`): the job ends `failed` with
  code `timeout`.
Either way a fresh worker replaces the killed one straight away.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from app.engine.defaults import DEFAULT_DEVICE, device_default_duration_s
from app.settings import ENV_PREFIX, Settings
from app.store import Store
from app.store.tables import utcnow

logger = logging.getLogger(__name__)

_POLL_S = 0.1  # where the worker's exit cannot be waited on (no pidfd): how often to look
_WATCH_JOB_S = 1.0  # how often the running job is read (cancelled and stuck, out of time)
_MAX_BACKOFF_S = 2.0
_HEALTHY_AFTER_S = 10.0
DATABASE_URL_ENV = f"{ENV_PREFIX}DATABASE_URL"


class _ExitWatch:
    """The monitor's sleep: until the worker exits (a pidfd, so no wake-ups while it lives:
    each costs CPU the benchmark could use), `_WATCH_JOB_S` passed, or the supervisor stops.
    Where pidfd is unavailable (Linux < 5.3), it looks every `_POLL_S` as before."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._pid: int | None = None

    def wait(self, process: subprocess.Popen[bytes] | None, stopping: threading.Event) -> bool:
        """Sleep; whether the supervisor is stopping."""
        if process is None:
            return stopping.wait(_POLL_S)
        if self._pid != process.pid:
            self.close()
            self._pid = process.pid
            with contextlib.suppress(OSError, AttributeError):
                self._fd = os.pidfd_open(process.pid)
        if self._fd is None:
            return stopping.wait(_POLL_S)
        select.select([self._fd], [], [], _WATCH_JOB_S)  # stop() ends the worker: it wakes
        return stopping.is_set()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = self._pid = None


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


def wall_time_budget_s(params: Mapping[str, Any], settings: Settings) -> float:
    """How long a job may run: its measuring time (or an estimate) plus the allowance.

    Measuring time: `duration_s`; for `niter`, `niter * niter_budget_s`; with both, the
    larger (benchmark_app stops when both are met); with neither, the device's default
    duration. Times `repeats` (the measured runs after one compile), plus the host guard's
    wait for a quiet host, plus `job_allowance_s` for reading, compiling and the first
    inference.
    """
    duration = params.get("duration_s")
    niter = params.get("niter")
    measuring = 0.0
    if duration:
        measuring = float(duration)
    if niter:
        measuring = max(measuring, float(niter) * settings.niter_budget_s)
    if not duration and not niter:
        device = str(params.get("device") or DEFAULT_DEVICE)
        measuring = float(device_default_duration_s(device, settings.default_duration_s))
    repeats = int(params.get("repeats") or 1)
    guard_s = settings.guard.sample_s + settings.guard.wait_s if settings.guard.sample_s else 0.0
    return measuring * repeats + guard_s + settings.job_allowance_s


def worker_environment(settings: Settings) -> dict[str, str]:
    """The worker's environment: ours, with OVBENCH_DATABASE_URL set from `settings`.

    The settings JSON on the worker's command line leaves the database URL out (`ps` would
    show its password); the worker's `Settings` reads it from this environment instead.
    """
    env = dict(os.environ)
    env.pop(DATABASE_URL_ENV, None)
    if settings.database_url:
        env[DATABASE_URL_ENV] = settings.database_url
    return env


class Supervisor:
    """Keeps exactly one worker process alive while the service runs."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._monitor, name="worker-supervisor", daemon=True)
        self._cancel_seen: dict[str, float] = {}  # job id -> monotonic time the cancel was seen
        self._last_watch = 0.0
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
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, env=worker_environment(self.settings)
            )
            self._started_at = time.monotonic()
        logger.info("worker process %d started", self._process.pid)

    def _monitor(self) -> None:
        backoff_s: float | None = 0.0
        exits = _ExitWatch()
        try:
            while backoff_s is not None and not exits.wait(self._process, self._stopping):
                process = self._process
                if process is not None:
                    backoff_s = self._check(process, backoff_s)
        finally:
            exits.close()

    def _check(self, process: subprocess.Popen[bytes], backoff_s: float) -> float | None:
        """Watch the running job, or record the dead worker's jobs and start a new one; the
        next back-off, or None once the supervisor stops."""
        if process.poll() is None:
            try:
                self._watch_running_job(process)
            except Exception:
                logger.exception("could not check the worker's running job")
            return backoff_s
        with self._lock:
            if self._stopping.is_set():
                return None
        how = describe_exit(process.returncode)
        logger.error("worker process %d %s; restarting it", process.pid, how)
        try:
            lost = self.store.jobs.fail_running(
                "worker_lost",
                f"The worker process (pid {process.pid}) {how} while running this job "
                "(a device plugin crash, or the process was killed). The service restarted "
                "the worker; submit the job again to retry.",
                worker_pid=process.pid,
            )
            if lost:
                logger.error("jobs lost with worker %d: %s", process.pid, ", ".join(lost))
            self.store.workers.clear(process.pid)
        except Exception:
            logger.exception("could not record the lost worker's jobs")
        lived_s = time.monotonic() - self._started_at
        backoff_s = (
            0.0 if lived_s > _HEALTHY_AFTER_S else min(_MAX_BACKOFF_S, backoff_s * 2 or 0.25)
        )
        if backoff_s and self._stopping.wait(backoff_s):
            return None
        self.restarts += 1
        self._spawn()
        return backoff_s

    def _watch_running_job(self, process: subprocess.Popen[bytes]) -> None:
        """Kill the worker if its job was cancelled but will not stop, or ran out of time."""
        now = time.monotonic()
        if now - self._last_watch < _WATCH_JOB_S:
            return
        self._last_watch = now
        jobs = [j for j in self.store.jobs.running() if j.worker_pid == process.pid]
        running_ids = {j.id for j in jobs}
        for job_id in list(self._cancel_seen):
            if job_id not in running_ids:
                del self._cancel_seen[job_id]
        for job in jobs:
            if job.cancel_requested:
                seen = self._cancel_seen.setdefault(job.id, now)
                if now - seen > self.settings.run_kill_grace_s:
                    self._kill_and_replace(process, f"job {job.id} did not stop after a cancel")
                    self.store.jobs.finish_cancelled(
                        job.id,
                        None,
                        f"Cancelled on request; the run did not stop within "
                        f"{self.settings.run_kill_grace_s:g} s (stuck in a device call), so its "
                        "worker process was killed and replaced",
                    )
                    return
            if job.started_at is None:
                continue
            budget_s = wall_time_budget_s(job.params, self.settings)
            ran_s = (utcnow() - job.started_at).total_seconds()
            if ran_s > budget_s:
                self._kill_and_replace(process, f"job {job.id} ran past its wall-time budget")
                self.store.jobs.finish_failed(
                    job.id,
                    "timeout",
                    f"The run took longer than its wall-time budget of {budget_s:g} s (its "
                    f"duration or niter estimate plus OVBENCH_JOB_ALLOWANCE_S="
                    f"{self.settings.job_allowance_s:g} s), so its worker process was killed "
                    "and replaced",
                )
                return

    def _kill_and_replace(self, process: subprocess.Popen[bytes], why: str) -> None:
        """SIGKILL the worker and wait for it; the monitor loop then starts a new one at once."""
        logger.error("killing worker process %d: %s", process.pid, why)
        process.kill()
        process.wait(timeout=10)
        self._started_at = time.monotonic() - _HEALTHY_AFTER_S - 1  # no back-off for this one

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM the worker (it cancels its job), wait, then SIGKILL; record leftovers.

        Safe to call from several threads (serve calls it on SIGTERM and again on exit):
        later calls wait for the first one to finish.
        """
        grace_s = self.settings.cancel_grace_s if timeout_s is None else timeout_s
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
            process = self._process
        if not first:
            self._stopped.wait(timeout=grace_s + 10)
            return
        try:
            self._stop_worker(process, grace_s)
        finally:
            self._stopped.set()

    def _stop_worker(self, process: subprocess.Popen[bytes] | None, grace_s: float) -> None:
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
                self.store.jobs.cancel_running(
                    "Cancelled: the service shut down while the job was running",
                    worker_pid=process.pid,
                )
                self.store.workers.clear(process.pid)
            except Exception:
                logger.exception("could not record the stopped worker's jobs")
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)
