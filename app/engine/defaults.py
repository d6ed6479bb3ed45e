"""The values a run gets for what it leaves out, exactly as the engine applies them (pure).

One set of defaults for the CLI and the API: `BenchmarkSpec`'s (device CPU, api sync,
latency_percentile 50 ...), plus the rules the engine applies when it runs:
- nireq: as given (default `DEFAULT_NIREQ`) for the async API, 1 for sync (runner);
- niter / duration_s: the device's default duration from the settings' table when neither is
  given; for async, niter aligned up to a multiple of nireq (runner.plan_limits);
- hint: as given; else `none` when nstreams, nthreads or pin is given; else latency for sync,
  throughput for async (devices.compile_config).

The engine applies them through these functions (runner.plan_limits, runner's nireq,
devices.compile_config's hint), and `resolve_options` lets the API show a job's resolved
parameters before it runs; a test runs real jobs to check the two agree. No I/O, no OpenVINO.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.engine.spec import DEFAULT_DURATION_S, DEFAULT_NIREQ, Api, BenchmarkSpec, Hint, Pin

# The run options a caller may leave out, under BenchmarkSpec's names.
RUN_OPTIONS = (
    "device",
    "api",
    "niter",
    "duration_s",
    "nireq",
    "nstreams",
    "nthreads",
    "batch",
    "pin",
    "hint",
    "shape",
    "data_shape",
    "layout",
    "infer_precision",
    "latency_percentile",
    "perf_counters",
    "rgb",
    "repeats",
    "rtol",
    "atol",
)


def spec_default(name: str) -> Any:
    """BenchmarkSpec's default for one option (what `ovbench run` uses when it is not given)."""
    return BenchmarkSpec.model_fields[name].get_default(call_default_factory=True)


DEFAULT_DEVICE: str = spec_default("device")
DEFAULT_API: Api = spec_default("api")
DEFAULT_LATENCY_PERCENTILE: int = spec_default("latency_percentile")
UNKNOWN_DEVICE_DURATION_S = 120.0


class ResolvedOptions(BaseModel):
    """A run's options with every default filled in as the engine applies it.

    null means the engine sets nothing and the model or the device decides (batch: the
    model's; nstreams, nthreads, pin, infer_precision: the device's under the hint).
    """

    model_config = ConfigDict(extra="forbid")

    device: str
    api: Api
    niter: int | None = Field(
        description="Iterations; for async aligned up to a multiple of nireq. null: bounded "
        "by duration_s only"
    )
    duration_s: float | None = Field(
        description="Run length; the device's default when neither niter nor duration_s is "
        "given. null: bounded by niter only"
    )
    nireq: int = Field(
        description=f"Infer requests: the given nireq (default {DEFAULT_NIREQ}) for async, 1 for sync"
    )
    nstreams: str | None = Field(description="null: the device's choice under the hint")
    nthreads: int | None = Field(description="null: the device's choice")
    batch: int | None = Field(description="null: the model's own batch")
    pin: Pin | None = Field(description="null: the device's default")
    hint: Hint = Field(
        description="The performance hint requested: as given; else none when nstreams, "
        "nthreads or pin is given; else latency (sync) or throughput (async). A device "
        "without hints ignores it (the result's warnings say so)"
    )
    shape: str | None = Field(description="null: the model's shapes")
    data_shape: str | None
    layout: str | None = Field(description="null: the model's layouts, else guessed")
    infer_precision: str | None = Field(description="null: the device's default")
    latency_percentile: int
    perf_counters: bool
    rgb: bool
    repeats: int = Field(description="Measured runs after one compile")
    rtol: float = Field(description="Relative tolerance against expected_<output>.npy")
    atol: float = Field(description="Absolute tolerance against expected_<output>.npy")


def device_default_duration_s(device: str, table: Mapping[str, float]) -> float:
    """benchmark_app's table: the longest entry among the device names in `device`, else UNKNOWN."""
    matches = [seconds for name, seconds in table.items() if name != "UNKNOWN" and name in device]
    return max(matches) if matches else table.get("UNKNOWN", UNKNOWN_DEVICE_DURATION_S)


def effective_nireq(api: Api, nireq: int | None) -> int:
    """How many infer requests run: nireq (default `DEFAULT_NIREQ`) for async, 1 for sync."""
    return (nireq or DEFAULT_NIREQ) if api == "async" else 1


def planned_limits(
    api: Api,
    niter: int | None,
    duration_s: float | None,
    nireq: int,
    device: str,
    table: Mapping[str, float],
) -> tuple[int | None, float | None]:
    """(niter, duration_s) that bound the run, with `nireq` the effective request count."""
    if duration_s is None and niter is None:
        duration_s = device_default_duration_s(device, table)
    if api == "async" and niter and niter % nireq:
        niter = math.ceil(niter / nireq) * nireq
    return niter, duration_s


def performance_hint(
    api: Api, hint: Hint | None, nstreams: str | None, nthreads: int | None, pin: Pin | None
) -> Hint:
    """The hint compile_config asks for: given, else none with tuning options, else by api."""
    if hint is not None:
        return hint
    if nstreams or nthreads or pin:
        return "none"
    return "latency" if api == "sync" else "throughput"


def resolve_options(
    options: Mapping[str, Any], default_duration_s: Mapping[str, float] | None = None
) -> ResolvedOptions:
    """`options` (BenchmarkSpec's names; absent or None = not given) with every default filled.

    Keys other than `RUN_OPTIONS` are ignored. `default_duration_s` is the per-device table
    (the settings'); BenchmarkSpec's when None.
    """
    table = DEFAULT_DURATION_S if default_duration_s is None else default_duration_s
    values = {
        name: spec_default(name) if options.get(name) is None else options[name]
        for name in RUN_OPTIONS
    }
    api: Api = values["api"]
    nireq = effective_nireq(api, values["nireq"])
    niter, duration_s = planned_limits(
        api, values["niter"], values["duration_s"], nireq, values["device"], table
    )
    hint = performance_hint(
        api, values["hint"], values["nstreams"], values["nthreads"], values["pin"]
    )
    values.update(niter=niter, duration_s=duration_s, nireq=nireq, hint=hint)
    return ResolvedOptions.model_validate(values)
