"""The worker loop: claim the oldest queued job, run it on the engine, store the outcome.

One job at a time; the only code that touches devices. A bad job never stops the loop:
engine errors become `failed` with the engine's code and message, anything unexpected
becomes `failed` with code `internal_error`. A watcher thread carries progress to the
store (about twice a second), keeps the heartbeat fresh and turns a cancel request in the
store (or a shutdown) into the engine's cancel event.

The host's run lock (`run_lock.RunLock` on `settings.run_lock_path`) is held from before a
job is claimed until its outcome is stored, so no two workers on one host (whatever their
data dirs) ever run at the same time. Objects of a run (compiled model, requests) are
released by reference counting when `run_job` returns (no cycles hold them; a full
`gc.collect()` per job found nothing and cost ~150 ms).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app import cpu_split
from app.engine.devices import list_devices
from app.engine.spec import BenchmarkSpec, Progress
from app.faults import fault_point
from app.settings import Settings
from app.store import Store
from app.store.tables import JobRow
from app.worker.outcome import job_provenance, run_to_outcome
from app.worker.run_lock import RunLock

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
CANCEL_POLL_INTERVAL_S = 0.25
HEARTBEAT_INTERVAL_S = 1.0
SHUTDOWN_MESSAGE = "Cancelled: the service shut down while the job was running"
CANCEL_MESSAGE = "Cancelled on request"
# A job's params that say what to run, where and whom to tell, not how: never passed to the
# engine.
NOT_RUN_OPTIONS = frozenset({"model_id", "dataset_id", "host", "host_labels", "callback_url"})


def build_spec(store: Store, job: JobRow, settings: Settings) -> BenchmarkSpec:
    """The engine's run parameters for a job: its params plus the model and dataset dirs.

    Messages name the options as the job's JSON fields (`shape`, not `-shape`).
    """
    model = store.catalog.get_model(job.model_id)
    model_dir = store.catalog.model_dir(model)
    input_paths: list[str] = []
    if job.dataset_id is not None:
        input_paths = [str(store.catalog.dataset_dir(store.catalog.get_dataset(job.dataset_id)))]
    return spec_from_params(
        job.params,
        model_path=Path(model_dir) / model.files[0]["name"],
        input_paths=input_paths,
        shown_names={f["name"]: f.get("original_name", f["name"]) for f in model.files},
        settings=settings,
    )


def spec_from_params(
    params: Mapping[str, Any],
    model_path: Path,
    input_paths: list[str],
    shown_names: dict[str, str],
    settings: Settings,
) -> BenchmarkSpec:
    """A job's stored params as the engine's spec, its files where this process has them
    (the local data dir, or a fleet agent's cache)."""
    options = {k: v for k, v in params.items() if k not in NOT_RUN_OPTIONS}
    # -l / -c: names inside the admin's extensions dir, resolved (and re-checked) here.
    extensions = options.pop("extensions", None) or []
    gpu_config = options.pop("gpu_config", None)
    return BenchmarkSpec(
        model_path=str(model_path),
        input_paths=input_paths,
        default_duration_s=dict(settings.default_duration_s),
        extension_paths=[str(settings.extension_file(name)) for name in extensions],
        gpu_config_path=str(settings.extension_file(gpu_config)) if gpu_config else None,
        shown_names=shown_names,
        option_names="api",
        stability=settings.stability,
        guard=settings.guard,
        **options,
    )


class _JobWatch:
    """Background thread for one running job: progress, heartbeat, cancel requests."""

    def __init__(self, worker: Worker, job_id: str) -> None:
        self.worker = worker
        self.job_id = job_id
        self.cancel = threading.Event()
        self.done = threading.Event()
        self._latest: Progress | None = None
        self._written: Progress | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{job_id[:8]}", daemon=True)

    def on_progress(self, progress: Progress) -> None:
        """Called from the measuring thread: only remember it (no I/O there)."""
        self._latest = progress

    def __enter__(self) -> _JobWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        cpu_split.pin_service(self.worker.cpus)  # started from the run's thread: move off
        store = self.worker.store
        last_progress = last_heartbeat = time.monotonic()
        while not self.done.wait(CANCEL_POLL_INTERVAL_S):
            now = time.monotonic()
            try:
                if not self.cancel.is_set() and (
                    self.worker.stopping or store.jobs.is_cancel_requested(self.job_id)
                ):
                    logger.info("job %s: cancelling the run", self.job_id)
                    self.cancel.set()
                latest = self._latest
                if (
                    latest is not None
                    and latest is not self._written
                    and now - last_progress >= PROGRESS_INTERVAL_S
                ):
                    # Progress goes with a heartbeat: one commit.
                    store.workers.heartbeat(self.worker.pid, self.job_id, latest)
                    self._written, last_progress = latest, now
                    last_heartbeat = now
                if now - last_heartbeat >= HEARTBEAT_INTERVAL_S:
                    store.workers.heartbeat(self.worker.pid, self.job_id)
                    last_heartbeat = now
            except Exception:
                logger.exception("job %s: watcher failed to reach the store", self.job_id)


class Worker:
    """Runs queued jobs one at a time. `run(burst=True)` stops when the queue is empty."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.data_dir, database_url=settings.database_url)
        self.pid = os.getpid()
        self.stop_event = threading.Event()
        self._parent_pid = os.getppid()
        self.run_lock = RunLock(settings.run_lock_path)
        # OVBENCH_SERVICE_CPUS: the run's thread on the benchmark's CPUs (__main__ pins it),
        # the watcher threads on the service's.
        self.cpus = cpu_split.handed_down(settings.service_cpus, settings.run_cpus)

    @property
    def stopping(self) -> bool:
        if not self.stop_event.is_set() and os.getppid() != self._parent_pid:
            logger.warning("worker %d: parent process is gone; stopping", self.pid)
            self.stop_event.set()
        return self.stop_event.is_set()

    def announce(self) -> None:
        """Record the devices this worker's OpenVINO sees and a first heartbeat."""
        try:
            devices = list_devices()
        except Exception:
            logger.exception("worker %d: listing devices failed", self.pid)
            devices = []
        self.store.workers.replace_devices(devices)
        self.store.workers.record_start(self.pid)
        logger.info(
            "worker %d ready; devices: %s", self.pid, ", ".join(d.name for d in devices) or "none"
        )

    def run(self, burst: bool = False) -> int:
        """Process jobs until stopped (or, in burst mode, until the queue is empty)."""
        self.announce()
        processed = 0
        last_heartbeat = time.monotonic()
        try:
            while not self.stopping:
                if not self.run_lock.try_acquire():  # another worker is running a job
                    self.stop_event.wait(self.settings.worker_poll_interval_s)
                    continue
                try:
                    job = self.store.jobs.claim_next(self.pid)
                except Exception:  # the store is unreachable for now (locked, disk full): retry
                    self.run_lock.release()
                    logger.exception("worker %d: claiming a job failed", self.pid)
                    self.stop_event.wait(max(1.0, self.settings.worker_poll_interval_s))
                    continue
                if job is None:
                    self.run_lock.release()
                    if burst:
                        break
                    if time.monotonic() - last_heartbeat >= HEARTBEAT_INTERVAL_S:
                        self.store.workers.heartbeat(self.pid, None)
                        last_heartbeat = time.monotonic()
                    self.stop_event.wait(self.settings.worker_poll_interval_s)
                    continue
                try:
                    self.run_job(job)
                finally:
                    self.run_lock.release()
                processed += 1
                self.store.workers.heartbeat(self.pid, None)
                last_heartbeat = time.monotonic()
        finally:
            self.run_lock.release()
        logger.info("worker %d stopping after %d jobs", self.pid, processed)
        return processed

    def run_job(self, job: JobRow) -> None:
        """Run one claimed job and record its outcome; never raises for a bad job."""
        store = self.store
        fault_point("after_claim")
        self.store.workers.heartbeat(self.pid, job.id)
        with _JobWatch(self, job.id) as watch:
            outcome = run_to_outcome(
                lambda: build_spec(store, job, self.settings),
                watch.on_progress,
                watch.cancel,
                job.id,
                job_provenance(
                    job.params,
                    self.settings.default_duration_s,
                ),
            )
        if outcome.status == "failed":
            store.jobs.finish_failed(
                job.id, outcome.error_code or "internal_error", outcome.error_message or ""
            )
        elif outcome.status == "cancelled":
            message = SHUTDOWN_MESSAGE if self.stop_event.is_set() else CANCEL_MESSAGE
            store.jobs.finish_cancelled(job.id, outcome.result, message)
        else:
            assert outcome.result is not None
            fault_point("before_result")
            store.jobs.finish_succeeded(job.id, outcome.result)
