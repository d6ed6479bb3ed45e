"""The measured runs of one job: `repeats` loops back to back on one compiled model.

Each loop is benchmark_app's (`loops`), bounded by the job's niter / duration_s; the CPU and
energy counters are read around each loop, never inside it, and progress is reported for
the job as a whole (run k of K counts the runs before it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.engine import cpu_usage, energy, loops, stats, steady
from app.engine.spec import (
    BenchmarkSpec,
    CpuUsage,
    EnergyUsage,
    Progress,
    RunFigures,
    option_name,
)


@dataclass
class MeasuredRun:
    figures: RunFigures
    cancelled: bool


@dataclass
class MeasurePlan:
    """The measured runs of one job: `spec.repeats` loops back to back on the compiled model,
    each bounded by the job's niter / duration_s, with the CPU and energy counters read around
    each loop (outside it) and progress reported for the job as a whole."""

    spec: BenchmarkSpec
    niter: int | None
    duration_s: float | None
    batch: int
    on_progress: loops.ProgressFn | None
    cancel: threading.Event | None

    @property
    def limits(self) -> tuple[int | None, float | None]:
        return self.niter, self.duration_s

    def repeat(
        self, loop: Callable[[loops.ProgressFn | None], loops.LoopOutcome]
    ) -> list[MeasuredRun]:
        runs: list[MeasuredRun] = []
        done_iterations, done_s = 0, 0.0
        for index in range(self.spec.repeats):
            report = self._progress(index, done_iterations, done_s)
            cpu_before, energy_before = cpu_usage.sample(), energy.sample()
            outcome = loop(report)
            energy_after, cpu_after = energy.sample(), cpu_usage.sample()
            # A cancel seen after the loop (its last progress report, the guard's wait) still
            # cancels the job when runs remain: the result must not read as complete.
            cancelled = outcome.cancelled or (
                self.cancel is not None and self.cancel.is_set() and index + 1 < self.spec.repeats
            )
            runs.append(
                MeasuredRun(
                    self._figures(
                        outcome,
                        cpu_usage.usage(cpu_before, cpu_after),
                        energy.usage(energy_before, energy_after, outcome.iterations),
                    ),
                    cancelled,
                )
            )
            done_iterations += outcome.iterations
            done_s += outcome.duration_s
            if cancelled:
                break
        return runs

    def _progress(self, index: int, done_iterations: int, done_s: float) -> loops.ProgressFn | None:
        """Progress of the job: run `index` of `repeats`, counting the runs before it."""
        on_progress, repeats = self.on_progress, self.spec.repeats
        if on_progress is None or repeats == 1:
            return on_progress

        def report(progress: Progress) -> None:
            on_progress(
                Progress(
                    fraction=(index + progress.fraction) / repeats,
                    iterations=done_iterations + progress.iterations,
                    elapsed_s=done_s + progress.elapsed_s,
                )
            )

        return report

    def _figures(
        self, outcome: loops.LoopOutcome, cpu: CpuUsage | None, used: EnergyUsage
    ) -> RunFigures:
        timeline = stats.timeline(
            outcome.completions_s, outcome.latencies_ms, outcome.duration_s, self.batch
        )
        return RunFigures(
            throughput_fps=stats.throughput_fps(self.batch, outcome.iterations, outcome.duration_s),
            latency_ms=stats.latency_stats(outcome.latencies_ms, self.spec.latency_percentile),
            iterations=outcome.iterations,
            duration_ms=outcome.duration_s * 1000,
            timeline=timeline,
            steady_state=steady.steady_state(
                timeline,
                self.spec.stability,
                duration_s=outcome.duration_s,
                duration_option=option_name("duration_s", self.spec.option_names),
            ),
            cpu_usage=cpu,
            energy=used,
        )
