"""While a job runs, the API's CPU time is held to its share: requests wait, none is refused."""

from __future__ import annotations

import os
import warnings
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from app.api.cpu_budget import CpuBudget, CpuBudgetMiddleware, budget_for
from app.settings import Settings
from app.store import Store
from tests.store.conftest import job_params

with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what we ship
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from fastapi.testclient import TestClient


class _Clocks:
    """A wall clock and a CPU clock the test moves by hand."""

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0

    def wall(self) -> float:
        return self.wall_s

    def cpu(self) -> float:
        return self.cpu_s


def test_bucket_refills_at_the_share_and_owes_at_most_one_second() -> None:
    clocks = _Clocks()
    budget = CpuBudget(share=0.05, cpus=2, clock=clocks.wall, cpu_clock=clocks.cpu)
    assert budget.rate_cpu_s_per_s == pytest.approx(0.1)  # 5% of 2 CPUs
    clocks.cpu_s += 0.1  # a full bucket (one second of budget) absorbs a burst
    assert budget.wait_s() == 0.0
    clocks.cpu_s += 0.02  # 20 ms beyond it: 0.2 s of refill to wait for
    assert budget.wait_s() == pytest.approx(0.2)
    clocks.wall_s += 0.2
    assert budget.wait_s() == pytest.approx(0.0)
    clocks.cpu_s += 5.0  # a huge upload: the debt is capped at one second of budget
    assert budget.wait_s() == pytest.approx(1.0)
    budget.reset()
    assert budget.wait_s() == 0.0


class _CostlyApp:
    """Every request costs 10 ms of CPU on the fake clock."""

    def __init__(self, clocks: _Clocks) -> None:
        self.clocks = clocks
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        self.clocks.cpu_s += 0.010
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_requests_wait_for_the_budget_only_while_a_job_runs(
    store: Store, model: dict[str, Any]
) -> None:
    job = store.jobs.create(job_params(model["id"]), max_queue=10)
    clocks = _Clocks()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # waiting lets the bucket refill
        slept.append(seconds)
        clocks.wall_s += seconds

    inner = _CostlyApp(clocks)
    budget = CpuBudget(0.05, 2, clock=clocks.wall, cpu_clock=clocks.cpu)
    client = TestClient(CpuBudgetMiddleware(inner, store, budget, sleep=sleep))

    for _ in range(30):  # no job runs: nothing is metered
        assert client.get("/jobs").status_code == 200
    assert slept == []

    store.jobs.claim_next(worker_pid=1)  # now one runs: 0.1 CPU-s per second for the API
    for _ in range(30):
        assert client.get("/jobs").status_code == 200
    assert inner.calls == 60  # every request was answered
    # 30 requests x 10 ms = 0.3 CPU-s: 0.1 from the full bucket, 0.2 paid by waiting 2 s.
    assert sum(slept) == pytest.approx(2.0, abs=0.11)
    assert budget.delayed_requests == len(slept) > 0
    assert budget.delay_s_total == pytest.approx(sum(slept))

    store.jobs.finish_failed(job.id, "inference_failed", "done")
    slept.clear()
    for _ in range(30):
        assert client.get("/jobs").status_code == 200
    assert slept == []


def test_the_budget_is_on_by_default_zero_turns_it_off_and_metrics_count_delays(
    client: TestClient,
) -> None:
    assert Settings().api_cpu_share_while_running == 0.03
    assert budget_for(0) is None
    budget = client.app.state.cpu_budget  # type: ignore[attr-defined]
    assert budget.rate_cpu_s_per_s == pytest.approx(0.03 * (os.cpu_count() or 1))
    budget.delayed_requests, budget.delay_s_total = 3, 0.25
    text = client.get("/metrics").text
    assert "ovbench_api_requests_delayed_total 3.0" in text
    assert "ovbench_api_delay_seconds_total 0.25" in text
