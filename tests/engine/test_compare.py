"""Comparing two results: intervals by repeats or steady seconds, direction-aware verdicts, and
the differences in what produced them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.engine.compare import Comparison, MetricComparison, bootstrap_ratio, compare
from app.engine.integrity import HostProvenance, Provenance, StabilityRules, StabilityVerdict
from app.engine.runner import run_benchmark
from app.engine.spec import (
    BenchmarkResult,
    BenchmarkSpec,
    EffectiveConfig,
    LatencyStats,
    ModelDescription,
    ModelFile,
    RunFigures,
    TimelinePoint,
)
from app.engine.steady import steady_state

RULES = StabilityRules()
# Five repeats of a ~19 FPS model, within about 1% of each other
BASE_FPS = [19.0, 19.2, 18.9, 19.1, 18.8]


def latency(median: float, p99: float | None = None) -> LatencyStats:
    tail = p99 if p99 is not None else median * 1.1
    return LatencyStats(
        median=median, mean=median, min=median * 0.9, max=tail, stdev=0.1, p90=tail, p95=tail,
        p99=tail, percentile=50, at_percentile=median,
    )  # fmt: skip


def timeline(fps: list[float]) -> list[TimelinePoint]:
    return [
        TimelinePoint(second=i, iterations=round(v), throughput_fps=v, median_latency_ms=1000 / v)
        for i, v in enumerate(fps)
    ]


def runs(fps: list[float], p99_factor: float = 1.1) -> list[RunFigures]:
    return [
        RunFigures(
            throughput_fps=f,
            latency_ms=latency(1000 / f, 1000 / f * p99_factor),
            iterations=round(3 * f),
            duration_ms=3000.0,
            timeline=timeline([f] * 3),
            steady_state=steady_state(timeline([f] * 3), RULES),
        )
        for f in fps
    ]


def provenance(**spec: Any) -> Provenance:
    options = {"model_path": "/tmp/a/model.xml", "device": "CPU", "api": "sync", "nthreads": None}
    options.update(spec)
    return Provenance(
        ovbench_version="1.0",
        openvino_version="2025.1",
        model_sha256="m" * 64,
        model_files={"model.xml": "x" * 64, "model.bin": "b" * 64},
        dataset_sha256=None,
        spec=options,
        host=HostProvenance(
            hostname="bench-1", cpu_model="Xeon", logical_cpus=2, physical_cores=1,
            isa_flags=["avx2"], kernel="6.1", os="Linux", cpufreq_governor=None,
            cpufreq_min_mhz=None, cpufreq_max_mhz=None, memory_bytes=None, container=None,
            env={},
        ),
    )  # fmt: skip


def result(
    run_fps: list[float] | None = None,
    seconds: list[float] | None = None,
    **update: Any,
) -> BenchmarkResult:
    """A result with these repeats (top level: the first run) or, without, these seconds."""
    figures = runs(run_fps) if run_fps else []
    per_second = seconds if seconds is not None else [run_fps[0] if run_fps else 19.0] * 3
    fps = run_fps[0] if run_fps else sum(per_second) / len(per_second)
    base = BenchmarkResult(
        status="completed", api="sync", device="CPU", device_full_name="Test CPU",
        openvino_version="2025.1", ovbench_version="1.0", started_at="2025-01-01T00:00:00+00:00",
        throughput_fps=fps, latency_ms=latency(1000 / fps), iterations=round(fps * 3),
        duration_ms=1000.0 * len(per_second), first_inference_ms=60.0, read_model_ms=5.0,
        reshape_ms=None, compile_ms=300.0, limits={"niter": None, "duration_s": 3, "nireq": 1},
        config=EffectiveConfig(
            hint="latency", nstreams=1, nireq=1, nthreads=2, pin=True,
            inference_precision="f32", batch_size=1, requested={}, properties={},
        ),
        model=ModelDescription(
            name="resnet50", format="ir", inputs=[], outputs=[],
            files=[ModelFile(name="resnet50.xml", size_bytes=1, sha256="x" * 64)],
        ),
        inputs=[], timeline=timeline(per_second), host={"hostname": "bench-1", "cpu": "Xeon"},
        runs=figures,
    )  # fmt: skip
    return base.model_copy(update=update)


def metric(comparison: Comparison, name: str) -> MetricComparison:
    return next(m for m in comparison.metrics if m.metric == name)


def test_identical_repeats_are_no_change_with_an_interval_around_one() -> None:
    comparison = compare(result(BASE_FPS), result(BASE_FPS))
    assert comparison.verdict == "no_change"
    fps = metric(comparison, "throughput_fps")
    assert fps.ratio == 1.0 and fps.ci_low is not None and fps.ci_high is not None
    assert fps.ci_low <= 1.0 <= fps.ci_high
    assert "medians over the repeats (5 vs 5 runs)" in fps.method
    assert comparison.differences == []


def test_a_candidate_30_percent_slower_regressed_on_throughput_and_latency() -> None:
    slower = [f * 0.7 for f in BASE_FPS]
    comparison = compare(result(BASE_FPS), result(slower))
    assert comparison.verdict == "regressed"
    fps = metric(comparison, "throughput_fps")
    assert fps.ratio == pytest.approx(0.7)
    assert fps.ci_high is not None and fps.ci_high < 1
    assert fps.verdict == "regressed"
    # latency got higher: worse, since lower is better
    median = metric(comparison, "latency_median_ms")
    assert median.better == "lower"
    assert median.ratio == pytest.approx(1 / 0.7)
    assert median.ci_low is not None and median.ci_low > 1
    assert median.verdict == "regressed"


def test_a_faster_candidate_improved_in_both_directions() -> None:
    comparison = compare(result(BASE_FPS), result([f * 1.25 for f in BASE_FPS]))
    assert comparison.verdict == "improved"
    assert metric(comparison, "throughput_fps").verdict == "improved"
    assert metric(comparison, "latency_median_ms").verdict == "improved"


def test_a_change_inside_the_threshold_is_no_change_even_with_a_clear_interval() -> None:
    tight = [19.0, 19.02, 18.98, 19.01, 18.99]  # within 0.1%
    slower = [f * 0.99 for f in tight]
    fps = metric(compare(result(tight), result(slower)), "throughput_fps")
    assert fps.ci_high is not None and fps.ci_high < 1  # the interval alone would say worse
    assert fps.verdict == "no_change"
    assert compare(result(tight), result(slower), threshold=0.005).verdict == "regressed"


def test_overlapping_noisy_repeats_are_no_change_even_past_the_threshold() -> None:
    noisy = [19.0, 15.0, 22.0, 16.0, 20.0]  # median 19 vs 19.0: but spread wide
    candidate = [17.5, 21.0, 15.5, 18.5, 14.5]  # median 17.5: 8% lower, interval crosses 1
    fps = metric(compare(result(noisy), result(candidate)), "throughput_fps")
    assert fps.ratio is not None and fps.ratio < 0.98
    assert fps.ci_low is not None and fps.ci_high is not None and fps.ci_low < 1 < fps.ci_high
    assert fps.verdict == "no_change"


def test_a_tail_latency_regression_alone_does_not_decide_the_overall_verdict() -> None:
    candidate = result(BASE_FPS).model_copy(update={"runs": runs(BASE_FPS, p99_factor=2.0)})
    comparison = compare(result(BASE_FPS), candidate)
    assert metric(comparison, "latency_p99_ms").verdict == "regressed"
    assert comparison.verdict == "no_change"


def test_single_runs_compare_their_steady_seconds() -> None:
    base = result(seconds=[14.0, 19.0, 19.1, 18.9, 19.0, 19.2, 18.8])
    slower = result(seconds=[10.0, 13.3, 13.4, 13.2, 13.3, 13.5, 13.2])
    comparison = compare(base, slower)
    fps = metric(comparison, "throughput_fps")
    assert "means over the steady seconds (6 vs 6 s)" in fps.method
    assert fps.baseline == pytest.approx(19.0)  # the warm-up second is left out
    assert fps.ci_high is not None and fps.ci_high < 1
    assert comparison.verdict == "regressed"
    # p99 has no per-second figure: no interval without repeats
    p99 = metric(comparison, "latency_p99_ms")
    assert p99.ci_low is None and "fewer than 3 repeats" in p99.method


def test_without_any_interval_throughputs_point_ratio_decides_with_a_note() -> None:
    base = result(seconds=[19.0, 19.0])  # 2 s: no steady state, one run
    comparison = compare(base, result(seconds=[15.0, 15.0]))
    fps = metric(comparison, "throughput_fps")
    assert fps.ci_low is None and fps.ci_high is None
    assert fps.verdict == "regressed"
    assert fps.note is not None and "No interval" in fps.note
    assert comparison.verdict == "regressed"
    assert compare(base, result(seconds=[18.8, 18.8])).verdict == "no_change"


def test_single_value_metrics_have_no_interval_and_do_not_decide() -> None:
    comparison = compare(result(BASE_FPS), result(BASE_FPS, compile_ms=600.0))
    compile_ms = metric(comparison, "compile_ms")
    assert compile_ms.ratio == 2.0 and compile_ms.ci_low is None
    assert compile_ms.verdict == "regressed"
    assert "one value per job" in compile_ms.method
    assert comparison.verdict == "no_change"


def test_a_metric_missing_on_one_side_is_not_compared() -> None:
    comparison = compare(
        result(seconds=[19.0, 19.0]), result(seconds=[19.0, 19.0], latency_ms=None)
    )
    median = metric(comparison, "latency_median_ms")
    assert median.ratio is None and median.verdict == "no_change"
    assert median.note == "Not measured in the candidate: nothing to compare."


def test_a_side_judged_unstable_is_noted() -> None:
    noisy = StabilityVerdict(verdict="noisy", reasons=["Other processes used 45.0%."], rules=RULES)
    comparison = compare(result(BASE_FPS), result(BASE_FPS, stability=noisy))
    assert comparison.notes == ["The candidate was judged noisy: Other processes used 45.0%."]
    assert compare(result(BASE_FPS), result(BASE_FPS)).notes == []


def test_a_verdict_with_no_interval_behind_it_says_so() -> None:
    """Two-second single runs: no repeats, no steady seconds, so the verdict compares two
    figures and a note says that noise is not accounted for."""
    comparison = compare(result(seconds=[19.0, 19.0]), result(seconds=[18.0, 18.0]))
    assert metric(comparison, "throughput_fps").ci_low is None
    assert comparison.verdict == "regressed"
    assert comparison.notes[-1].startswith("No interval backs the verdict")
    assert "repeats of 3 or more" in comparison.notes[-1]


def test_the_bootstrap_is_seeded() -> None:
    base, cand = [1.0, 1.1, 0.9, 1.05], [1.2, 1.0, 1.1, 0.95]
    assert bootstrap_ratio(base, cand, np.median) == bootstrap_ratio(base, cand, np.median)


def test_differences_list_what_produced_the_results() -> None:
    base = result(BASE_FPS, provenance=provenance())
    origin = provenance(nthreads=1, model_path="/elsewhere/model.xml")
    origin = origin.model_copy(
        update={
            "model_sha256": "n" * 64,
            "host": origin.host.model_copy(update={"hostname": "bench-2"}),
            "job": {"submitted": {}, "resolved": {"nthreads": 1}},
        }
    )
    config = base.config.model_copy(update={"nthreads": 1})
    cand = result(BASE_FPS, provenance=origin, config=config)
    found = {d.field: (d.baseline, d.candidate) for d in compare(base, cand).differences}
    assert found == {
        "host.hostname": ("bench-1", "bench-2"),
        "config.nthreads": (2, 1),
        "model_sha256": ("m" * 64, "n" * 64),
        "spec.nthreads": (None, 1),
    }  # model_path is where the file was, not what ran; job.resolved only when both have it
    base_job = base.model_copy(
        update={
            "provenance": base.provenance.model_copy(update={"job": {"resolved": {"nthreads": 2}}})
        }  # type: ignore[union-attr]
    )
    fields = [d.field for d in compare(base_job, cand).differences]
    assert "job.resolved.nthreads" in fields


def test_results_without_provenance_compare_their_top_level_fields() -> None:
    base = result(BASE_FPS)
    cand = result(
        BASE_FPS,
        api="async",
        limits={"niter": None, "duration_s": 10, "nireq": 4},
        config=base.config.model_copy(update={"hint": "throughput", "nstreams": 2}),
    )
    found = {d.field: (d.baseline, d.candidate) for d in compare(base, cand).differences}
    assert found == {
        "api": ("sync", "async"),
        "limits.duration_s": (3, 10),
        "limits.nireq": (1, 4),
        "config.nstreams": (1, 2),
        "config.hint": ("latency", "throughput"),
    }
    # an older result against a newer one: the model compares by its files
    newer = result(BASE_FPS, provenance=provenance())
    newer = newer.model_copy(
        update={
            "model": newer.model.model_copy(
                update={"files": [ModelFile(name="resnet50.xml", size_bytes=1, sha256="z" * 64)]}
            )
        }
    )
    fields = [d.field for d in compare(base, newer).differences]
    assert fields == ["model.files"]


def test_a_real_result_against_itself(tiny_model: Path) -> None:
    real = run_benchmark(BenchmarkSpec(model_path=str(tiny_model), niter=30, repeats=3))
    assert len(real.runs) == 3
    comparison = compare(real, real, baseline_id="a", candidate_id="b")
    assert comparison.verdict == "no_change"
    assert comparison.differences == []
    fps = metric(comparison, "throughput_fps")
    assert fps.ratio == 1.0 and fps.ci_low is not None and fps.ci_low <= 1 <= (fps.ci_high or 0)
    assert (comparison.baseline_id, comparison.candidate_id) == ("a", "b")
    # every candidate run slower than every real one (a few ms of a tiny model vary a lot)
    half = min(run.throughput_fps for run in real.runs) / 2
    slower = [run.model_copy(update={"throughput_fps": half}) for run in real.runs]
    assert compare(real, real.model_copy(update={"runs": slower})).verdict == "regressed"
