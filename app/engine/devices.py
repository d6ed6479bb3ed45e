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

from app.engine.errors import ConfigError, DeviceNotFoundError
from app.engine.spec import BenchmarkSpec, DeviceInfo

VIRTUAL_DEVICES = frozenset({"AUTO", "HETERO", "MULTI", "BATCH"})
_KEY_PROPERTIES = (
    "DEVICE_ARCHITECTURE",
    "DEVICE_TYPE",
    "OPTIMIZATION_CAPABILITIES",
    "RANGE_FOR_STREAMS",
    "RANGE_FOR_ASYNC_INFER_REQUESTS",
)
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


def hardware_devices(device: str) -> list[str]:
    """`HETERO:GPU,CPU` -> ['GPU', 'CPU']; `CPU` -> ['CPU']; `AUTO` -> []."""
    head, _, tail = device.partition(":")
    if head in VIRTUAL_DEVICES:
        return [d.lstrip("-").split("(")[0] for d in tail.split(",") if d.strip()]
    return [device]


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


def _pin_value(pin: str, warnings: list[str]) -> bool:
    if pin in ("NUMA", "HYBRID_AWARE"):
        warnings.append(
            f"-pin {pin} is a legacy value; OpenVINO now has a yes/no ENABLE_CPU_PINNING, "
            "so pinning is enabled."
        )
    return pin != "NO"


def compile_config(
    core: ov.Core, spec: BenchmarkSpec, nireq: int
) -> tuple[dict[str, Any], list[str]]:
    """The properties passed to compile_model, and warnings about what was applied."""
    warnings: list[str] = []
    device = spec.device.partition(":")[0]
    supported = {str(p) for p in core.get_property(device, props.supported_properties())}
    config: dict[str, Any] = {}
    tuning = [
        name
        for name, value in (
            ("-nstreams", spec.nstreams),
            ("-nthreads", spec.nthreads),
            ("-pin", spec.pin),
        )
        if value
    ]

    hint = spec.hint
    if hint is None and tuning:
        hint = "none"
        warnings.append(
            f"{', '.join(tuning)} given without -hint: the performance hint is left unset (-hint none) "
            "so that your settings apply as given."
        )
    elif hint is None:
        hint = "latency" if spec.api == "sync" else "throughput"
        warnings.append(
            f"Performance hint was not given: {hint.upper()} is used for the {spec.api} API "
            "(benchmark_app's default)."
        )
    elif hint != "none" and tuning:
        warnings.append(
            f"-hint {hint} with {', '.join(tuning)}: the explicit settings override what the hint would choose."
        )
    if hint != "none":
        if hints.performance_mode() in supported or device in VIRTUAL_DEVICES:
            config[hints.performance_mode()] = _HINTS[hint]
        else:
            warnings.append(
                f"Device {device} does not support a performance hint; -hint {hint} ignored."
            )
    if spec.nireq is not None and spec.api == "async":
        config[hints.num_requests()] = nireq
    if spec.nstreams:
        value = spec.nstreams.split(":")[-1]
        if value.upper() == "AUTO":
            value = "-1"
        if not value.lstrip("-").isdigit():
            raise ConfigError(
                f"-nstreams '{spec.nstreams}' is not a number or AUTO. Use e.g. -nstreams 2."
            )
        config[props.streams.num()] = int(value)
    if spec.nthreads:
        config[props.inference_num_threads()] = spec.nthreads
    if spec.pin:
        config[hints.enable_cpu_pinning()] = _pin_value(spec.pin, warnings)
    if spec.infer_precision:
        config[hints.inference_precision()] = spec.infer_precision
    if spec.perf_counters:
        config[props.enable_profiling()] = True
    if spec.batch:
        config["ALLOW_AUTO_BATCHING"] = False
    for key in list(config):
        if device not in VIRTUAL_DEVICES and key not in supported and key != "ALLOW_AUTO_BATCHING":
            raise ConfigError(
                f"Device {device} does not support {key}. Leave that option out for this device."
            )
    return config, warnings
