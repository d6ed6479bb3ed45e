"""`/compare`: one job's result against another's, per metric, with intervals and a verdict."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import StoreDep, cached_read_responses
from app.engine.compare import Comparison
from app.services.compare import compare_jobs

router = APIRouter(tags=["compare"])


@router.get(
    "/compare",
    response_model=Comparison,
    responses=cached_read_responses(404, 409, 422),
    summary="Compare two succeeded jobs: ratios, 95% intervals, verdicts, what differs",
)
def compare_results(
    store: StoreDep,
    baseline: Annotated[str, Query(max_length=64, description="The baseline job's id")],
    candidate: Annotated[str, Query(max_length=64, description="The candidate job's id")],
    threshold: Annotated[
        float,
        Query(
            ge=0,
            lt=1,
            description="Smallest relative change that counts as improved or regressed (0.02: 2%)",
        ),
    ] = 0.02,
) -> Comparison:
    return compare_jobs(store, baseline, candidate, threshold)
