"""`engine.defaults`: the defaults a run gets, checked against the rules the engine applies."""

from __future__ import annotations

import itertools
from typing import Any

import openvino as ov
import openvino.properties.hint as hints
import pytest

from app.engine import devices, runner
from app.engine.defaults import (
    DEFAULT_API,
    DEFAULT_DEVICE,
    effective_nireq,
    resolve_options,
)
from app.engine.spec import DEFAULT_DURATION_S, BenchmarkSpec

TABLE = {"CPU": 3.0, "GPU": 4.0, "NPU": 5.0, "UNKNOWN": 9.0}


def _spec(**options: Any) -> BenchmarkSpec:
    return BenchmarkSpec(model_path="model.xml", default_duration_s=TABLE, **options)


def test_nothing_given_resolves_to_benchmark_specs_defaults() -> None:
    resolved = resolve_options({}, TABLE)
    assert resolved.model_dump() == {
        "device": "CPU",
        "api": "sync",
        "niter": None,
        "duration_s": 3.0,
        "nireq": 1,
        "nstreams": None,
        "nthreads": None,
        "batch": None,
        "pin": None,
        "hint": "latency",
        "shape": None,
        "data_shape": None,
        "layout": None,
        "infer_precision": None,
        "latency_percentile": 50,
        "perf_counters": False,
        "rgb": False,
        "repeats": 1,
        "rtol": 0.01,
        "atol": 0.001,
    }
    spec = BenchmarkSpec(model_path="model.xml")  # what `ovbench run -m model.xml` runs
    assert (DEFAULT_DEVICE, DEFAULT_API) == (spec.device, spec.api) == ("CPU", "sync")
    assert resolve_options({}).duration_s == DEFAULT_DURATION_S["CPU"]


def test_given_values_are_kept_and_none_means_not_given() -> None:
    given = {
        "device": "GPU",
        "api": "async",
        "niter": 8,
        "nireq": 4,
        "nstreams": "2",
        "batch": 3,
        "hint": "throughput",
        "shape": "[1,3,8,8]",
        "latency_percentile": 90,
        "rgb": True,
        "duration_s": None,
        "model_id": "ignored",
    }
    resolved = resolve_options(given, TABLE).model_dump()
    assert {k: resolved[k] for k in given if k not in ("model_id", "duration_s")} == {
        k: v for k, v in given.items() if k not in ("model_id", "duration_s")
    }
    assert resolved["duration_s"] is None  # niter bounds the run


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"api": "async"}, (None, 3.0, 2)),
        ({"api": "async", "niter": 7}, (8, None, 2)),
        ({"api": "async", "niter": 7, "nireq": 3}, (9, None, 3)),
        ({"api": "sync", "niter": 7, "nireq": 3}, (7, None, 1)),
        ({"device": "HETERO:GPU,CPU"}, (None, 4.0, 1)),
        ({"device": "FPGA"}, (None, 9.0, 1)),
        ({"duration_s": 2.5, "niter": 5}, (5, 2.5, 1)),
    ],
)
def test_limits_and_nireq(options: dict[str, Any], expected: tuple[Any, ...]) -> None:
    resolved = resolve_options(options, TABLE)
    assert (resolved.niter, resolved.duration_s, resolved.nireq) == expected


def test_without_an_unknown_entry_an_unknown_device_runs_120_s() -> None:
    assert resolve_options({"device": "FPGA"}, {"CPU": 1.0}).duration_s == 120


@pytest.mark.parametrize(
    ("options", "hint"),
    [
        ({}, "latency"),
        ({"api": "async"}, "throughput"),
        ({"nstreams": "2"}, "none"),
        ({"api": "async", "nthreads": 2}, "none"),
        ({"pin": "NO"}, "none"),
        ({"nstreams": "2", "hint": "throughput"}, "throughput"),
        ({"api": "async", "hint": "latency"}, "latency"),
        ({"hint": "none"}, "none"),
    ],
)
def test_hint(options: dict[str, Any], hint: str) -> None:
    assert resolve_options(options, TABLE).hint == hint


# --- the same as the engine, over a grid: the two cannot drift apart ----------------------


def test_limits_match_the_runner_over_a_grid() -> None:
    grid = itertools.product(
        ("sync", "async"),
        (None, 1, 7, 8),
        (None, 1.5),
        (None, 1, 3),
        ("CPU", "GPU.1", "HETERO:GPU,CPU", "MULTI:NPU,CPU", "FPGA"),
    )
    for api, niter, duration_s, nireq, device in grid:
        options = {
            "api": api,
            "niter": niter,
            "duration_s": duration_s,
            "nireq": nireq,
            "device": device,
        }
        spec = _spec(**options)
        used_nireq = effective_nireq(spec.api, spec.nireq)
        assert used_nireq == ((nireq or 2) if api == "async" else 1), options
        engine_niter, engine_duration_s, _ = runner.plan_limits(spec, used_nireq)
        resolved = resolve_options(options, TABLE)
        assert (resolved.niter, resolved.duration_s, resolved.nireq) == (
            engine_niter,
            engine_duration_s,
            used_nireq,
        ), options


def test_hint_matches_compile_config_over_a_grid() -> None:
    core = ov.Core()
    names = {mode: name for name, mode in devices._HINTS.items()}
    grid = itertools.product(
        ("sync", "async"),
        (None, "throughput", "latency", "cumulative_throughput", "none"),
        ({}, {"nstreams": "2"}, {"nthreads": 2}, {"pin": "YES"}, {"pin": "NO"}),
    )
    for api, hint, tuning in grid:
        options = {"api": api, "hint": hint, **tuning}
        spec = _spec(**options)
        config, _ = devices.compile_config(core, spec, effective_nireq(spec.api, spec.nireq))
        mode = config.get(hints.performance_mode())
        engine_hint = "none" if mode is None else names[mode]
        assert resolve_options(options, TABLE).hint == engine_hint, options
