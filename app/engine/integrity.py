"""The result's trust sections, as wire models: repeats and their aggregate, steady state, the
stability verdict, the host guard (CPU share before the run, frequency and temperature during
it), provenance, and the outputs check. Pure models: the code that fills them lives in
`aggregate`, `steady`, `verdict`, `host_guard`, `host_probe` and `outputs`.

The rules (thresholds) are models too, so that a result can say which rules judged it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["stable", "noisy", "drifting", "too_short"]


class StabilityRules(BaseModel):
    """Thresholds for steady state and the verdict (service: OVBENCH_STABILITY_*)."""

    model_config = ConfigDict(extra="forbid")

    steady_band: float = Field(
        default=0.10,
        gt=0,
        lt=1,
        description="Warm-up ends at the first second from which the per-second throughput "
        "stays within this share of the median of the seconds that follow",
    )
    min_steady_s: int = Field(
        default=3, ge=2, description="Steady seconds needed to call a run steady"
    )
    cv_repeats_max: float = Field(
        default=0.05,
        gt=0,
        description="Coefficient of variation of the repeats' throughput above which a "
        "result is noisy (5%: about Triton perf_analyzer's default stability criterion, "
        "max/min within 10% over 3 measurements)",
    )
    cv_seconds_max: float = Field(
        default=0.10,
        gt=0,
        description="Coefficient of variation of the steady seconds' throughput above which a "
        "single run is noisy",
    )
    drift_max: float = Field(
        default=0.05,
        gt=0,
        description="Relative change of throughput across the steady seconds (or the "
        "repeats), by a least-squares line, above which a monotonic trend is drifting",
    )
    monotonic_rho: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Spearman rank correlation of throughput with time (seconds or repeats), "
        "in absolute value, from which a trend counts as monotonic",
    )
    busy_other_fraction: float = Field(
        default=0.10,
        gt=0,
        le=1,
        description="Share of the host's CPU time used by other processes (or stolen by the "
        "hypervisor) during a measured run above which the result is noisy",
    )
    throttle_drop: float = Field(
        default=0.10,
        gt=0,
        lt=1,
        description="A CPU frequency this share below the run's first second, sustained for "
        "min_steady_s seconds, is throttling",
    )


class HostGuardRules(BaseModel):
    """The guard before a run (service: OVBENCH_GUARD_*)."""

    model_config = ConfigDict(extra="forbid")

    sample_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long the host's CPU is sampled before the run (reading and compiling "
        "the model count towards it; 0: no guard)",
    )
    busy_fraction: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Share of the host's CPU time used by other processes above which the "
        "guard waits for the host to go quiet",
    )
    wait_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="How long the guard waits for a quiet host before it runs anyway",
    )


class Spread(BaseModel):
    """One metric across the repeats."""

    median: float
    min: float
    max: float
    cv: float = Field(description="Coefficient of variation: stdev / mean (0 for one value)")
    ci_low: float | None = Field(description="Lower end of the confidence interval of the median")
    ci_high: float | None = Field(description="Upper end of the confidence interval of the median")
    confidence: float | None = Field(
        description="The interval's real coverage (order statistics give 0.9375 for 5 values, "
        "at least 0.95 from 6 on); null with fewer than 2 values"
    )


class RepeatAggregate(BaseModel):
    repeats: int
    throughput_fps: Spread
    latency_median_ms: Spread | None = Field(description="Of each run's median latency")
    method: str = Field(description="How the intervals were computed")
    median_run: int = Field(
        description="0-based index of the run whose figures the result's top level shows "
        "(the run with the median throughput; the lower of the two middle runs for an even "
        "count)"
    )


class SteadyState(BaseModel):
    reached: bool
    rule: str = Field(description="The warm-up rule, in words, with its band")
    warmup_s: float | None = Field(
        description="Seconds before the steady state (null: not reached)"
    )
    seconds: int = Field(description="Steady seconds the figures below are over")
    throughput_fps: float | None
    latency_median_ms: float | None = Field(description="Median of the steady seconds' medians")
    cv: float | None = Field(description="CV of the steady seconds' throughput")
    trend: float | None = Field(
        description="Relative change across the steady seconds by a least-squares line "
        "(+0.05: 5% faster at the end than at the start)"
    )
    warning: str | None = None


class StabilityVerdict(BaseModel):
    verdict: Verdict
    reasons: list[str] = Field(description="Plain sentences; empty for stable")
    rules: StabilityRules


class Trace(BaseModel):
    """A per-second reading during the measured runs, or unavailable with the reason."""

    available: bool
    reason: str | None = None
    source: str | None = Field(default=None, description="Where it was read")
    per_second: list[float] = Field(default_factory=list)


class HostGuardReport(BaseModel):
    rules: HostGuardRules
    sampled_s: float = Field(description="How long the host was sampled before the run")
    other_fraction: float | None = Field(
        description="Other processes' share of the host's CPUs when the run started "
        "(null: not measured)"
    )
    waited_s: float = Field(description="Time spent waiting for a quiet host")
    ran_busy: bool = Field(description="The host was still busy when the run started")
    message: str | None = None
    frequency_mhz: Trace = Field(description="Mean CPU frequency per second over the host's CPUs")
    temperature_c: Trace = Field(description="Hottest thermal zone per second")
    throttled: bool | None = Field(
        description="Frequency stayed more than throttle_drop below the first second's for "
        "min_steady_s seconds (null: frequency unavailable)"
    )
    frequency_drop: float | None = Field(
        default=None,
        description="The largest share below the first second's frequency that min_steady_s "
        "consecutive seconds all stayed (0: it never fell; null: frequency unavailable)",
    )


class HostProvenance(BaseModel):
    hostname: str
    cpu_model: str
    logical_cpus: int
    physical_cores: int | None
    isa_flags: list[str] = Field(
        description="Those that change OpenVINO's choices: avx2, avx512*, amx*"
    )
    kernel: str
    os: str
    cpufreq_governor: str | None
    cpufreq_min_mhz: float | None
    cpufreq_max_mhz: float | None
    memory_bytes: int | None
    container: str | None = Field(
        description="docker, podman, kubernetes, lxc ... (null: none seen)"
    )
    env: dict[str, str] = Field(description="OV_*, OMP_*, KMP_*, TBB_* variables")
    unavailable: dict[str, str] = Field(
        default_factory=dict, description="Fields that could not be read, with the reason"
    )


class Provenance(BaseModel):
    ovbench_version: str
    openvino_version: str
    model_sha256: str = Field(description="Over the model's files: name and sha256 of each")
    model_files: dict[str, str] = Field(description="sha256 by file name")
    dataset_sha256: str | None = Field(description="Over the input files (null: random data)")
    input_files: dict[str, str] = Field(default_factory=dict, description="sha256 by file name")
    spec: dict[str, Any] = Field(description="The engine's run options, as resolved")
    job: dict[str, Any] | None = Field(
        default=None,
        description="Service: the job's parameters as submitted and as resolved "
        "({'submitted': ..., 'resolved': ...})",
    )
    host: HostProvenance


class OutputSummary(BaseModel):
    name: str
    shape: list[int]
    element_type: str
    min: float | None
    max: float | None
    mean: float | None
    nan_count: int
    inf_count: int
    sha256: str = Field(description="Of the output's bytes")
    top5: list[list[int]] | None = Field(
        description="For a 2-D [N, C] output: the 5 highest class indices of each row (at most 8 rows)"
    )
    names: list[str] = Field(
        default_factory=list,
        description="All the port's tensor names, sorted (an expected_<name>.npy may use any)",
    )


class OutputComparison(BaseModel):
    name: str
    expected_file: str
    max_abs_error: float | None
    max_rel_error: float | None
    match: bool
    reason: str | None = None
    mismatched_elements: int | None = Field(
        default=None,
        description="Elements outside atol + rtol * |expected| (null: not compared)",
    )


class OutputsCheck(BaseModel):
    """The first inference's outputs (recorded before the measured loop).

    Expected outputs (`expected_<output name>.npy` in the dataset) are for the first
    inference's inputs: the first batch the dataset fills into request 0.
    """

    outputs: list[OutputSummary]
    rtol: float
    atol: float
    compared: list[OutputComparison] = Field(default_factory=list)
    outputs_match: bool | None = Field(
        description="Every expected_<output>.npy matched within rtol/atol (null: none given)"
    )
