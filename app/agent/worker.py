"""`ovbench agent`: the agent's Celery worker on its host's queue.

Concurrency 1 on the `threads` pool (the job runs in a thread of this process, which starts
the run process; the worker's own loop keeps the broker connection alive), prefetch 1, late
acks: a message is acked when `Agent.handle` returns, after the outcome is stored. SIGTERM
(or Ctrl-C) is Celery's warm shutdown: the running job is cancelled, its outcome stored,
then the agent exits. The broker connection is retried for ever, so a RabbitMQ restart only
pauses the agent.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.signals import worker_shutting_down

from app.agent.agent import Agent
from app.agent.settings import AgentSettings
from app.dispatch.broker import TASK_NAME, host_queue, make_celery

logger = logging.getLogger(__name__)

SHUTDOWN_POLL_S = 0.5


class _WakeUp(bootsteps.StartStopStep):
    """A no-op timer every SHUTDOWN_POLL_S: Celery's event loop checks for a shutdown only
    between polls, which otherwise sleep up to 10 s, so SIGTERM took that long to act."""

    requires = ("celery.worker.components:Hub",)

    def start(self, worker: Any) -> None:
        if worker.hub is not None:
            worker.hub.call_repeatedly(SHUTDOWN_POLL_S, _nothing)


def _nothing() -> None:
    return None


def run_agent(settings: AgentSettings, log_level: str = "INFO") -> int:
    agent = Agent(settings)
    agent.start()
    celery = make_celery(settings.broker_url)
    celery.steps["worker"].add(_WakeUp)

    @celery.task(name=TASK_NAME, acks_late=True, ignore_result=True)
    def run_job(job_id: str) -> None:
        agent.handle(job_id)

    def _shutting_down(**_: Any) -> None:
        logger.info("agent %s: shutting down; a running job is cancelled", settings.name)
        agent.stop()

    worker_shutting_down.connect(_shutting_down, weak=False)
    logger.info(
        "agent %s: consuming %s (api %s)", settings.name, host_queue(settings.name), settings.api
    )
    try:
        celery.worker_main(
            [
                "worker",
                f"--queues={host_queue(settings.name)}",
                "--concurrency=1",
                "--pool=threads",
                "--prefetch-multiplier=1",
                f"--hostname=ovbench-agent@{settings.name}",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                f"--loglevel={log_level}",
            ]
        )
    finally:
        agent.close()
        logger.info("agent %s stopped", settings.name)
    return 0
