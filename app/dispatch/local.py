"""The local engine: one worker process on this host, supervised from the serve process."""

from __future__ import annotations

from app.settings import Settings
from app.store import Store
from app.worker.supervisor import Supervisor


class LocalDispatcher:
    """Runs jobs in the supervised local worker process (app/worker), one at a time.

    The worker claims the oldest queued job from the store itself (polling every
    `worker_poll_interval_s`), so a newly queued job needs no message.
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.supervisor = Supervisor(settings, store)

    def start(self) -> None:
        self.supervisor.start()

    def stop(self, timeout_s: float | None = None) -> None:
        self.supervisor.stop(timeout_s)

    def job_queued(self, job_id: str) -> None:
        """Nothing to send: the worker finds the job in the store."""
