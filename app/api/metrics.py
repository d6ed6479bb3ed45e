"""Prometheus metrics computed from the store on every scrape (no process-global counters).

A custom collector reads the store, so the numbers are right across restarts and
whichever process changed the state (the worker or the API). The one exception is the API's
own CPU budget (`app.api.cpu_budget`): how many requests it delayed since this process
started, as counters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from app.api.cpu_budget import CpuBudget
from app.dispatch.placement import host_state
from app.store import Store
from app.store.tables import JOB_STATUSES

logger = logging.getLogger(__name__)

DURATION_BUCKETS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class StoreCollector(Collector):
    def __init__(self, store: Store, heartbeat_timeout_s: float) -> None:
        self.store = store
        self.heartbeat_timeout_s = heartbeat_timeout_s

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

        cumulative, count, total = self.store.job_stats.run_durations(DURATION_BUCKETS_S)
        buckets = [(str(bound), n) for bound, n in zip(DURATION_BUCKETS_S, cumulative, strict=True)]
        buckets.append(("+Inf", count))
        yield HistogramMetricFamily(
            "ovbench_job_duration_seconds",
            "Wall time of finished jobs, from start to finish",
            buckets=buckets,
            sum_value=total,
        )

        labels = ["model_id", "model", "device", "api"]
        throughput = GaugeMetricFamily(
            "ovbench_last_throughput_fps", "Throughput of the newest succeeded job", labels=labels
        )
        latency = GaugeMetricFamily(
            "ovbench_last_latency_median_ms",
            "Median latency of the newest succeeded job",
            labels=labels,
        )
        for last in self.store.job_stats.last_results():
            values = [last.model_id, last.model_name, last.device, last.api]
            throughput.add_metric(values, last.throughput_fps)
            if last.latency_median_ms is not None:
                latency.add_metric(values, last.latency_median_ms)
        yield throughput
        yield latency

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


def build_registry(
    store: Store, heartbeat_timeout_s: float, budget: CpuBudget | None = None
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, heartbeat_timeout_s))
    if budget is not None:
        registry.register(CpuBudgetCollector(budget))
    return registry
