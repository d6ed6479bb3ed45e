"""Fleet mode's engine: jobs routed to device hosts and handed to their agents through RabbitMQ.

The database is the source of truth; the broker only carries "run job <id>" to the host's
queue (broker.py). Two threads in every API process:

- the publisher: `job_queued` (after the commit) puts the job in its pending set and returns
  at once, so a submission never waits for the broker; the thread publishes with confirms,
  marks the job `dispatched_at`, and keeps what failed pending, retrying with a back-off
  (RabbitMQ down or restarting).
- the sweeper, every `sweep_interval_s`, repairs what a crash or the broker left behind:
  1. a queued job never handed to the broker (its API died between commit and publish) and
     older than `publish_grace_s`, or handed over more than `republish_after_s` ago while its
     host sits idle (the message was lost), is published again. A duplicate message is
     harmless: an agent runs a job only if its claim (queued -> running) succeeds.
  2. a job `running` on a host whose agent is offline (no heartbeat for
     `heartbeat_timeout_s`) ends `failed` with `worker_lost`; so does one that a live agent
     does not say it runs. Such a job is not rerun (as on a single host: a job that took its
     agent down would likely do it again).
  3. a job queued for an offline host longer than `host_start_deadline_s` ends `failed` with
     `host_unavailable` instead of waiting for ever.
  Liveness is judged only after the sweeper has reached the database for a whole heartbeat
  timeout in a row, so an API (or database) coming back from an outage does not take the
  heartbeats it could not record for dead agents. Every step is a conditional UPDATE, so
  several API replicas may sweep at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import timedelta

from app.dispatch.broker import TASK_NAME, host_queue, make_celery
from app.dispatch.placement import choose_host, heartbeat_age_s, host_state
from app.faults import fault_point
from app.settings import Settings
from app.store import Store
from app.store.tables import utcnow

logger = logging.getLogger(__name__)

_BACKOFF_MIN_S = 0.25
_BACKOFF_MAX_S = 5.0
PUBLISH_RETRY = {"max_retries": 0}  # the publisher's own loop retries, not the request


class FleetDispatcher:
    """Routes jobs to hosts and publishes them; sweeps what got stuck (module docstring)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        if not settings.broker_url:
            raise ValueError("fleet mode needs a broker URL")
        self.settings = settings
        self.store = store
        self.celery = make_celery(settings.broker_url)
        self._pending: OrderedDict[str, str] = OrderedDict()  # job id -> host
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._publish_loop, name="fleet-publisher", daemon=True),
            threading.Thread(target=self._sweep_loop, name="fleet-sweeper", daemon=True),
        ]
        self._db_ok_since: float | None = None
        self._placing = threading.Lock()
        self.published = 0  # messages the broker confirmed, for tests and logs

    # ---------------------------------------------------------------- seam
    def place(self, device: str, host: str | None, host_labels: dict[str, str] | None) -> str:
        return choose_host(
            self.store.hosts.list_all(),
            self.store.hosts.loads(),
            device,
            host,
            host_labels,
            utcnow(),
            self.settings,
        )

    @contextlib.contextmanager
    def placing(self) -> Iterator[None]:
        """One placement at a time: in this process, and across replicas on PostgreSQL."""
        with self._placing, self.store.placement_lock():
            yield

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=5 if timeout_s is None else timeout_s)
        try:
            self.celery.close()
        except Exception:  # closing a broken connection
            logger.debug("closing the broker connection failed", exc_info=True)

    def job_queued(self, job_id: str, host: str | None) -> None:
        """Hand the committed job to the publisher (never blocks on the broker)."""
        fault_point("before_publish")
        if host is not None:
            self._enqueue([(job_id, host)])

    # ----------------------------------------------------------- publisher
    def _enqueue(self, jobs: list[tuple[str, str]]) -> None:
        with self._wake:
            for job_id, host in jobs:
                self._pending.setdefault(job_id, host)
            self._wake.notify()

    def publish(self, job_id: str, host: str) -> None:
        """Send "run job <id>" to the host's queue; returns once RabbitMQ confirmed it."""
        queue = host_queue(host)
        self.celery.send_task(
            TASK_NAME,
            args=[job_id],
            queue=queue,
            routing_key=queue,
            retry=False,
            retry_policy=PUBLISH_RETRY,
        )

    def _publish_loop(self) -> None:
        backoff_s = 0.0
        while not self._stop.is_set():
            with self._wake:
                while not self._pending and not self._stop.is_set():
                    self._wake.wait()
                batch = list(self._pending.items())
            done: list[str] = []
            failed = False
            for job_id, host in batch:
                try:
                    self.publish(job_id, host)
                except Exception as exc:
                    failed = True
                    if backoff_s == 0.0:
                        logger.warning(
                            "publishing job %s to %s failed (%s: %s); retrying until the "
                            "broker answers",
                            *(job_id, host_queue(host), type(exc).__name__, exc),
                        )
                    break
                done.append(job_id)
                self.published += 1
            if done:
                with self._wake:
                    for job_id in done:
                        self._pending.pop(job_id, None)
                try:
                    self.store.jobs.mark_dispatched(done)
                except Exception:  # the sweeper publishes them again later: harmless
                    logger.warning("could not mark %d job(s) dispatched", len(done), exc_info=True)
            if failed:
                backoff_s = min(_BACKOFF_MAX_S, max(_BACKOFF_MIN_S, backoff_s * 2))
                self._stop.wait(backoff_s)
            elif backoff_s:
                logger.info("the broker answers again; publishing resumed")
                backoff_s = 0.0

    # ------------------------------------------------------------- sweeper
    def _sweep_loop(self) -> None:
        failing = False
        while not self._stop.wait(self.settings.sweep_interval_s):
            try:
                self.sweep()
            except Exception as exc:
                self._db_ok_since = None
                if not failing:
                    logger.warning("fleet sweep failed (%s: %s)", type(exc).__name__, exc)
                failing = True
                continue
            if failing:
                logger.info("fleet sweep works again")
            failing = False

    def sweep(self) -> None:
        """One pass of the sweeper (module docstring)."""
        settings = self.settings
        now, mono = utcnow(), time.monotonic()
        hosts = self.store.hosts.list_all()
        loads = self.store.hosts.loads()
        if self._db_ok_since is None:
            self._db_ok_since = mono
        judge = mono - self._db_ok_since >= settings.heartbeat_timeout_s
        idle: list[str] = []
        for row in hosts:
            load = loads.get(row.name)
            state = host_state(row, load, now, settings.heartbeat_timeout_s)
            if state == "idle":
                idle.append(row.name)
            if not judge or load is None:
                continue
            age_s = heartbeat_age_s(row, now)
            running = load.running
            if running is not None and state == "offline":
                self.store.jobs.finish_failed(
                    running.id,
                    "worker_lost",
                    f"The agent of host {row.name} stopped sending heartbeats (the last "
                    f"{age_s:.0f} s ago) while this job ran; it is not rerun (a job that took "
                    "its agent down would likely do it again): submit it again",
                    host=row.name,
                )
            elif (
                running is not None
                and row.current_job_id != running.id
                and running.started_at is not None
                and (row.heartbeat_at - running.started_at).total_seconds()
                > settings.heartbeat_timeout_s
            ):
                self.store.jobs.finish_failed(
                    running.id,
                    "worker_lost",
                    f"The agent of host {row.name} is alive but no longer runs this job (its "
                    "run process died, or the agent restarted); submit it again",
                    host=row.name,
                )
            if state == "offline":
                deadline = now - timedelta(seconds=settings.host_start_deadline_s)
                for job in load.queued:
                    if job.created_at < deadline:
                        self.store.jobs.fail_queued(
                            job.id,
                            "host_unavailable",
                            f"Host {row.name} has been offline (no heartbeat for "
                            f"{age_s:.0f} s) and did not start this job within "
                            f"{settings.host_start_deadline_s:g} s "
                            "(OVBENCH_HOST_START_DEADLINE_S); submit it again for another host",
                        )
        republish = self.store.hosts.to_publish(
            created_before=now - timedelta(seconds=settings.publish_grace_s),
            dispatched_before=now - timedelta(seconds=settings.republish_after_s),
            idle_hosts=idle,
        )
        with self._wake:
            fresh = [(job_id, host) for job_id, host in republish if job_id not in self._pending]
        if fresh:
            logger.info("sweeper: publishing %d queued job(s) again", len(fresh))
            self._enqueue(fresh)
