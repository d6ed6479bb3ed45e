"""Devices: what OpenVINO sees, checking a requested device, and the compile configuration.

The configuration follows benchmark_app's rules, with one change users ask for: setting
-nstreams/-nthreads/-pin without -hint does not fail; the hint is left unset ("none") and a
warning says so. What the compiled model really uses is read back in `runner`.
"""

from __future__ import annotations

from typing import Any

import openvino as ov
import openvino.properties as props
import openvino.properties.hint as hints

from app.engine.defaults import performance_hint
from app.engine.errors import ConfigError, DeviceNotFoundError
from app.engine.spec import (
    VIRTUAL_DEVICES,
    BenchmarkSpec,
    DeviceInfo,
    OptionNames,
    hardware_devices,
    option_example,
    option_name,
)

_KEY_PROPERTIES = (
    "DEVICE_ARCHITECTURE",
    "DEVICE_TYPE",
    "OPTIMIZATION_CAPABILITIES",
    "RANGE_FOR_STREAMS",
    "RANGE_FOR_ASYNC_INFER_REQUESTS",
)
# The option that sets each property compile_config passes, to name it in messages.
_PROPERTY_OPTIONS = {
    hints.performance_mode(): "hint",
    hints.num_requests(): "nireq",
    props.streams.num(): "nstreams",
    props.inference_num_threads(): "nthreads",
    hints.enable_cpu_pinning(): "pin",
    hints.inference_precision(): "infer_precision",
    props.enable_profiling(): "perf_counters",
}
_HINTS = {
    "throughput": hints.PerformanceMode.THROUGHPUT,
    "latency": hints.PerformanceMode.LATENCY,
    "cumulative_throughput": hints.PerformanceMode.CUMULATIVE_THROUGHPUT,
}


def list_devices(core: ov.Core | None = None) -> list[DeviceInfo]:
    core = core or ov.Core()
    devices = []
    for name in core.available_devices:
        properties: dict[str, str] = {}
        for key in _KEY_PROPERTIES:
            try:
                properties[key] = str(core.get_property(name, key))
            except Exception:
                continue
        devices.append(
            DeviceInfo(
                name=name,
                full_name=str(core.get_property(name, "FULL_DEVICE_NAME")),
                properties=properties,
            )
        )
    return devices


def check_device(core: ov.Core, device: str) -> None:
    available = list(core.available_devices)
    head = device.partition(":")[0]
    wanted = hardware_devices(device)
    known_heads = {d.split(".")[0] for d in available} | VIRTUAL_DEVICES
    missing = [
        d for d in wanted if d not in available and d not in {a.split(".")[0] for a in available}
    ]
    if head not in known_heads or missing:
        raise DeviceNotFoundError(
            f"Device '{device}' is not available on this host. Available: "
            f"{', '.join(available) or 'none'} (and AUTO, HETERO:..., MULTI:... over them)."
        )


def full_device_name(core: ov.Core, device: str) -> str:
    names = []
    for name in hardware_devices(device) or list(core.available_devices):
        try:
            names.append(str(core.get_property(name, "FULL_DEVICE_NAME")))
        except Exception:
            names.append(name)
    return ", ".join(names)


def _pin_value(pin: str, warnings: list[str], style: OptionNames) -> bool:
    if pin in ("NUMA", "HYBRID_AWARE"):
        warnings.append(
            f"{option_example('pin', pin, style)} is a legacy value; OpenVINO now has a yes/no "
            "ENABLE_CPU_PINNING, so pinning is enabled."
        )
    return pin != "NO"


def _value_for_device(text: str, device: str, option: str, style: OptionNames) -> str:
    """`4` for any device, or this device's entry of the per-device form `CPU:4,GPU:2`.

    benchmark_app passes per-device values to each device of a virtual one (MULTI, HETERO)
    through DEVICE_PROPERTIES; ovbench does not yet, so there the value must be one for all.
    """
    if ":" not in text:
        return text.strip()
    entries = dict(part.split(":", 1) for part in text.split(",") if ":" in part)
    head = device.partition(":")[0]
    shown = option_name(option, style)
    if head in VIRTUAL_DEVICES:
        raise ConfigError(
            f"{shown} '{text}' gives per-device values, which ovbench does not pass to the "
            f"devices of {head} yet. Give one value for all, e.g. "
            f"{option_example(option, next(iter(entries.values())), style)}."
        )
    value = entries.get(head, entries.get(head.split(".")[0]))  # GPU.1 takes GPU's too
    if value is None:
        raise ConfigError(
            f"{shown} '{text}' has no value for {head}, the device this job runs on. "
            f"Add one, e.g. {option_example(option, f'{head}:{next(iter(entries.values()))}', style)}."
        )
    return value.strip()


def compile_config(
    core: ov.Core, spec: BenchmarkSpec, nireq: int
) -> tuple[dict[str, Any], list[str]]:
    """The properties passed to compile_model, and warnings about what was applied.

    Messages name options in the spec's `option_names` style.
    """
    style = spec.option_names
    warnings: list[str] = []
    device = spec.device.partition(":")[0]
    supported = {str(p) for p in core.get_property(device, props.supported_properties())}
    config: dict[str, Any] = {}
    tuning = [
        option_name(name, style)
        for name, value in (
            ("nstreams", spec.nstreams),
            ("nthreads", spec.nthreads),
            ("pin", spec.pin),
        )
        if value
    ]
    hint_option = option_name("hint", style)

    hint = performance_hint(spec.api, spec.hint, spec.nstreams, spec.nthreads, spec.pin)
    if spec.hint is None and tuning:
        warnings.append(
            f"{', '.join(tuning)} given without {hint_option}: the performance hint is left "
            f"unset ({option_example('hint', 'none', style)}) so that your settings apply as given."
        )
    elif spec.hint is None:
        warnings.append(
            f"Performance hint was not given: {hint.upper()} is used for the {spec.api} API "
            "(benchmark_app's default)."
        )
    elif hint != "none" and tuning:
        warnings.append(
            f"{option_example('hint', hint, style)} with {', '.join(tuning)}: the explicit "
            "settings override what the hint would choose."
        )
    if hint != "none":
        if hints.performance_mode() in supported or device in VIRTUAL_DEVICES:
            config[hints.performance_mode()] = _HINTS[hint]
        else:
            warnings.append(
                f"Device {device} does not support a performance hint; "
                f"{option_example('hint', hint, style)} ignored."
            )
    if spec.nireq is not None and spec.api == "async":
        config[hints.num_requests()] = nireq
    if spec.nstreams:
        value = _value_for_device(spec.nstreams, spec.device, "nstreams", style)
        if value.upper() == "AUTO":
            value = "-1"
        if not value.lstrip("-").isdigit():
            raise ConfigError(
                f"{option_name('nstreams', style)} '{spec.nstreams}' is not a number or AUTO. "
                f"Use e.g. {option_example('nstreams', '2', style)}."
            )
        config[props.streams.num()] = int(value)
    if spec.nthreads:
        config[props.inference_num_threads()] = spec.nthreads
    if spec.pin:
        config[hints.enable_cpu_pinning()] = _pin_value(spec.pin, warnings, style)
    if spec.infer_precision:
        config[hints.inference_precision()] = _value_for_device(
            spec.infer_precision, spec.device, "infer_precision", style
        )
    if spec.perf_counters:
        config[props.enable_profiling()] = True
    if spec.batch:
        config["ALLOW_AUTO_BATCHING"] = False
    for key in list(config):
        if device not in VIRTUAL_DEVICES and key not in supported and key != "ALLOW_AUTO_BATCHING":
            option = _PROPERTY_OPTIONS.get(key)
            given = f" (set by {option_name(option, style)})" if option else ""
            raise ConfigError(
                f"Device {device} does not support {key}{given}. Leave that option out for "
                "this device."
            )
    return config, warnings
