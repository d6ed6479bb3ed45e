"""`/jobs`: submit (JSON, or one multipart request with files), read, list, cancel, delete.

POST /jobs takes an optional `Idempotency-Key` header (1-255 visible ASCII characters): the
key is stored with the job (unique), so repeating the request (a retry after a timeout or a
dropped connection) returns the same job, 202 with `Idempotent-Replayed: true`, instead of
queueing another. The same key with a different request is 422 `idempotency_key_reused`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import (
    DispatcherDep,
    JobJsonDep,
    SettingsDep,
    StoreDep,
    cached_read_responses,
    error_responses,
)
from app.api.job_views import job_read, jobs_json
from app.api.schemas import JobCreate, JobRead, JobStatus
from app.api.uploads import UploadedForm, is_multipart, read_multipart
from app.dispatch import Dispatcher
from app.errors import (
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaError,
    ValidationError,
)
from app.services import jobs as job_service
from app.services.jobs import (
    Submitted,
    submit_job,
    submit_with_files,
    validate_job,
)
from app.services.reports import jobs_table
from app.settings import Settings
from app.store import Store
from app.store.tables import JobRow

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_JSON_BYTES = 1 << 20

# JobCreate fields that a form cannot carry as one text value: give them in `params`.
_JSON_ONLY_FIELDS = ("extensions", "host_labels")
_FORM_KEYWORDS = (
    "type", "enum", "description", "default", "minimum", "maximum", "exclusiveMinimum",
    "minLength", "maxLength", "pattern", "title",
)  # fmt: skip


def _form_field(schema: dict[str, Any]) -> dict[str, Any]:
    """A JobCreate property as a form field: its non-null type, its limits and description."""
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    merged = {**schema, **(branches[0] if len(branches) == 1 else {})}
    if len(branches) > 1:  # nstreams: a number or text; a form sends text
        merged["type"] = "string"
    return {key: value for key, value in merged.items() if key in _FORM_KEYWORDS}


def _multipart_body() -> dict[str, Any]:
    job = JobCreate.model_json_schema()
    fields = {
        name: _form_field(prop)
        for name, prop in job["properties"].items()
        if name not in _JSON_ONLY_FIELDS
    }
    return {
        "type": "object",
        "description": (
            "One-shot: the model files, the inputs and JobCreate's fields as form fields (or a "
            "`params` field holding JobCreate JSON, which `extensions` and `host_labels` need). "
            "Give the model as files or as model_id; the inputs as files or as dataset_id."
        ),
        "properties": {
            "model": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "Model files (.xml + .bin, .onnx, ...)",
            },
            "inputs": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "Images and .npy files (also accepted as `images`)",
            },
            "params": {"type": "string", "description": "JobCreate as JSON"},
            **fields,
        },
    }


JOB_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
            "multipart/form-data": {"schema": _multipart_body()},
        },
    }
}


def _job_reads(store: Store, rows: Sequence[JobRow], settings: Settings) -> list[JobRead]:
    positions = store.jobs.queue_positions(rows)
    deliveries = store.deliveries.for_subjects([row.id for row in rows])
    return [
        job_read(
            row, positions.get(row.id), settings.default_duration_s, deliveries.get(row.id, ())
        )
        for row in rows
    ]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[!-~]{1,255}$",
        description=(
            "Makes the submission safe to retry: the same key returns the job it created "
            "(202, `Idempotent-Replayed: true`); the same key with another body is 422"
        ),
    ),
]


def _answer(store: Store, submitted: Submitted, response: Response, settings: Settings) -> JobRead:
    response.headers["Location"] = f"/jobs/{submitted.job.id}"
    if not submitted.created:
        response.headers["Idempotent-Replayed"] = "true"
    return _job_reads(store, [submitted.job], settings)[0]


async def read_json_body(request: Request) -> Any:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise PayloadTooLargeError(f"JSON body larger than {MAX_JSON_BYTES} bytes")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise BadRequestError(f"The body is not valid JSON: {exc}", code="invalid_json") from exc


def _form_params(form: UploadedForm) -> dict[str, Any]:
    params: dict[str, Any] = {}
    raw = form.single("params")
    if raw is not None:
        try:
            params = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ValidationError(
                f"Form field 'params' is not JSON: {exc}", code="invalid_json"
            ) from exc
        if not isinstance(params, dict):
            raise ValidationError("Form field 'params' must be a JSON object", code="invalid_json")
    for name in form.fields:
        if name != "params":
            params[name] = form.single(name)
    return params


def _submit_form(
    store: Store,
    dispatcher: Dispatcher,
    settings: Settings,
    form: UploadedForm,
    idempotency_key: str | None,
) -> Submitted:
    return submit_with_files(
        store, dispatcher, settings, _form_params(form), form.files, idempotency_key
    )


@router.post(
    "",
    status_code=202,
    response_model=JobRead,
    responses={
        202: {
            "description": "Queued (or, for a repeated Idempotency-Key, the job it created); "
            "Location has the job's URL",
            "headers": {
                "Location": {"schema": {"type": "string"}},
                "Idempotent-Replayed": {
                    "description": "`true` when an Idempotency-Key repeat returned the job "
                    "the first request created (nothing new was queued)",
                    "schema": {"type": "string", "enum": ["true"]},
                },
            },
        },
        **error_responses(400, 403, 404, 413, 415, 422, 503, 507),
    },
    openapi_extra=JOB_CREATE_BODY,
    summary="Queue a benchmark (JSON JobCreate, or one multipart request with the files)",
)
async def create_job(
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    idempotency_key: IdempotencyKey = None,
) -> JobRead:
    content_type = request.headers.get("content-type", "")
    if is_multipart(request):
        form = await read_multipart(request, store.blobs, settings.max_upload_bytes)
        try:
            submitted = await run_in_threadpool(
                _submit_form, store, dispatcher, settings, form, idempotency_key
            )
        finally:
            form.discard()
    else:
        if not content_type.lower().startswith("application/json"):
            raise UnsupportedMediaError(
                "Send JobCreate as application/json, or the files and fields as "
                "multipart/form-data",
                details={"content_type": content_type},
            )
        data = await read_json_body(request)
        # placed (device checked) by submit_job
        job = await run_in_threadpool(validate_job, data, store, settings, None)
        submitted = await run_in_threadpool(
            submit_job, store, dispatcher, settings, job, idempotency_key
        )
    return await run_in_threadpool(_answer, store, submitted, response, settings)


@router.post(
    "/{job_id}/rerun",
    status_code=202,
    response_model=JobRead,
    responses={
        202: {
            "description": "The rerun is queued; Location has its URL",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **error_responses(403, 404, 422, 503),
    },
    summary="Queue the job again with the same resolved parameters (records rerun_of)",
)
def rerun_job(
    job_id: str,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
) -> JobRead:
    rerun = job_service.rerun_job(store, dispatcher, settings, job_id)
    return _answer(store, rerun, response, settings)


@router.get(
    "",
    response_model=list[JobRead],
    responses=cached_read_responses(
        422,
        total_count=True,
        ok={
            "description": "The page of jobs",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    ),
    summary="List jobs, newest first (format=csv: one row per job, units in the column names)",
)
async def list_jobs(
    store: StoreDep,
    cache: JobJsonDep,
    settings: SettingsDep,
    status: JobStatus | None = None,
    model_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    response_format: Annotated[
        Literal["json", "csv"],
        Query(
            alias="format",
            description="json (JobRead objects) or csv: a header and one row per job of the "
            "page (id, status, created_at, then the columns of GET /jobs/{id}/report?format=csv; "
            "empty figure cells for jobs without a result)",
        ),
    ] = "json",
) -> Response:
    # Polled by dashboards: read inline (SQLite WAL reads take well under a millisecond) and
    # serialize once with pydantic-core, instead of a thread-pool hop and FastAPI re-validating.
    heads, total = store.jobs.list_heads(
        status=status, model_id=model_id, limit=limit, offset=offset
    )
    headers = {"X-Total-Count": str(total)}
    if response_format == "csv":  # validates every result: off the event loop
        text = await run_in_threadpool(jobs_table, store, [job_id for job_id, _ in heads])
        return Response(text, media_type="text/csv", headers=headers)
    bodies = jobs_json(store, cache, heads, settings.default_duration_s)
    body = b"[" + b",".join(bodies) + b"]"
    return Response(body, media_type="application/json", headers=headers)


@router.get("/{job_id}", response_model=JobRead, responses=cached_read_responses(404, 422))
async def read_job(
    job_id: str, store: StoreDep, cache: JobJsonDep, settings: SettingsDep
) -> Response:
    bodies = jobs_json(store, cache, [store.jobs.head(job_id)], settings.default_duration_s)
    if not bodies:  # deleted between the two reads
        raise NotFoundError(f"No job with id {job_id!r}", code="job_not_found")
    return Response(bodies[0], media_type="application/json")


@router.post(
    "/{job_id}/cancel",
    response_model=JobRead,
    responses=error_responses(404, 409, 422),
    summary="Cancel: a queued job at once, a running one within 2 s",
)
def cancel_job(job_id: str, store: StoreDep, settings: SettingsDep) -> JobRead:
    return _job_reads(store, [store.jobs.request_cancel(job_id)], settings)[0]


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409, 422),
    summary="Delete a finished job (409 while queued or running)",
)
def delete_job(job_id: str, store: StoreDep, cache: JobJsonDep) -> Response:
    store.jobs.delete(job_id)
    cache.discard(job_id)
    return Response(status_code=204)
