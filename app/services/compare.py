"""What `GET /compare` means: two jobs' results, candidate against baseline (engine.compare).

Both jobs must have succeeded: a queued or running job has no result yet, and a failed or
cancelled one has none to trust (409 naming the job and its status). Results stored before
repeats and provenance existed still compare, by their top-level figures.
"""

from __future__ import annotations

from app.engine.compare import Comparison, compare
from app.engine.spec import BenchmarkResult
from app.errors import ConflictError
from app.store import Store


def _result(store: Store, job_id: str, role: str) -> BenchmarkResult:
    row = store.jobs.get(job_id)  # 404 job_not_found
    if row.status != "succeeded" or row.result is None:
        raise ConflictError(
            f"The {role} job {job_id} is {row.status}: only succeeded jobs can be compared"
            + (" (wait for it to finish)" if row.status in ("queued", "running") else ""),
            code="job_not_comparable",
            details={"job_id": job_id, "status": row.status},
        )
    return BenchmarkResult.model_validate(row.result)


def compare_jobs(store: Store, baseline_id: str, candidate_id: str, threshold: float) -> Comparison:
    baseline = _result(store, baseline_id, "baseline")
    candidate = _result(store, candidate_id, "candidate")
    return compare(
        baseline, candidate, threshold, baseline_id=baseline_id, candidate_id=candidate_id
    )
