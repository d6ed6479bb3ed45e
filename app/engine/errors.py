"""Errors the engine raises. Each names what was wrong and how to fix it.

`code` is a stable machine-readable identifier that the service copies into
`{"error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations

import re


class EngineError(Exception):
    code = "benchmark_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelReadError(EngineError):
    """The model files cannot be read: missing, truncated, unknown format."""

    code = "model_unreadable"


class DeviceNotFoundError(EngineError):
    code = "device_not_found"


class InputError(EngineError):
    """Images, .npy files, shapes, layouts or batch do not fit the model."""

    code = "invalid_input"


class DynamicShapeError(InputError):
    code = "dynamic_shape_unresolved"


class ConfigError(EngineError):
    """Run parameters that contradict each other or the device."""

    code = "invalid_config"


class CompileError(EngineError):
    code = "compile_failed"


class InferenceError(EngineError):
    code = "inference_failed"


# At most this many failed operations are quoted from a conversion report.
_MAX_FAILED_OPS = 3
_NOISE = ("Exception from", "Check '", "FrontEnd API failed with", "While validating")


def openvino_message(exc: BaseException) -> str:
    """The meaningful part of an OpenVINO exception, without its source-location lines.

    A frontend's conversion report ("Model wasn't fully converted ... Summary: ...") gives
    each failed operation with its own cause, e.g. "Conv-17: The input data tensor's rank
    has to be known (static)", and the operations no rule converts.
    """
    text = str(exc).strip()
    report = _conversion_report(text)
    if report:
        return report
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # OpenVINO prefixes messages with "Exception from src/...:NN:" lines; keep the meaningful ones.
    meaningful = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (meaningful or lines or [type(exc).__name__])[-1].rstrip(".")


def _conversion_report(text: str) -> str:
    """The causes in OpenVINO's "Model wasn't fully converted" report; "" when it is not one."""
    if "wasn't fully converted" not in text or "Summary:" not in text:
        return ""
    detail, _, summary = text.partition("Summary:")
    causes: list[str] = []
    # "-- Conv-17 with a message:" then the frontend's lines, the last one being the cause.
    for block in re.split(r"^-- ", detail, flags=re.MULTILINE)[1:]:
        head, _, body = block.partition("\n")
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        meaningful = [line for line in lines if not line.startswith(_NOISE)]
        operation = head.removesuffix("with a message:").strip()
        causes.append(f"{operation}: {meaningful[-1].rstrip('.')}" if meaningful else operation)
    more = len(causes) - _MAX_FAILED_OPS
    causes = causes[:_MAX_FAILED_OPS] + ([f"and {more} more"] if more > 0 else [])
    # "-- No conversion rule found for operations: a, b": operations nothing converts.
    causes += [
        line.strip().removeprefix("-- ").rstrip(".")
        for line in summary.splitlines()
        if line.strip().startswith("-- No conversion rule")
    ]
    return "; ".join(causes)
