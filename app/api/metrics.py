"""Prometheus metrics for /metrics: gauges read from the store at every scrape, and job
counters and the job duration histogram that count jobs as they end.

The gauges (jobs and sweeps by status, queue depth, worker busy and up, fleet hosts, the
newest result per model and configuration) are read from the store, so they are right whichever
process changed the state (the worker or the API); a gauge may go down. Counters and histograms
must only go up while this process lives, or Prometheus reads a counter reset: `JobTally` counts
each job once as it ends, by an incremental scan of the store at each scrape, starting from the
stored history at the first one; deleting a job afterwards changes none of them. The API's own
CPU budget (`app.api.cpu_budget`) counts the requests it delayed since this process started.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from app.api.cpu_budget import CpuBudget
from app.dispatch.placement import host_state
from app.store import Store
from app.store.job_stats import FINAL_STATUSES, JobStats
from app.store.tables import JOB_STATUSES

logger = logging.getLogger(__name__)

DURATION_BUCKETS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# `percentile` label -> the result's `latency_ms` figure. Not `quantile`: that label belongs
# to summaries (promtool: 'non-summary metrics should not have "quantile" label'), and these
# are gauges of one result, not a summary's running counts.
LATENCY_PERCENTILES = {"50": "median", "90": "p90", "95": "p95", "99": "p99"}
RESULT_LABELS = ["model_id", "model", "device", "api", "hint", "nireq", "batch"]
# A job's finished_at is taken before its transaction commits, and the worker and the API
# commit in either order (SQLite waits up to 30 s for a lock): each scan reads this far back
# from the newest finished_at it saw, and skips the jobs it counted already.
LATE_COMMIT_S = 120.0


@dataclass(frozen=True)
class TallyFigures:
    finished: dict[str, int]  # status -> jobs
    failures: dict[str, int]  # error code -> failed jobs
    buckets: list[int]  # cumulative per DURATION_BUCKETS_S bound
    count: int
    sum_s: float


class JobTally:
    """Counts jobs as they end: by final status, failures by error code, and run seconds.

    `scan()` reads the jobs that finished since the newest finished_at it saw (less
    LATE_COMMIT_S, skipping the ids it counted there); the first reads every ended job in the
    store. Figures only go up for the life of the tally: a deleted job stays counted.
    """

    def __init__(self, job_stats: JobStats, buckets_s: Sequence[float]) -> None:
        self.job_stats = job_stats
        self.bounds_s = tuple(buckets_s)
        self._lock = threading.Lock()
        self._newest: datetime | None = None  # the watermark: newest finished_at counted
        self._recent: dict[str, datetime] = {}  # counted ids within LATE_COMMIT_S of it
        self._finished = dict.fromkeys(FINAL_STATUSES, 0)
        self._failures: dict[str, int] = {}
        self._buckets = [0] * len(self.bounds_s)
        self._count = 0
        self._sum_s = 0.0

    def scan(self) -> TallyFigures:
        """Count the jobs that ended since the last scan; the figures after it."""
        with self._lock:
            since = (
                None if self._newest is None else self._newest - timedelta(seconds=LATE_COMMIT_S)
            )
            for job in self.job_stats.ended_since(since):
                if job.id in self._recent:
                    continue
                self._recent[job.id] = job.finished_at
                if self._newest is None or job.finished_at > self._newest:
                    self._newest = job.finished_at
                self._finished[job.status] = self._finished.get(job.status, 0) + 1
                if job.status == "failed":
                    code = job.error_code or "unknown"
                    self._failures[code] = self._failures.get(code, 0) + 1
                if job.run_duration_s is not None:
                    self._observe(job.run_duration_s)
            if self._newest is not None:
                cutoff = self._newest - timedelta(seconds=LATE_COMMIT_S)
                self._recent = {i: at for i, at in self._recent.items() if at >= cutoff}
            return TallyFigures(
                dict(self._finished),
                dict(self._failures),
                list(self._buckets),
                self._count,
                self._sum_s,
            )

    def _observe(self, run_s: float) -> None:
        for i, bound in enumerate(self.bounds_s):
            if run_s <= bound:
                self._buckets[i] += 1
        self._count += 1
        self._sum_s += run_s


class StoreCollector(Collector):
    def __init__(self, store: Store, heartbeat_timeout_s: float) -> None:
        self.store = store
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.tally = JobTally(store.job_stats, DURATION_BUCKETS_S)

    def collect(self) -> Iterator[Metric]:
        counts = self.store.job_stats.count_by_status()
        jobs = GaugeMetricFamily("ovbench_jobs", "Jobs in the store by status", labels=["status"])
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            "ovbench_queue_depth", "Jobs waiting to run", value=counts.get("queued", 0)
        )
        yield GaugeMetricFamily(
            "ovbench_worker_busy",
            "1 while the worker runs a job",
            value=1 if counts.get("running") else 0,
        )
        worker = self.store.workers.read()
        alive = (
            worker is not None
            and (datetime.now(UTC) - worker.heartbeat_at).total_seconds()
            <= self.heartbeat_timeout_s
        )
        yield GaugeMetricFamily(
            "ovbench_worker_up", "1 while the worker heartbeat is fresh", value=int(alive)
        )

        sweeps = GaugeMetricFamily(
            "ovbench_sweeps", "Sweeps in the store by status", labels=["status"]
        )
        sweep_counts = self.store.sweeps.count_by_status()
        for status in JOB_STATUSES:
            sweeps.add_metric([status], sweep_counts.get(status, 0))
        yield sweeps

        yield from self._hosts()
        yield from self._tally()
        yield from self._last_results()

    def _tally(self) -> Iterator[Metric]:
        """The counters and the histogram of ended jobs (this process's tally)."""
        figures = self.tally.scan()
        finished = CounterMetricFamily(
            "ovbench_jobs_finished",
            "Jobs that reached a final state, by that state, since this process started "
            "(from the stored history at the first scrape)",
            labels=["status"],
        )
        for status, n in figures.finished.items():
            finished.add_metric([status], n)
        yield finished
        failures = CounterMetricFamily(
            "ovbench_job_failures",
            "Failed jobs by error code, counted as ovbench_jobs_finished_total is",
            labels=["error_code"],
        )
        for code, n in sorted(figures.failures.items()):
            failures.add_metric([code], n)
        yield failures
        buckets = [
            (str(bound), n) for bound, n in zip(DURATION_BUCKETS_S, figures.buckets, strict=True)
        ]
        buckets.append(("+Inf", figures.count))
        yield HistogramMetricFamily(
            "ovbench_job_duration_seconds",
            "Wall time of jobs that ran, from start to finish, counted as they end",
            buckets=buckets,
            sum_value=figures.sum_s,
        )

    def _last_results(self) -> Iterator[Metric]:
        """The newest succeeded job per model, device, api and effective hint, nireq, batch."""
        throughput = GaugeMetricFamily(
            "ovbench_last_throughput_fps",
            "Throughput (frames: batch x inferences, per second) of the newest succeeded job",
            labels=RESULT_LABELS,
        )
        latency = GaugeMetricFamily(
            "ovbench_last_latency_seconds",
            "Per-request latency percentiles of the newest succeeded job",
            labels=[*RESULT_LABELS, "percentile"],
        )
        finished = GaugeMetricFamily(
            "ovbench_last_result_timestamp_seconds",
            "When the newest succeeded job finished (Unix time)",
            labels=RESULT_LABELS,
        )
        for last in self.store.job_stats.last_results():
            values = [
                last.model_id,
                last.model_name,
                last.device,
                last.api,
                last.hint or "",
                "" if last.nireq is None else str(last.nireq),
                "" if last.batch is None else str(last.batch),
            ]
            throughput.add_metric(values, last.throughput_fps)
            for percentile, figure in LATENCY_PERCENTILES.items():
                if figure in last.latency_ms:
                    latency.add_metric([*values, percentile], last.latency_ms[figure] / 1000)
            finished.add_metric(values, last.finished_at.timestamp())
        yield throughput
        yield latency
        yield finished

    def _hosts(self) -> Iterator[Metric]:
        """Fleet mode: hosts by state, and per host its liveness and queue (none on one host)."""
        rows = self.store.hosts.list_all()
        if not rows:
            return
        loads = self.store.hosts.loads()
        now = datetime.now(UTC)
        by_state = GaugeMetricFamily("ovbench_hosts", "Fleet hosts by state", labels=["state"])
        up = GaugeMetricFamily(
            "ovbench_host_up", "1 while the host's agent heartbeat is fresh", labels=["host"]
        )
        queued = GaugeMetricFamily(
            "ovbench_host_queue_depth", "Jobs queued for the host", labels=["host"]
        )
        states: dict[str, int] = dict.fromkeys(("idle", "busy", "offline", "draining"), 0)
        for row in rows:
            load = loads.get(row.name)
            current = host_state(row, load, now, self.heartbeat_timeout_s)
            states[current] += 1
            up.add_metric([row.name], 0 if current == "offline" else 1)
            queued.add_metric([row.name], len(load.queued) if load is not None else 0)
        for state, count in states.items():
            by_state.add_metric([state], count)
        yield by_state
        yield up
        yield queued


class CpuBudgetCollector(Collector):
    def __init__(self, budget: CpuBudget) -> None:
        self.budget = budget

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "ovbench_api_requests_delayed",
            "Requests held back because the API had used its CPU share while a job ran",
            value=self.budget.delayed_requests,
        )
        yield CounterMetricFamily(
            "ovbench_api_delay_seconds",
            "Total time requests were held back for the API's CPU share",
            value=self.budget.delay_s_total,
        )


class BuildInfoCollector(Collector):
    def __init__(self, version: str, openvino_version: str) -> None:
        self.labels = {"version": version, "openvino_version": openvino_version}

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("ovbench_build", "The ovbench and OpenVINO versions serving")
        info.add_metric([], self.labels)
        yield info


def build_registry(
    store: Store, heartbeat_timeout_s: float, budget: CpuBudget | None = None
) -> CollectorRegistry:
    """The app's registry: the store's figures, this process's (CPU, memory, open files,
    Python) and the build's versions; with `budget`, the requests it delayed."""
    import openvino as ov

    from app.engine.runner import ovbench_version

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, heartbeat_timeout_s))
    if budget is not None:
        registry.register(CpuBudgetCollector(budget))
    registry.register(BuildInfoCollector(ovbench_version(), ov.get_version()))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
