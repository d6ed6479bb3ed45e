"""`run_benchmark`: one benchmark from spec to result, in benchmark_app's order of steps.

read model -> resolve shapes/layouts (reshape) -> pre-processing -> compile -> read back the
effective configuration -> create requests and fill inputs -> one warm-up inference (reported,
not counted) -> the sync or async loop -> statistics.

Around benchmark_app's steps, outside the measured loops: the warm-up inference's outputs are
checked (`outputs`), the host guard samples the host from the start of the job and waits for a
quiet one (`host_guard`), `repeats` loops run back to back on the one compiled model
(`measure`) while a recorder reads the CPU frequency and temperature once a second, and the
runs are summed up (`aggregate`, `steady`, `verdict`) with the provenance of the whole.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import threading
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.properties as props

from app.engine import (
    aggregate,
    cpu_usage,
    devices,
    host_guard,
    host_probe,
    inputs,
    loops,
    measure,
    outputs,
    provenance,
    verdict,
)
from app.engine import model as model_mod
from app.engine.defaults import effective_nireq, planned_limits
from app.engine.errors import (
    CompileError,
    ConfigError,
    EngineError,
    InferenceError,
    openvino_message,
)
from app.engine.integrity import HostProvenance
from app.engine.spec import (
    BenchmarkResult,
    BenchmarkSpec,
    EffectiveConfig,
    InputFill,
    OptionNames,
    PerfCounter,
    option_example,
    option_name,
)

logger = logging.getLogger(__name__)


def ovbench_version() -> str:
    try:
        return metadata.version("ovbench")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "0+unknown"


def plan_limits(spec: BenchmarkSpec, nireq: int) -> tuple[int | None, float | None, list[str]]:
    """(niter, duration_s, warnings) exactly as benchmark_app bounds a run (defaults.py's rules)."""
    niter, duration_s = planned_limits(
        spec.api, spec.niter, spec.duration_s, nireq, spec.device, spec.default_duration_s
    )
    warns: list[str] = []
    if spec.duration_s is None and spec.niter is None:
        niter_option = option_name("niter", spec.option_names)
        duration_option = option_name("duration_s", spec.option_names)
        warns.append(
            f"Neither {niter_option} nor {duration_option} given: running for the device "
            f"default of {duration_s:g} s."
        )
    if niter != spec.niter:
        warns.append(
            f"Number of iterations was aligned by request number from {spec.niter} to {niter} "
            f"using number of requests {nireq}."
        )
    return niter, duration_s, warns


def idle_streams_warning(nireq: int, nstreams: int, style: OptionNames) -> str:
    return (
        f"{nireq} infer requests for {nstreams} streams: some streams stay idle. "
        f"Use {option_example('nireq', nstreams, style)} or more for full throughput."
    )


def capped_streams_warning(asked: int, used: int, nireq: int, style: OptionNames) -> str:
    return (
        f"{option_example('nstreams', asked, style)} asked, but the device runs {used} "
        f"stream{'s' if used != 1 else ''}: it caps its streams at the {nireq} infer "
        f"request{'s' if nireq != 1 else ''} (PERFORMANCE_HINT_NUM_REQUESTS). Use "
        f"{option_example('nireq', asked, style)} or more to run {asked} streams."
    )


def _note(warns: list[str], new: list[str]) -> None:
    for warning in new:
        logger.warning("%s", warning)
    warns.extend(new)


def start_line(api: str, niter: int | None, duration_s: float | None, nireq: int) -> str:
    """The seed's line: `Start inference asynchronously (10 s duration, 8 inference requests in parallel)`."""
    limits = []
    if duration_s:
        limits.append(f"{duration_s:g} s duration")
    if niter:
        limits.append(f"{niter} iterations")
    if api == "async":
        limits.append(f"{nireq} inference requests in parallel")
    return f"Start inference {api}hronously ({', '.join(limits)})"


def host_facts(host: HostProvenance | None = None) -> dict[str, str | int]:
    """The host as a result records it: name, CPU, logical CPUs, OS, Python; from `host` (a
    run's provenance, already probed) or probed now."""
    host = host or host_probe.probe_host()
    return {
        "hostname": host.hostname,
        "cpu": host.cpu_model,
        "logical_cpus": host.logical_cpus,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def property_text(value: object) -> str:
    """A property value as users write it: `f32`, `THROUGHPUT`, `True`, `2`."""
    if isinstance(value, ov.Type):
        return value.get_type_name()
    name = getattr(value, "name", None)
    if isinstance(name, str) and type(value).__module__.startswith("openvino"):
        return name
    return str(value)


def _read_back(compiled: ov.CompiledModel) -> dict[str, str]:
    values: dict[str, str] = {}
    for key in compiled.get_property(props.supported_properties()):
        name = str(key)
        if name == "SUPPORTED_PROPERTIES":
            continue
        try:
            values[name] = property_text(compiled.get_property(name))
        except Exception:
            continue
    return values


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _effective(
    readback: dict[str, str], requested: dict[str, object], nireq: int, batch: int
) -> EffectiveConfig:
    pinning = readback.get("ENABLE_CPU_PINNING")
    hint = readback.get("PERFORMANCE_HINT")
    return EffectiveConfig(
        hint=hint.lower() if hint else None,
        nstreams=_int_or_none(readback.get("NUM_STREAMS")),
        nireq=nireq,
        nthreads=_int_or_none(readback.get("INFERENCE_NUM_THREADS")),
        pin=None if pinning is None else pinning in ("True", "YES", "1"),
        inference_precision=readback.get("INFERENCE_PRECISION_HINT"),
        batch_size=batch,
        cpus=sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        requested={str(k): property_text(v) for k, v in requested.items()},
        properties=readback,
    )


def _request_counters(request: ov.InferRequest) -> list[PerfCounter]:
    """Per-node times of the request's last inference (benchmark_app reads each request's
    `profiling_info` after the loop, in the requests' order)."""
    return [
        PerfCounter(
            node_name=info.node_name,
            node_type=info.node_type,
            exec_type=info.exec_type,
            status=str(info.status).rsplit(".", 1)[-1],
            real_time_ms=info.real_time.total_seconds() * 1000,
            cpu_time_ms=info.cpu_time.total_seconds() * 1000,
        )
        for info in request.profiling_info
    ]


def _average_counters(per_request: list[list[PerfCounter]]) -> list[PerfCounter]:
    """Each node's times averaged over the requests (benchmark_app's average_counters): in the
    order nodes first appear, summed by node name and divided by the number of requests."""
    totals: dict[str, PerfCounter] = {}
    for counters in per_request:
        for counter in counters:
            real_ms = counter.real_time_ms / len(per_request)
            cpu_ms = counter.cpu_time_ms / len(per_request)
            current = totals.get(counter.node_name)
            if current is None:
                totals[counter.node_name] = counter.model_copy(
                    update={"real_time_ms": real_ms, "cpu_time_ms": cpu_ms}
                )
            else:
                current.real_time_ms += real_ms
                current.cpu_time_ms += cpu_ms
    return list(totals.values())


def set_request_inputs(
    request: ov.InferRequest, arrays: dict[str, np.ndarray], dynamic: bool
) -> None:
    """Copy the arrays into the request's own input tensors (benchmark_app's way)."""
    for name, array in arrays.items():
        tensor = request.get_tensor(name)
        if dynamic:
            tensor.shape = list(array.shape)
        if len(tensor.shape):
            tensor.data[:] = array
        else:
            tensor.data.flat[:] = array


def _core(spec: BenchmarkSpec) -> ov.Core:
    core = ov.Core()
    for library in spec.extension_paths:
        try:
            core.add_extension(library)
        except Exception as exc:
            option = option_name("extension_paths", spec.option_names)
            raise ConfigError(
                f"Cannot load extension library '{library}' ({option}): {openvino_message(exc)}"
            ) from exc
    if spec.gpu_config_path:
        if not Path(spec.gpu_config_path).is_file():
            option = option_name("gpu_config_path", spec.option_names)
            raise ConfigError(f"GPU config file '{spec.gpu_config_path}' ({option}) not found.")
        if "GPU" in spec.device:
            core.set_property("GPU", {"CONFIG_FILE": spec.gpu_config_path})
    if spec.cache_dir:
        core.set_property({"CACHE_DIR": spec.cache_dir})
    return core


def run_benchmark(
    spec: BenchmarkSpec,
    on_progress: loops.ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> BenchmarkResult:
    """Run one benchmark. Raises EngineError (with a user-facing message) for bad input.

    `on_progress` is called from the measuring thread about twice a second: keep it cheap.
    Setting `cancel` stops the run within a second; the result then has status "cancelled".
    """
    started_at = dt.datetime.now(dt.UTC).isoformat()
    job_sample = cpu_usage.sample()  # the host guard's window starts here
    model_path = Path(spec.model_path)
    model_mod.model_files(model_path, spec.shown_names)
    files = inputs.collect_input_files(spec.input_paths)
    core = _core(spec)
    devices.check_device(core, spec.device)
    nireq = effective_nireq(spec.api, spec.nireq)
    niter, duration_s, limit_warns = plan_limits(spec, nireq)
    warns: list[str] = []
    _note(warns, limit_warns)

    t0 = time.perf_counter()
    ov_model = model_mod.read_model(
        core, model_path, shown_names=spec.shown_names, option_names=spec.option_names
    )
    read_model_ms = (time.perf_counter() - t0) * 1000
    logger.info("Read model took %.2f ms", read_model_ms)
    description = model_mod.describe(ov_model, model_path)

    resolved = model_mod.resolve_inputs(
        ov_model, spec.shape, spec.data_shape, spec.layout, spec.batch, spec.option_names
    )
    slots, dynamic = resolved.slots, resolved.dynamic
    _note(warns, resolved.warnings)
    batch = model_mod.batch_size(slots, spec.option_names)
    ov_model = model_mod.apply_preprocessing(ov_model, slots)

    config, config_warns = devices.compile_config(core, spec, nireq)
    _note(warns, config_warns)
    t0 = time.perf_counter()
    try:
        compiled = core.compile_model(ov_model, spec.device, config)
    except Exception as exc:
        raise CompileError(
            f"Compiling the model for {spec.device} failed: {openvino_message(exc)}"
        ) from exc
    compile_ms = (time.perf_counter() - t0) * 1000
    logger.info("Compile model took %.2f ms", compile_ms)
    readback = _read_back(compiled)
    effective = _effective(readback, config, nireq, batch)
    if spec.api == "async" and effective.nstreams and effective.nstreams > nireq:
        _note(warns, [idle_streams_warning(nireq, effective.nstreams, spec.option_names)])
    asked = _int_or_none(effective.requested.get("NUM_STREAMS"))
    if asked and asked > 0 and effective.nstreams is not None and effective.nstreams < asked:
        _note(
            warns,
            [capped_streams_warning(asked, effective.nstreams, nireq, spec.option_names)],
        )

    per_request, used, fill_warns = inputs.plan_and_fill(
        slots, files, nireq, spec.rgb, spec.option_names
    )
    _note(warns, fill_warns)
    origin = provenance.build(
        spec,
        description,
        [*files.images, *files.arrays.values(), *files.expected.values()],
        ovbench_version(),
        ov.get_version(),
        {"niter": niter, "duration_s": duration_s, "nireq": nireq},
    )
    logger.info("%s", start_line(spec.api, niter, duration_s, nireq))
    plan = measure.MeasurePlan(spec, niter, duration_s, batch, on_progress, cancel)
    try:
        if spec.api == "sync":
            request = compiled.create_infer_request()
            requests = [request]
            set_request_inputs(request, per_request[0], dynamic)
            first_ms = loops.first_inference_sync(request)
            checked = request
        else:
            queue = ov.AsyncInferQueue(compiled, nireq)
            requests = [queue[i] for i in range(len(queue))]
            for request, arrays in zip(requests, per_request, strict=True):
                set_request_inputs(request, arrays, dynamic)
            first_ms, first_id = loops.first_inference_async(queue)
            checked = queue[first_id]  # a fresh queue's first idle request: 0, the first batch
        logger.info("First inference took %.2f ms", first_ms)
        checked_outputs, output_warns = outputs.check(
            checked, compiled.outputs, files.expected, spec.rtol, spec.atol
        )
        _note(warns, output_warns)
        guard_start = host_guard.guard_before_run(spec.guard, job_sample, cancel)
        recorder = host_guard.HostRecorder()
        recorder.start()
        try:
            if spec.api == "sync":
                runs = plan.repeat(
                    lambda report: loops.run_sync(request, *plan.limits, report, cancel)
                )
            else:
                runs = plan.repeat(
                    lambda report: loops.run_async(queue, *plan.limits, report, cancel)
                )
        finally:
            frequency, temperature = recorder.stop()
    except EngineError:
        raise
    except Exception as exc:
        raise InferenceError(f"Inference failed on {spec.device}: {openvino_message(exc)}") from exc
    figures = [run.figures for run in runs]
    top = aggregate.median_run_index([run.throughput_fps for run in figures])
    guard = host_guard.report(spec.guard, guard_start, frequency, temperature, spec.stability)
    _note(warns, host_guard.guard_warnings(guard))
    for index, run in enumerate(figures):
        prefix = f"Run {index + 1} of {len(figures)}: " if len(figures) > 1 else ""
        _note(warns, [prefix + text for text in cpu_usage.busy_host_warnings(run.cpu_usage)])
    repeats = aggregate.aggregate(figures)
    stability = verdict.judge(
        figures, repeats, spec.stability, throttled=guard.throttled, ran_busy=guard_start.ran_busy
    )
    shown = figures[top]
    if shown.steady_state.warning and len(figures) < verdict.MIN_REPEATS_FOR_SPREAD:
        _note(warns, [shown.steady_state.warning])

    per_request_counters = (
        [_request_counters(request) for request in requests] if spec.perf_counters else None
    )
    perf = None if per_request_counters is None else _average_counters(per_request_counters)
    result = BenchmarkResult(
        status="cancelled" if any(run.cancelled for run in runs) else "completed",
        api=spec.api,
        device=spec.device,
        device_full_name=devices.full_device_name(core, spec.device),
        openvino_version=origin.openvino_version,
        ovbench_version=origin.ovbench_version,
        started_at=started_at,
        throughput_fps=shown.throughput_fps,
        latency_ms=shown.latency_ms,
        iterations=shown.iterations,
        duration_ms=shown.duration_ms,
        first_inference_ms=first_ms,
        read_model_ms=read_model_ms,
        reshape_ms=resolved.reshape_ms,
        compile_ms=compile_ms,
        limits={"niter": niter, "duration_s": duration_s, "nireq": nireq},
        config=effective,
        model=description,
        inputs=[
            InputFill(
                input=slot.name,
                source="images"
                if slot.kind == "image"
                else "npy"
                if slot.kind == "npy"
                else "random",
                files=[p.name for p in used[slot.name]],
                shape=slot.shape,
                element_type=slot.element_type.get_type_name(),
            )
            for slot in slots
        ],
        timeline=shown.timeline,
        perf_counters=perf,
        perf_counters_per_request=per_request_counters,
        warnings=warns,
        host=host_facts(origin.host),
        cpu_usage=shown.cpu_usage,
        energy=shown.energy,
        runs=figures,
        aggregate=repeats,
        steady_state=shown.steady_state,
        stability=stability,
        host_guard=guard,
        provenance=origin,
        outputs=checked_outputs,
    )
    del compiled
    return result
