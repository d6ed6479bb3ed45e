"""The measurement loops, line for line benchmark_app's `sync_inference` and `async_inference_only`.

Sync: one request, `infer()` in a loop, its `latency` after each call.
Async: an `AsyncInferQueue`; each time a request is idle again its latency is read and it is
restarted; the loop keeps going until the iteration and time limits are met and the iteration
count is a multiple of the number of requests, then waits for all.

Added on top, without touching the per-iteration work beyond one list append: the time each
request was seen complete (for the per-second timeline), progress twice a second, and a cancel
check at the same moments.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import openvino as ov

from app.engine.spec import Progress

ProgressFn = Callable[[Progress], None]
_REPORT_EVERY_S = 0.5
_TIMER_RESOLUTION_S = time.get_clock_info("perf_counter").resolution


@dataclass
class LoopOutcome:
    latencies_ms: list[float] = field(default_factory=list)
    completions_s: list[float] = field(default_factory=list)
    iterations: int = 0
    duration_s: float = 0.0
    cancelled: bool = False


def _fraction(
    iterations: int, elapsed_s: float, niter: int | None, duration_s: float | None
) -> float:
    parts = []
    if niter:
        parts.append(iterations / niter)
    if duration_s:
        parts.append(elapsed_s / duration_s)
    return min(1.0, min(parts)) if parts else 0.0


class _Monitor:
    """Progress and cancel, consulted only every half second of the run."""

    def __init__(
        self,
        niter: int | None,
        duration_s: float | None,
        on_progress: ProgressFn | None,
        cancel: threading.Event | None,
    ) -> None:
        self.niter = niter
        self.duration_s = duration_s
        self.on_progress = on_progress
        self.cancel = cancel
        self.next_check_s = _REPORT_EVERY_S

    def check(self, iterations: int, elapsed_s: float) -> bool:
        """Report progress; True when the run must stop (cancelled)."""
        self.next_check_s = elapsed_s + _REPORT_EVERY_S
        if self.on_progress is not None:
            fraction = _fraction(iterations, elapsed_s, self.niter, self.duration_s)
            self.on_progress(
                Progress(fraction=fraction, iterations=iterations, elapsed_s=elapsed_s)
            )
        return self.cancel is not None and self.cancel.is_set()


def first_inference_sync(request: ov.InferRequest) -> float:
    request.infer()
    return float(request.latency)


def first_inference_async(queue: ov.AsyncInferQueue) -> tuple[float, int]:
    """The warm-up inference's latency and the request that ran it (its outputs are checked)."""
    request_id = queue.get_idle_request_id()
    queue.start_async()
    queue.wait_all()
    return float(queue[request_id].latency), request_id


def run_sync(
    request: ov.InferRequest,
    niter: int | None,
    duration_s: float | None,
    on_progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> LoopOutcome:
    monitor = _Monitor(niter, duration_s, on_progress, cancel)
    out = LoopOutcome()
    times = out.latencies_ms
    stamps = out.completions_s
    timer = time.perf_counter
    iteration = 0
    exec_time = 0.0
    start = timer()
    while (niter and iteration < niter) or (duration_s and exec_time < duration_s):
        request.infer()
        times.append(request.latency)
        iteration += 1
        exec_time = timer() - start
        stamps.append(exec_time)
        if exec_time >= monitor.next_check_s and monitor.check(iteration, exec_time):
            out.cancelled = True
            break
    return _finish(out, start, iteration, monitor)


def run_async(
    queue: ov.AsyncInferQueue,
    niter: int | None,
    duration_s: float | None,
    on_progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> LoopOutcome:
    monitor = _Monitor(niter, duration_s, on_progress, cancel)
    out = LoopOutcome()
    times = out.latencies_ms
    stamps = out.completions_s
    nireq = len(queue)
    timer = time.perf_counter
    iteration = 0
    exec_time = 0.0
    in_fly: set[int] = set()
    start = timer()
    while (
        (niter and iteration < niter)
        or (duration_s and exec_time < duration_s)
        or (iteration % nireq)
    ):
        idle_id = queue.get_idle_request_id()
        exec_time = timer() - start
        if idle_id in in_fly:
            times.append(queue[idle_id].latency)
            stamps.append(exec_time)
        else:
            in_fly.add(idle_id)
        queue.start_async()
        iteration += 1
        if exec_time >= monitor.next_check_s and monitor.check(iteration, exec_time):
            out.cancelled = True
            break
    queue.wait_all()
    _finish(out, start, iteration, monitor)
    for request_id in in_fly:
        times.append(queue[request_id].latency)
        stamps.append(out.duration_s)
    return out


def _finish(out: LoopOutcome, start: float, iteration: int, monitor: _Monitor) -> LoopOutcome:
    """benchmark_app's total duration (never below the timer's resolution), a last progress report."""
    out.duration_s = max(time.perf_counter() - start, _TIMER_RESOLUTION_S)
    out.iterations = iteration
    monitor.check(iteration, out.duration_s)
    return out
