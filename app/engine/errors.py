"""Errors the engine raises. Each names what was wrong and how to fix it.

`code` is a stable machine-readable identifier that the service copies into
`{"error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations


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


def openvino_message(exc: BaseException) -> str:
    """The meaningful line of an OpenVINO exception, without its source-location lines."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # OpenVINO prefixes messages with "Exception from src/...:NN:" lines; keep the meaningful ones.
    meaningful = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (meaningful or lines or [type(exc).__name__])[-1].rstrip(".")
