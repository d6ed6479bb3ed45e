"""`ovbench run --from-result result.json`: run a saved result's benchmark again, here.

The run options come from the result's `provenance.spec` (every option as the engine resolved
it, so the rerun does not depend on today's defaults). The model and inputs are the files the
result names when they exist on this machine; `-m` and `-i` name them otherwise (a result from
the service names the server's files). Options given on the command line win over the saved
ones. A saved job (`GET /jobs/{id}` JSON) works too: its `result` is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.engine.spec import BenchmarkSpec

# Spec fields a rerun does not take from another machine's result: where its files were.
_FILE_FIELDS = frozenset(
    {"model_path", "input_paths", "extension_paths", "gpu_config_path", "cache_dir"}
)


class FromResultError(ValueError):
    """The saved result cannot be rerun as it is; the message says what to give instead."""


def read_json(path: Path, error: type[Exception]) -> Any:
    """The JSON in a file the user named; `error` with what went wrong (unreadable, not JSON)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"Cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise error(f"{path} is not JSON: {exc}") from exc


def load_result(path: Path) -> dict[str, Any]:
    """The result JSON in `path` (a BenchmarkResult, or a job whose `result` it is)."""
    data = read_json(path, FromResultError)
    if isinstance(data, dict) and "provenance" not in data and isinstance(data.get("result"), dict):
        data = data["result"]
    if not isinstance(data, dict) or not isinstance(data.get("provenance"), dict):
        raise FromResultError(
            f"{path} has no provenance (results from before provenance was recorded have "
            "none): save one with `ovbench run --json`, or GET /jobs/{id}"
        )
    return data


def spec_from_result(
    result: Mapping[str, Any],
    overrides: Mapping[str, Any],
    model: str | None,
    inputs: list[str],
) -> BenchmarkSpec:
    """The spec of a rerun: the saved options, the files here, the command line's overrides."""
    saved: dict[str, Any] = dict(result["provenance"].get("spec") or {})
    options = {
        name: value
        for name, value in saved.items()
        if name in BenchmarkSpec.model_fields and name not in _FILE_FIELDS
    }
    options.update(overrides)
    model_path = model or saved.get("model_path")
    if not model_path or not Path(model_path).is_file():
        raise FromResultError(
            f"The result's model {saved.get('model_path')!r} is not on this machine: give the "
            f"model with -m (the result's model sha256 is "
            f"{result['provenance'].get('model_sha256')})"
        )
    input_paths = inputs or list(saved.get("input_paths") or [])
    missing = [path for path in input_paths if not Path(path).exists()]
    if missing and not inputs:
        raise FromResultError(
            f"The result's inputs {missing} are not on this machine: give them with -i "
            f"(the result's dataset sha256 is {result['provenance'].get('dataset_sha256')})"
        )
    for name in ("extension_paths", "gpu_config_path", "cache_dir"):
        if name in overrides:
            options[name] = overrides[name]
        elif saved.get(name) and name != "cache_dir":
            raise FromResultError(
                f"The result used {name} {saved[name]!r}: give it again on the command line"
            )
    try:
        return BenchmarkSpec(model_path=model_path, input_paths=input_paths, **options)
    except ValueError as exc:
        raise FromResultError(f"The saved options do not make a run: {exc}") from exc


def model_changed(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Warnings when the rerun's model or inputs are not the saved result's (by sha256)."""
    warnings = []
    for field, what in (("model_sha256", "model differs"), ("dataset_sha256", "inputs differ")):
        before, after = saved["provenance"].get(field), now.get(field)
        if before != after:
            warnings.append(
                f"The {what} from the saved result's (sha256 {before} then, {after} now): "
                "the figures compare different work."
            )
    return warnings
