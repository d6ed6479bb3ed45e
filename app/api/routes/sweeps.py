"""`/sweeps`: run a grid of a model's run options as jobs; read the table, the best point
under the constraints and the Pareto front (JSON, or CSV); list, cancel, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import (
    TOTAL_COUNT_HEADER,
    DispatcherDep,
    JobJsonDep,
    SettingsDep,
    StoreDep,
    error_responses,
)
from app.api.routes.jobs import read_json_body
from app.api.sweep_schemas import SweepRead
from app.engine.sweep import SweepStatus
from app.errors import UnsupportedMediaError
from app.services import sweeps as sweep_service

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

_CSV = {"text/csv": {"schema": {"type": "string"}}}


@router.post(
    "",
    status_code=202,
    response_model=SweepRead,
    responses={
        202: {
            "description": "Queued: the points, the estimate; Location has the sweep's URL",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **error_responses(400, 404, 413, 415, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SweepCreate"}}
            },
        }
    },
    summary="Sweep a grid of run options (batch, nstreams, nireq, hint, ...) over one model",
)
async def create_sweep(
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
) -> SweepRead:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("application/json"):
        raise UnsupportedMediaError(
            "Send SweepCreate as application/json", details={"content_type": content_type}
        )
    data = await read_json_body(request)
    row, _ = await run_in_threadpool(sweep_service.create_sweep, store, dispatcher, settings, data)
    response.headers["Location"] = f"/sweeps/{row.id}"
    return await run_in_threadpool(sweep_service.sweep_read, store, row)


@router.get(
    "",
    response_model=list[SweepRead],
    responses={200: {"headers": TOTAL_COUNT_HEADER}, **error_responses(422)},
    summary="List sweeps, newest first (X-Total-Count: how many match)",
)
def list_sweeps(
    response: Response,
    store: StoreDep,
    status: SweepStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> list[SweepRead]:
    sweeps, total = sweep_service.list_sweeps(store, status, limit, offset)
    response.headers["X-Total-Count"] = str(total)
    return sweeps


@router.get(
    "/{sweep_id}",
    response_model=SweepRead,
    responses={200: {"content": _CSV}, **error_responses(404, 422)},
    summary="A sweep: progress, the points' table, the best point, the Pareto front "
    "(format=csv: the table as CSV)",
)
def read_sweep(
    sweep_id: str,
    store: StoreDep,
    dispatcher: DispatcherDep,
    format: Literal["json", "csv"] = "json",
) -> SweepRead | Response:
    read = sweep_service.read_sweep(store, dispatcher, sweep_id)
    if format == "csv":
        return Response(
            sweep_service.sweep_csv(read),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="sweep-{sweep_id}.csv"'},
        )
    return read


@router.post(
    "/{sweep_id}/cancel",
    response_model=SweepRead,
    responses=error_responses(404, 409, 422),
    summary="Cancel every point not yet finished (a running one within 2 s)",
)
def cancel_sweep(sweep_id: str, store: StoreDep, dispatcher: DispatcherDep) -> SweepRead:
    return sweep_service.cancel_sweep(store, dispatcher, sweep_id)


@router.delete(
    "/{sweep_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409, 422),
    summary="Delete a finished sweep with its points' jobs (409 while it runs)",
)
def delete_sweep(sweep_id: str, store: StoreDep, cache: JobJsonDep) -> Response:
    for job_id in store.sweeps.delete(sweep_id):
        cache.discard(job_id)
    return Response(status_code=204)
