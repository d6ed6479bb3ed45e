"""Compare two results: per-metric ratios (candidate / baseline) with 95% intervals, a verdict,
and the differences in what produced them.

Intervals, per metric:
- Both results with 3 runs or more (one per repeat): bootstrap of the ratio of the medians of
  the per-run values (throughput_fps, latency_ms.median, latency_ms.p99), each side's runs
  resampled with replacement, 2000 times, seeded (numpy default_rng(0)); the 2.5% and 97.5%
  quantiles of the ratios. The point ratio is the ratio of the medians.
- Else, for throughput and median latency, when both have 3 steady seconds or more
  (`steady.steady_seconds` on the top-level timeline): the same bootstrap of the ratio of the
  means over the steady seconds (per-second throughput, per-second median latency). Seconds
  are resampled as if independent, so this interval is narrower than the truth.
- Otherwise (and always for first_inference_ms and compile_ms, one value per job) no interval:
  the top-level figures' ratio, with a note.

Verdict per metric, direction-aware (higher throughput, lower latency is better): with an
interval, regressed when the whole interval lies on the worse side of 1 AND the point ratio
is worse than `threshold` (2%: below 0.98 for throughput, above 1.02 for latency); improved
the same way on the better side; else no_change. Without an interval, by the point ratio
against the threshold alone.

Overall verdict: from the headline metrics (throughput_fps, latency_median_ms) that have an
interval: regressed if any regressed, improved if some improved and none regressed, else
no_change; with no interval on either, from throughput's point ratio. latency_p99_ms keeps its
own verdict but does not decide the overall one: the p99 of a few seconds' requests is close
to the slowest request of the run and varies by far more than 2% between identical jobs.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from app.engine import steady
from app.engine.integrity import StabilityRules
from app.engine.spec import BenchmarkResult, RunFigures, TimelinePoint

Metric = Literal[
    "throughput_fps", "latency_median_ms", "latency_p99_ms", "first_inference_ms", "compile_ms"
]
Better = Literal["higher", "lower"]
ChangeVerdict = Literal["improved", "regressed", "no_change"]

RESAMPLES = 2000
SEED = 0
MIN_SAMPLES = 3
HEADLINE_METRICS = ("throughput_fps", "latency_median_ms")
# Spec fields that name files on one machine or only shape messages, and those the result
# already shows at its top level.
SKIPPED_SPEC_FIELDS = frozenset(
    {
        "model_path",
        "input_paths",
        "shown_names",
        "default_duration_s",
        "option_names",
        "device",
        "api",
    }
)
_CONFIG_FIELDS = ("nstreams", "nthreads", "inference_precision", "hint")
_HOST_FIELDS = ("logical_cpus", "isa_flags", "cpufreq_governor", "env")


class MetricComparison(BaseModel):
    metric: Metric
    better: Better
    baseline: float | None = Field(description="The baseline's figure compared (see method)")
    candidate: float | None
    ratio: float | None = Field(description="candidate / baseline")
    ci_low: float | None = Field(description="Lower end of the ratio's 95% interval")
    ci_high: float | None
    method: str
    verdict: ChangeVerdict
    note: str | None = None


class Difference(BaseModel):
    field: str
    baseline: Any
    candidate: Any


class Comparison(BaseModel):
    threshold: float = Field(description="Smallest relative change a verdict counts")
    verdict: ChangeVerdict
    metrics: list[MetricComparison]
    differences: list[Difference] = Field(
        description="What produced the two results, where it differs"
    )
    notes: list[str] = Field(
        default_factory=list,
        description="What weakens the comparison: a side whose own verdict is not stable",
    )
    baseline_id: str | None = None
    candidate_id: str | None = None


_METRICS: tuple[tuple[Metric, Better], ...] = (
    ("throughput_fps", "higher"),
    ("latency_median_ms", "lower"),
    ("latency_p99_ms", "lower"),
    ("first_inference_ms", "lower"),
    ("compile_ms", "lower"),
)
_RUN_VALUES: dict[str, Callable[[RunFigures], float | None]] = {
    "throughput_fps": lambda run: run.throughput_fps,
    "latency_median_ms": lambda run: run.latency_ms.median if run.latency_ms else None,
    "latency_p99_ms": lambda run: run.latency_ms.p99 if run.latency_ms else None,
}
_SECOND_VALUES: dict[str, Callable[[TimelinePoint], float | None]] = {
    "throughput_fps": lambda point: point.throughput_fps,
    "latency_median_ms": lambda point: point.median_latency_ms,
}


def _top_value(result: BenchmarkResult, metric: Metric) -> float | None:
    latency = result.latency_ms
    values: dict[str, float | None] = {
        "throughput_fps": result.throughput_fps,
        "latency_median_ms": latency.median if latency else None,
        "latency_p99_ms": latency.p99 if latency else None,
        "first_inference_ms": result.first_inference_ms,
        "compile_ms": result.compile_ms,
    }
    return values[metric]


def bootstrap_ratio(
    baseline: Sequence[float],
    candidate: Sequence[float],
    statistic: Callable[..., Any],
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """95% percentile interval of statistic(candidate) / statistic(baseline), each side
    resampled with replacement. `statistic` is np.median or np.mean (called with axis=1)."""
    rng = np.random.default_rng(seed)
    base = np.asarray(baseline, dtype=float)
    cand = np.asarray(candidate, dtype=float)
    base_stats = statistic(base[rng.integers(0, len(base), (resamples, len(base)))], axis=1)
    cand_stats = statistic(cand[rng.integers(0, len(cand), (resamples, len(cand)))], axis=1)
    low, high = np.quantile(cand_stats / base_stats, [0.025, 0.975])
    return float(low), float(high)


def _per_run(result: BenchmarkResult, metric: Metric) -> list[float] | None:
    pick = _RUN_VALUES.get(metric)
    if pick is None or len(result.runs) < MIN_SAMPLES:
        return None
    values = [pick(run) for run in result.runs]
    return [v for v in values if v is not None] if all(v is not None for v in values) else None


def _per_second(result: BenchmarkResult, metric: Metric) -> list[float] | None:
    pick = _SECOND_VALUES.get(metric)
    if pick is None:
        return None
    rules = result.stability.rules if result.stability else StabilityRules()
    points = steady.steady_seconds(result.timeline, rules, result.duration_ms / 1000)
    values = [v for v in (pick(point) for point in points) if v is not None]
    return values if len(values) >= MIN_SAMPLES else None


def _judge(
    ratio: float, better: Better, threshold: float, low: float, high: float
) -> ChangeVerdict:
    """Regressed/improved when [low, high] lies wholly on one side of 1 and the ratio passes
    the threshold on that side (low = high = ratio judges the point ratio alone)."""
    worse_side = high < 1 and ratio < 1 - threshold
    better_side = low > 1 and ratio > 1 + threshold
    if better == "lower":
        worse_side, better_side = (
            low > 1 and ratio > 1 + threshold,
            high < 1 and ratio < 1 - threshold,
        )
    if worse_side:
        return "regressed"
    return "improved" if better_side else "no_change"


def _no_interval_method(metric: Metric) -> str:
    if metric not in _RUN_VALUES:
        return "Ratio of the top-level figures; no interval: one value per job."
    seconds = " and fewer than 3 steady seconds" if metric in _SECOND_VALUES else ""
    return (
        f"Ratio of the top-level figures; no interval: fewer than 3 repeats{seconds} on one side."
    )


def compare_metric(
    baseline: BenchmarkResult,
    candidate: BenchmarkResult,
    metric: Metric,
    better: Better,
    threshold: float,
) -> MetricComparison:
    """One metric of the two results, by the interval rules in the module docstring."""
    base_runs, cand_runs = _per_run(baseline, metric), _per_run(candidate, metric)
    base_secs, cand_secs = _per_second(baseline, metric), _per_second(candidate, metric)
    interval: tuple[float, float] | None = None
    base_value: float | None
    cand_value: float | None
    if base_runs and cand_runs and min(base_runs) > 0:
        base_value, cand_value = statistics.median(base_runs), statistics.median(cand_runs)
        interval = bootstrap_ratio(base_runs, cand_runs, np.median)
        method = (
            f"Ratio of the medians over the repeats ({len(base_runs)} vs {len(cand_runs)} "
            f"runs); 95% interval by bootstrap ({RESAMPLES} resamples of each side's runs, "
            f"seeded)."
        )
    elif base_secs and cand_secs and min(base_secs) > 0:
        base_value, cand_value = statistics.fmean(base_secs), statistics.fmean(cand_secs)
        interval = bootstrap_ratio(base_secs, cand_secs, np.mean)
        method = (
            f"Ratio of the means over the steady seconds ({len(base_secs)} vs "
            f"{len(cand_secs)} s); 95% interval by bootstrap ({RESAMPLES} resamples of each "
            f"side's seconds, seeded, taken as independent)."
        )
    else:
        base_value, cand_value = _top_value(baseline, metric), _top_value(candidate, metric)
        method = _no_interval_method(metric)
    ratio: float | None = None
    verdict: ChangeVerdict = "no_change"
    note: str | None
    if base_value is None or cand_value is None or base_value <= 0:
        missing = "candidate" if base_value is not None and base_value > 0 else "baseline"
        interval, note = None, f"Not measured in the {missing}: nothing to compare."
    else:
        ratio = cand_value / base_value
        low, high = interval if interval is not None else (ratio, ratio)
        verdict = _judge(ratio, better, threshold, low, high)
        note = None if interval else "No interval backs this verdict: the point ratio alone."
    return MetricComparison(
        metric=metric,
        better=better,
        baseline=base_value,
        candidate=cand_value,
        ratio=ratio,
        ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None,
        method=method,
        verdict=verdict,
        note=note,
    )


def _overall(metrics: Sequence[MetricComparison]) -> ChangeVerdict:
    backed = [m.verdict for m in metrics if m.metric in HEADLINE_METRICS and m.ci_low is not None]
    if not backed:
        return next(m.verdict for m in metrics if m.metric == "throughput_fps")
    if "regressed" in backed:
        return "regressed"
    return "improved" if "improved" in backed else "no_change"


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, into)
    else:
        into[prefix] = value


def _facts(
    result: BenchmarkResult,
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """(facts every result has, provenance facts or None, the job as resolved or None)."""
    origin = result.provenance
    facts: dict[str, Any] = {"device": result.device, "api": result.api}
    facts["openvino_version"] = result.openvino_version
    facts["host.hostname"] = origin.host.hostname if origin else result.host.get("hostname")
    facts["host.cpu_model"] = origin.host.cpu_model if origin else result.host.get("cpu")
    for key, value in result.limits.items():
        facts[f"limits.{key}"] = value
    for name in _CONFIG_FIELDS:
        facts[f"config.{name}"] = getattr(result.config, name)
    if origin is None:
        facts["model.files"] = {f.name: f.sha256 for f in result.model.files}
        return facts, None, None
    extra: dict[str, Any] = {
        "model_sha256": origin.model_sha256,
        "dataset_sha256": origin.dataset_sha256,
    }
    for name in _HOST_FIELDS:
        extra[f"host.{name}"] = getattr(origin.host, name)
    for key, value in origin.spec.items():
        if key not in SKIPPED_SPEC_FIELDS:
            _flatten(f"spec.{key}", value, extra)
    resolved = (origin.job or {}).get("resolved")
    job: dict[str, Any] | None = None
    if isinstance(resolved, dict):
        job = {}
        for key, value in resolved.items():
            if key not in SKIPPED_SPEC_FIELDS:
                _flatten(f"job.resolved.{key}", value, job)
    return facts, extra, job


def _diff(base: dict[str, Any], cand: dict[str, Any], into: list[Difference]) -> None:
    for key in [*base, *(k for k in cand if k not in base)]:
        if base.get(key) != cand.get(key):
            into.append(Difference(field=key, baseline=base.get(key), candidate=cand.get(key)))


def differences(baseline: BenchmarkResult, candidate: BenchmarkResult) -> list[Difference]:
    """What produced the two results, where it differs (provenance only when both have it;
    a model's files without it)."""
    base_facts, base_extra, base_job = _facts(baseline)
    cand_facts, cand_extra, cand_job = _facts(candidate)
    if (base_extra is None) != (cand_extra is None):
        # Only one has provenance: compare the model by its files, as the older one can.
        base_facts.setdefault("model.files", {f.name: f.sha256 for f in baseline.model.files})
        cand_facts.setdefault("model.files", {f.name: f.sha256 for f in candidate.model.files})
    found: list[Difference] = []
    _diff(base_facts, cand_facts, found)
    if base_extra is not None and cand_extra is not None:
        if base_job is not None and cand_job is not None:
            # Both jobs' resolved parameters are compared below: the spec's copies of them
            # (`hint: null` submitted, `hint: latency` in a rerun) would differ in form only.
            resolved = {key.split(".")[2] for key in [*base_job, *cand_job]}
            for extra in (base_extra, cand_extra):
                for key in [
                    k for k in extra if k.startswith("spec.") and k.split(".")[1] in resolved
                ]:
                    del extra[key]
        _diff(base_extra, cand_extra, found)
    if base_job is not None and cand_job is not None:
        _diff(base_job, cand_job, found)
    return found


def compare(
    baseline: BenchmarkResult,
    candidate: BenchmarkResult,
    threshold: float = 0.02,
    *,
    baseline_id: str | None = None,
    candidate_id: str | None = None,
) -> Comparison:
    """Candidate against baseline: each metric's ratio, interval and verdict, the overall
    verdict and the differences (rules in the module docstring)."""
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    metrics = [compare_metric(baseline, candidate, m, b, threshold) for m, b in _METRICS]
    notes = [
        f"The {side} was judged {judged.verdict}: {' '.join(judged.reasons)}"
        for side, judged in (("baseline", baseline.stability), ("candidate", candidate.stability))
        if judged is not None and judged.verdict != "stable"
    ]
    if not any(m.ci_low is not None for m in metrics if m.metric in HEADLINE_METRICS):
        notes.append(
            "No interval backs the verdict: it compares two single figures against the "
            f"{threshold:.0%} threshold, whatever the noise. Run both with repeats of 3 or more "
            "(or long enough for 3 steady seconds) for a verdict that accounts for it."
        )
    return Comparison(
        threshold=threshold,
        verdict=_overall(metrics),
        metrics=metrics,
        differences=differences(baseline, candidate),
        notes=notes,
        baseline_id=baseline_id,
        candidate_id=candidate_id,
    )
