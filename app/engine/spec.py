"""The engine's contract: what to run (`BenchmarkSpec`) and what came out (`BenchmarkResult`).

Both are pydantic models so that the CLI's `--json`, the store and the REST API all
serialize the very same object. Units are in the field names; numbers stay numbers.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.engine.integrity import (
    HostGuardReport,
    HostGuardRules,
    OutputsCheck,
    Provenance,
    RepeatAggregate,
    StabilityRules,
    StabilityVerdict,
    SteadyState,
)

Api = Literal["sync", "async"]
Pin = Literal["YES", "NO", "NUMA", "HYBRID_AWARE"]
Hint = Literal["throughput", "latency", "cumulative_throughput", "none"]
# How messages name the run's options: benchmark_app's flags (`-shape`) for the CLI, the
# JSON fields (`shape`) for the REST API.
OptionNames = Literal["cli", "api"]

# Each run option that messages name, by BenchmarkSpec field: (benchmark_app's flag, the REST
# API's JobCreate field). The API takes its inputs as a dataset and its -l/-c files by name.
OPTION_NAMES: dict[str, tuple[str, str]] = {
    "input_paths": ("-i", "dataset_id"),
    "device": ("-d", "device"),
    "api": ("-api", "api"),
    "niter": ("-niter", "niter"),
    "duration_s": ("-t", "duration_s"),
    "nireq": ("-nireq", "nireq"),
    "nstreams": ("-nstreams", "nstreams"),
    "nthreads": ("-nthreads", "nthreads"),
    "batch": ("-b", "batch"),
    "pin": ("-pin", "pin"),
    "hint": ("-hint", "hint"),
    "shape": ("-shape", "shape"),
    "data_shape": ("-data_shape", "data_shape"),
    "layout": ("-layout", "layout"),
    "infer_precision": ("-infer_precision", "infer_precision"),
    "gpu_config_path": ("-c", "gpu_config"),
    "extension_paths": ("-l", "extensions"),
    "latency_percentile": ("-latency_percentile", "latency_percentile"),
    "perf_counters": ("-pc", "perf_counters"),
    "repeats": ("--repeats", "repeats"),
    "rtol": ("--rtol", "rtol"),
    "atol": ("--atol", "atol"),
}


def option_name(option: str, style: OptionNames = "cli") -> str:
    """How a message names a run option: `option_name("batch", "cli")` is `-b`, with "api" `batch`."""
    flag, field = OPTION_NAMES[option]
    return flag if style == "cli" else field


def option_example(option: str, value: object, style: OptionNames = "cli") -> str:
    """An option with a value, as the caller would write it: `-nireq 4` or `"nireq": 4`."""
    if style == "cli":
        return f"{option_name(option, style)} {value}"
    return f'"{option_name(option, style)}": {json.dumps(value)}'


# benchmark_app's DEVICE_DURATION_IN_SECS: the run length when neither niter nor duration is given.
DEFAULT_DURATION_S: dict[str, float] = {"CPU": 60, "GPU": 60, "NPU": 60, "UNKNOWN": 120}
# The seed's -nireq default for the async API.
DEFAULT_NIREQ = 2
MAX_REPEATS = 100
# Tolerances against expected_<output>.npy: loose enough for bf16/f16 inference precision
# (about 3 significant digits), tight enough to catch a wrong layout or an overflow.
DEFAULT_RTOL = 1e-2
DEFAULT_ATOL = 1e-3


VIRTUAL_DEVICES = frozenset({"AUTO", "HETERO", "MULTI", "BATCH"})


def hardware_devices(device: str) -> list[str]:
    """`HETERO:GPU,CPU` -> ['GPU', 'CPU']; `CPU` -> ['CPU']; `AUTO` -> []."""
    head, _, tail = device.partition(":")
    if head in VIRTUAL_DEVICES:
        return [d.lstrip("-").split("(")[0] for d in tail.split(",") if d.strip()]
    return [device]


class BenchmarkSpec(BaseModel):
    """One benchmark run, with benchmark_app's knobs under their long names."""

    model_config = ConfigDict(extra="forbid")

    model_path: str = Field(
        description="Path to the model: .xml (with its .bin beside it), .onnx, ..."
    )
    input_paths: list[str] = Field(
        default_factory=list,
        description="Image files, folders of images, and .npy files named after non-image inputs.",
    )
    device: str = "CPU"
    api: Api = "sync"
    niter: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, gt=0)
    nireq: int | None = Field(default=None, ge=1, description="Async only; default 2.")
    nstreams: str | None = None
    nthreads: int | None = Field(default=None, ge=1)
    batch: int | None = Field(default=None, ge=1)
    pin: Pin | None = None
    hint: Hint | None = None
    shape: str | None = None
    data_shape: str | None = None
    layout: str | None = None
    infer_precision: str | None = None
    gpu_config_path: str | None = Field(default=None, description="-c: GPU custom kernels config")
    extension_paths: list[str] = Field(default_factory=list, description="-l: extension libraries")
    cache_dir: str | None = None
    latency_percentile: int = Field(default=50, ge=1, le=100)
    perf_counters: bool = False
    rgb: bool = Field(
        default=False, description="Keep images in RGB order (default: BGR, as the seed)"
    )
    default_duration_s: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_DURATION_S))
    shown_names: dict[str, str] = Field(
        default_factory=dict,
        description="Names messages give the model's files (the service stores the client's "
        "resnet.onnx as model.onnx)",
    )
    option_names: OptionNames = Field(
        default="cli",
        description="How error messages and warnings name options: 'cli' flags (-shape) "
        "or 'api' JSON fields (shape)",
    )
    repeats: int = Field(
        default=1,
        ge=1,
        le=MAX_REPEATS,
        description="Measured runs after one compile, each with the run's niter/duration limit",
    )
    rtol: float = Field(
        default=DEFAULT_RTOL, ge=0, description="Relative tolerance against expected outputs"
    )
    atol: float = Field(
        default=DEFAULT_ATOL, ge=0, description="Absolute tolerance against expected outputs"
    )
    stability: StabilityRules = Field(default_factory=StabilityRules)
    guard: HostGuardRules = Field(default_factory=HostGuardRules)


class Progress(BaseModel):
    fraction: float
    iterations: int
    elapsed_s: float


class LatencyStats(BaseModel):
    """Per-request latencies in milliseconds, full float precision (no rounding)."""

    median: float
    mean: float
    min: float
    max: float
    stdev: float
    p90: float
    p95: float
    p99: float
    percentile: int = Field(description="The -latency_percentile asked for")
    at_percentile: float = Field(description="Latency at that percentile (nearest rank)")


class TimelinePoint(BaseModel):
    second: int = Field(description="0-based second of the measured run")
    iterations: int = Field(description="Requests completed during this second")
    throughput_fps: float
    median_latency_ms: float | None


class PortInfo(BaseModel):
    name: str
    shape: str = Field(
        description="Partial shape as OpenVINO prints it, e.g. [1,3,224,224] or [?,3,?,?]"
    )
    element_type: str
    layout: str


class ModelFile(BaseModel):
    name: str
    size_bytes: int
    sha256: str


class ModelDescription(BaseModel):
    name: str
    format: str
    files: list[ModelFile]
    inputs: list[PortInfo]
    outputs: list[PortInfo]


class InputFill(BaseModel):
    """What exactly was fed to one model input."""

    input: str
    source: Literal["images", "npy", "random"]
    files: list[str] = Field(default_factory=list)
    shape: list[int]
    element_type: str


class EffectiveConfig(BaseModel):
    """What the compiled model actually uses, read back from it."""

    hint: str | None
    nstreams: int | None
    nireq: int
    nthreads: int | None
    pin: bool | None
    inference_precision: str | None
    batch_size: int
    cpus: list[int] | None = Field(
        default=None,
        description="The CPUs the run's thread, and the inference threads OpenVINO starts "
        "from it, may use (its affinity; OVBENCH_SERVICE_CPUS leaves the service's out). "
        "null: not Linux",
    )
    requested: dict[str, str] = Field(description="Properties we passed to compile_model")
    properties: dict[str, str] = Field(description="All readable compiled-model properties")


class PerfCounter(BaseModel):
    node_name: str
    node_type: str
    exec_type: str
    status: str
    real_time_ms: float
    cpu_time_ms: float


class EnergyUsage(BaseModel):
    """Energy the CPU packages used while the measured loop ran, from their RAPL counters
    (Linux powercap, `intel-rapl:N/energy_uj`; AMD CPUs appear there too). The whole packages
    count, whoever ran on them: read it with `cpu_usage`. Where the counters cannot be read,
    `measured` is false and `reason` says why; the figures are null.
    """

    measured: bool
    reason: str | None = None
    zones: list[str] = Field(
        default_factory=list, description="The package zones summed, e.g. package-0"
    )
    joules: float | None = Field(default=None, description="Energy over the measured loop")
    average_watts: float | None = Field(default=None, description="joules / the loop's wall time")
    millijoules_per_inference: float | None = Field(
        default=None,
        description="joules * 1000 / iterations (per inference request; a batch of N frames is one)",
    )


class CpuUsage(BaseModel):
    """CPU time on the host while the measured loop ran, from Linux's /proc (10 ms resolution).

    Work by other processes competes with the benchmark for the cores (and for memory
    bandwidth), so a high `other_fraction` or `steal_fraction` means the figures may be
    lower than the device can do. A loop too short for the 10 ms counters is not measured:
    `measured` is false, `reason` says why, and the CPU-s and fractions are null.
    """

    logical_cpus: int
    wall_s: float = Field(description="The measured loop, wall clock")
    benchmark_cpu_s: float | None = Field(
        description="This process: inference threads and the rest (null: not measured)"
    )
    other_cpu_s: float | None = Field(
        description="Every other process on the host (or container) (null: not measured)"
    )
    steal_s: float | None = Field(
        description="Taken from this virtual machine by its hypervisor (null: not measured)"
    )
    other_fraction: float | None = Field(
        description="other_cpu_s / (logical_cpus * wall_s) (null: not measured)"
    )
    steal_fraction: float | None = Field(
        description="steal_s / (logical_cpus * wall_s) (null: not measured)"
    )
    measured: bool = Field(
        default=True,
        description="False when the loop was too short for the figures to mean anything",
    )
    reason: str | None = Field(default=None, description="Why the figures were not measured")


class RunFigures(BaseModel):
    """One measured run of a job's repeats."""

    throughput_fps: float
    latency_ms: LatencyStats | None
    iterations: int
    duration_ms: float
    timeline: list[TimelinePoint]
    steady_state: SteadyState
    cpu_usage: CpuUsage | None = None
    energy: EnergyUsage | None = None


class BenchmarkResult(BaseModel):
    status: Literal["completed", "cancelled"]
    api: Api
    device: str
    device_full_name: str
    openvino_version: str
    ovbench_version: str
    started_at: str = Field(description="UTC, ISO 8601")
    throughput_fps: float
    latency_ms: LatencyStats | None = Field(description="None when no request completed")
    iterations: int
    duration_ms: float
    first_inference_ms: float
    read_model_ms: float
    reshape_ms: float | None
    compile_ms: float
    limits: dict[str, float | int | None] = Field(
        description="niter and duration_s that bounded the run"
    )
    config: EffectiveConfig
    model: ModelDescription
    inputs: list[InputFill]
    timeline: list[TimelinePoint]
    perf_counters: list[PerfCounter] | None = Field(
        default=None,
        description="-pc: each layer's times averaged over the infer requests "
        "(benchmark_app's average_counters; null when perf_counters is off)",
    )
    perf_counters_per_request: list[list[PerfCounter]] | None = Field(
        default=None,
        description="-pc: each infer request's own layer times, from its last inference "
        "(of the last repeat), one list per request in the requests' order (benchmark_app's "
        "detailed_counters). null when perf_counters is off, and in results stored before "
        "ovbench kept them",
    )
    warnings: list[str] = Field(default_factory=list)
    host: dict[str, str | int] = Field(default_factory=dict)
    cpu_usage: CpuUsage | None = Field(
        default=None, description="CPU use on the host during the measured loop (Linux only)"
    )
    energy: EnergyUsage | None = Field(
        default=None,
        description="Energy of the CPU packages during the measured loop (RAPL, Linux powercap)",
    )
    runs: list[RunFigures] = Field(
        default_factory=list,
        description="Every measured run (one per repeat); the top level shows the median run's",
    )
    aggregate: RepeatAggregate | None = Field(
        default=None, description="Across the repeats (null with one run)"
    )
    steady_state: SteadyState | None = Field(
        default=None, description="The top-level run's steady state, after its warm-up"
    )
    stability: StabilityVerdict | None = None
    host_guard: HostGuardReport | None = None
    provenance: Provenance | None = None
    outputs: OutputsCheck | None = Field(
        default=None, description="The first inference's outputs, checked"
    )


class DeviceInfo(BaseModel):
    name: str
    full_name: str
    properties: dict[str, str] = Field(default_factory=dict)
