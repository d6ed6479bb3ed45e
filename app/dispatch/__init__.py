"""The seam between the API and whatever runs jobs.

A `Dispatcher` carries jobs the store has queued to the engine that runs them. The store stays
the source of truth: a job's states change only there (`store.jobs`), and a dispatcher only
tells its engine that there is work, so nothing is lost if it forgets. One engine so far:

- `LocalDispatcher` (local.py): the embedded default; one worker process on this host, started
  and supervised here, claims the oldest queued job from the store by itself.
- `FleetDispatcher` (fleet.py): fleet mode; each job is routed to a device host (placement.py)
  and published to that host's broker queue as "run job <id>" (broker.py), where the host's
  agent (app/agent) takes it; a sweeper repairs what a crash or the broker lost.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from app.dispatch.local import LocalDispatcher


class Dispatcher(Protocol):
    def place(
        self, device: str, host: str | None, host_labels: dict[str, str] | None
    ) -> str | None:
        """The host a new job for `device` will run on (None: this one); 422 when none can."""

    def placing(self) -> AbstractContextManager[None]:
        """Held around placing a job and committing it: no other placement sees half of it."""

    def start(self) -> None:
        """Start whatever runs jobs on this side (the local engine: its worker process)."""

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop it; a running job ends as the engine's shutdown rule says."""

    def job_queued(self, job_id: str, host: str | None) -> None:
        """A job was committed as `queued` (for `host`, in fleet mode): let the engine know
        (after the commit, never before)."""


__all__ = ["Dispatcher", "LocalDispatcher"]
