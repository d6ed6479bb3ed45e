"""While a benchmark runs, the API's CPU time is held to a share of the host's CPUs.

The read cache makes a poll cheap, and niceness makes the API wait for the CPU when the
worker wants it, but a client that polls back to back (or a few hundred dashboards) would
still take whatever share the scheduler gives the API, and every CPU-second of it comes out
of the measurement. So while a job is running, this outermost middleware meters the API
process's own CPU time (`time.process_time`: every thread of this process) against a token
bucket that refills at `share x CPUs` CPU-seconds per second: a request that arrives while
the bucket is empty waits, in arrival order, until it has refilled. Requests are delayed,
never refused; when no job runs nothing is metered. The deficit is capped at one second of
budget, so a large upload does not stall the API for longer than that.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from app.store import Store

BURST_S = 1.0  # the bucket holds (and may owe) one second of budget


def budget_for(share: float) -> CpuBudget | None:
    """The budget for `share` of this host's CPUs; None for 0 (no limit)."""
    return CpuBudget(share, os.cpu_count() or 1) if share > 0 else None


class CpuBudget:
    """A token bucket of CPU-seconds."""

    def __init__(
        self,
        share: float,
        cpus: int,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.rate_cpu_s_per_s = share * cpus
        self.burst_cpu_s = self.rate_cpu_s_per_s * BURST_S
        self._clock = clock
        self._cpu_clock = cpu_clock
        self.delayed_requests = 0  # for /metrics
        self.delay_s_total = 0.0
        self.reset()

    def reset(self) -> None:
        """A full bucket from now on (nothing that ran before counts)."""
        self._tokens_cpu_s = self.burst_cpu_s
        self._wall_s = self._clock()
        self._cpu_s = self._cpu_clock()

    def wait_s(self) -> float:
        """Charge the CPU used since the last call, refill for the time passed, and say how
        long the next request must wait for the bucket to be back at zero."""
        wall_s, cpu_s = self._clock(), self._cpu_clock()
        refill = (wall_s - self._wall_s) * self.rate_cpu_s_per_s
        tokens = min(self.burst_cpu_s, self._tokens_cpu_s + refill) - (cpu_s - self._cpu_s)
        self._tokens_cpu_s = max(tokens, -self.burst_cpu_s)
        self._wall_s, self._cpu_s = wall_s, cpu_s
        if self._tokens_cpu_s >= 0:
            return 0.0
        return -self._tokens_cpu_s / self.rate_cpu_s_per_s


class CpuBudgetMiddleware:
    """Pure ASGI middleware: delays requests while a job runs and the API's share is used up."""

    def __init__(
        self,
        app: ASGIApp,
        store: Store,
        budget: CpuBudget | None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.app = app
        self.store = store
        self.budget = budget
        self.sleep = sleep
        self._lock = asyncio.Lock()
        self._running = False
        self._running_token: int | None = None

    def job_running(self) -> bool:
        """Whether a job runs, asked of the store again only after a commit (every time on a
        backend without a change token)."""
        token = self.store.change_token()
        if token is None or token != self._running_token:
            self._running = self.store.jobs.any_running()
            self._running_token = token
        return self._running

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.budget is not None and scope["type"] == "http":
            if self.job_running():
                async with self._lock:  # one at a time, in arrival order
                    wait_s = self.budget.wait_s()
                    if wait_s > 0:
                        self.budget.delayed_requests += 1
                        self.budget.delay_s_total += wait_s
                        await self.sleep(wait_s)
            else:
                self.budget.reset()
        await self.app(scope, receive, send)
