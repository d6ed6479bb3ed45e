"""The local engine: one worker process on this host, supervised from the serve process."""

from __future__ import annotations

import contextlib

from app.dispatch.placement import check_device
from app.errors import ValidationError
from app.settings import ENV_PREFIX, Settings
from app.store import Store
from app.worker.supervisor import Supervisor


class LocalDispatcher:
    """Runs jobs in the supervised local worker process (app/worker), one at a time.

    The worker claims the oldest queued job from the store itself (polling every
    `worker_poll_interval_s`), so a newly queued job needs no message.
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.store = store
        self.supervisor = Supervisor(settings, store)

    def place(self, device: str, host: str | None, host_labels: dict[str, str] | None) -> None:
        """This host, when its worker has the device (422 listing the ones it has)."""
        if host is not None or host_labels:
            raise ValidationError(
                "host and host_labels pick a device host in fleet mode; this service runs "
                f"every job on its own host (fleet mode: {ENV_PREFIX}BROKER_URL with a "
                "PostgreSQL database, README: Fleet)",
                code="fleet_mode_off",
                details={"field": "host" if host is not None else "host_labels"},
            )
        check_device(device, [d.name for d in self.store.workers.list_devices()])

    def placing(self) -> contextlib.nullcontext[None]:
        """Nothing to hold: one host, and the worker claims in order."""
        return contextlib.nullcontext()

    def start(self) -> None:
        self.supervisor.start()

    def stop(self, timeout_s: float | None = None) -> None:
        self.supervisor.stop(timeout_s)

    def job_queued(self, job_id: str, host: str | None) -> None:
        """Nothing to send: the worker finds the job in the store."""
