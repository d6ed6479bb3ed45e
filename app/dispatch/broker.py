"""Fleet mode's broker side, shared by the API (publisher) and the agents (consumers).

One Celery task, `ovbench.run_job`, whose only argument is a job id: the message says "run job
<id>" and nothing else, so whatever the broker loses the database can rebuild. Each host has
its own durable queue, `ovbench.host.<name>`, consumed by that host's agent alone.

Messages are persistent and published with confirms (a publish returns once RabbitMQ has
them), so a kill -9 of RabbitMQ loses none it confirmed. Agents ack a message only after the
job's outcome is stored (late acks, prefetch 1): a message whose agent died goes back to the
queue, and the job's claim (queued -> running, one conditional UPDATE) makes a second
delivery harmless.

RabbitMQ closes a channel whose message stays unacknowledged longer than its
`consumer_timeout` (default 30 minutes): set it above the longest benchmark (README: Fleet).
"""

from __future__ import annotations

from celery import Celery

TASK_NAME = "ovbench.run_job"
QUEUE_PREFIX = "ovbench.host."
CONNECT_TIMEOUT_S = 2.0


def host_queue(host: str) -> str:
    """The broker queue of one host."""
    return QUEUE_PREFIX + host


def make_celery(broker_url: str) -> Celery:
    """A Celery app for ovbench's one task, configured for at-least-once delivery."""
    app = Celery("ovbench", broker=broker_url, backend=None, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_create_missing_queues=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,  # no pidbox fan-out queue per agent
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # agents reconnect for ever
        broker_connection_timeout=CONNECT_TIMEOUT_S,
        broker_transport_options={"confirm_publish": True},
        broker_pool_limit=4,
    )
    return app
