"""One run, from its parameters to its outcome: the same rules for the local worker and for
a fleet agent's run process.

Engine errors become `failed` with the engine's code and message; a model or dataset that
vanished, the service's; parameters the engine refuses, `invalid_params`; anything else
`internal_error` (logged with its traceback). A run that stopped on its cancel event is
`cancelled` with its partial result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pydantic

from app.engine.defaults import resolve_options
from app.engine.errors import EngineError
from app.engine.spec import BenchmarkSpec, Progress
from app.errors import ServiceError
from app.faults import fault_point

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: Literal["succeeded", "failed", "cancelled"]
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None


def job_provenance(
    params: Mapping[str, Any], default_duration_s: Mapping[str, float]
) -> dict[str, Any]:
    """A job's parameters for its result's provenance: as submitted and as resolved (every
    default filled in, the same values as the job's `resolved_params`)."""
    resolved = resolve_options(params, default_duration_s).model_dump(mode="json")
    resolved.update(
        model_id=params.get("model_id"),
        dataset_id=params.get("dataset_id"),
        extensions=list(params.get("extensions") or []),
        gpu_config=params.get("gpu_config"),
    )
    return {"submitted": dict(params), "resolved": resolved}


def run_to_outcome(
    build_spec: Callable[[], BenchmarkSpec],
    on_progress: Callable[[Progress], None],
    cancel: Any,
    job_id: str = "",
    job: Mapping[str, Any] | None = None,
) -> Outcome:
    """Build the spec, run it, and say how it ended; never raises for a bad job.

    `job` (`job_provenance`) goes into the result's provenance."""
    from app.engine.runner import run_benchmark  # OpenVINO: only where a run happens

    try:
        spec = build_spec()
        fault_point("hang_in_run")
        result = run_benchmark(spec, on_progress=on_progress, cancel=cancel)
    except (EngineError, ServiceError) as exc:
        return Outcome("failed", error_code=exc.code, error_message=exc.message)
    except pydantic.ValidationError as exc:
        return Outcome(
            "failed", error_code="invalid_params", error_message=f"Invalid job parameters: {exc}"
        )
    except Exception as exc:
        logger.exception("job %s: unexpected error", job_id)
        return Outcome(
            "failed",
            error_code="internal_error",
            error_message=f"Unexpected error in the worker: {type(exc).__name__}: {exc}",
        )
    if job is not None and result.provenance is not None:
        result.provenance.job = dict(job)
    data = result.model_dump(mode="json")
    del result  # the run's objects go now, not when the caller returns
    return Outcome("cancelled" if data.get("status") == "cancelled" else "succeeded", data)
