"""`/jobs`: submit (JSON, or one multipart request with files), read, list, cancel, delete.

POST /jobs takes an optional `Idempotency-Key` header (1-255 visible ASCII characters): the
key is stored with the job (unique), so repeating the request (a retry after a timeout or a
dropped connection) returns the same job, 202 with `Idempotent-Replayed: true`, instead of
queueing another. The same key with a different request is 422 `idempotency_key_reused`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.auth import check_job_files
from app.api.deps import JobJsonDep, SettingsDep, StoreDep, error_responses
from app.api.ingest import ingest_dataset, ingest_model
from app.api.job_views import job_read, jobs_json
from app.api.schemas import JobCreate, JobRead, JobStatus
from app.api.uploads import UploadedForm, is_multipart, read_multipart
from app.engine.devices import VIRTUAL_DEVICES, hardware_devices
from app.errors import (
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaError,
    ValidationError,
    describe_validation,
    validation_details,
)
from app.settings import Settings
from app.store import Store
from app.store.tables import JobRow

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_JSON_BYTES = 1 << 20
MODEL_FILE_FIELDS = frozenset({"model", "model_file", "model_files"})
INPUT_FILE_FIELDS = frozenset({"input", "inputs", "image", "images", "dataset", "file", "files"})
_PLACEHOLDER_ID = "uploaded-with-this-request"

JOB_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": (
                        "One-shot: the model files, the inputs and JobCreate's fields as form "
                        "fields (or a `params` field holding JobCreate JSON). model_id and "
                        "dataset_id may be given instead of files."
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
                        "device": {"type": "string"},
                        "api": {"type": "string", "enum": ["sync", "async"]},
                        "niter": {"type": "integer"},
                        "duration_s": {"type": "number"},
                        "nireq": {"type": "integer"},
                    },
                }
            },
        },
    }
}


def _job_reads(store: Store, rows: Sequence[JobRow]) -> list[JobRead]:
    positions = store.queue_positions(rows)
    return [job_read(row, positions.get(row.id)) for row in rows]


def check_device(device: str, available: list[str]) -> None:
    """422 listing the worker's devices when `device` names one it does not have.

    With no device list yet (the worker has not started), anything goes: the engine checks.
    """
    if not available:
        return
    head = device.partition(":")[0]
    wanted = hardware_devices(device) if head in VIRTUAL_DEVICES else [device]
    missing = [
        name
        for name in wanted
        if name not in available and not any(d.split(".")[0] == name for d in available)
    ]
    if missing:
        raise ValidationError(
            f"Device {device!r} is not available on this host; available: {', '.join(available)}",
            code="device_not_available",
            details={"device": device, "missing": missing, "available": available},
        )


def _validate_job(data: Any, store: Store, source: str, settings: Settings) -> JobCreate:
    try:
        job = JobCreate.model_validate(data)
    except pydantic.ValidationError as exc:
        details = validation_details(exc.errors())
        for err in details:
            err["loc"] = [source, *err["loc"]]
        raise ValidationError(describe_validation(details), details=details) from exc
    check_device(job.device, [d.name for d in store.list_devices()])
    check_job_files(job, settings)  # extension libraries / GPU configs: admin's dir only
    return job


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


def _request_hash(payload: Any) -> str:
    """A digest of what a submission asked for, to tell a retry from a key reused."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _answer(store: Store, row: JobRow, created: bool, response: Response) -> JobRead:
    response.headers["Location"] = f"/jobs/{row.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return _job_reads(store, [row])[0]


def _submit(
    store: Store,
    settings_max_queue: int,
    job: JobCreate,
    response: Response,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> JobRead:
    params = job.model_dump(mode="json", exclude_none=True)
    if idempotency_key is not None and request_hash is None:
        request_hash = _request_hash(params)
    row, created = store.submit_job(params, settings_max_queue, idempotency_key, request_hash)
    return _answer(store, row, created, response)


async def _read_json(request: Request) -> Any:
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


def _submit_multipart(
    store: Store,
    max_queue: int,
    form: UploadedForm,
    response: Response,
    settings: Settings,
    idempotency_key: str | None = None,
) -> JobRead:
    params = _form_params(form)
    request_hash: str | None = None
    if idempotency_key is not None:
        request_hash = _request_hash(
            {"params": params, "files": sorted((f.field, f.sha256) for f in form.files)}
        )
        existing = store.find_idempotent_job(idempotency_key, request_hash)
        if existing is not None:  # a retry: store nothing again
            return _answer(store, existing, False, response)
    model_files = [f for f in form.files if f.field in MODEL_FILE_FIELDS]
    input_files = [f for f in form.files if f.field in INPUT_FILE_FIELDS]
    unknown = sorted({f.field for f in form.files} - MODEL_FILE_FIELDS - INPUT_FILE_FIELDS)
    if unknown:
        raise ValidationError(
            f"Unknown file fields {unknown}: send model files as 'model' and inputs as 'inputs'",
            code="unknown_fields",
        )
    if model_files and "model_id" in params:
        raise ValidationError(
            "Give either model files or model_id, not both", code="conflicting_fields"
        )
    if input_files and "dataset_id" in params:
        raise ValidationError(
            "Give either input files or dataset_id, not both", code="conflicting_fields"
        )
    if model_files:
        params["model_id"] = _PLACEHOLDER_ID
    if input_files:
        params["dataset_id"] = _PLACEHOLDER_ID
    job = _validate_job(params, store, "body", settings)  # before storing anything
    # All or nothing: what this request created is removed again if a later step fails.
    created_dataset: str | None = None
    created_model: str | None = None
    try:
        if input_files:
            created_dataset = job.dataset_id = ingest_dataset(store, input_files).id
        if model_files:
            model, created = ingest_model(store, model_files, None)
            job.model_id = model.id
            created_model = model.id if created else None
        answer = _submit(store, max_queue, job, response, idempotency_key, request_hash)
        if response.headers.get("Idempotent-Replayed"):  # lost a race with its own retry
            if created_dataset is not None:
                store.delete_dataset(created_dataset)
            if created_model is not None and created_model != answer.model_id:
                store.delete_model(created_model)
        return answer
    except Exception:
        if created_model is not None:
            store.delete_model(created_model)
        if created_dataset is not None:
            store.delete_dataset(created_dataset)
        raise


@router.post(
    "",
    status_code=202,
    response_model=JobRead,
    responses={
        202: {
            "description": "Queued; Location has the job's URL",
            "headers": {"Location": {"schema": {"type": "string"}}},
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
    idempotency_key: IdempotencyKey = None,
) -> JobRead:
    content_type = request.headers.get("content-type", "")
    if is_multipart(request):
        form = await read_multipart(request, store.blobs, settings.max_upload_bytes)
        try:
            return await run_in_threadpool(
                _submit_multipart,
                store,
                settings.max_queue,
                form,
                response,
                settings,
                idempotency_key,
            )
        finally:
            form.discard()
    if not content_type.lower().startswith("application/json"):
        raise UnsupportedMediaError(
            "Send JobCreate as application/json, or the files and fields as multipart/form-data",
            details={"content_type": content_type},
        )
    data = await _read_json(request)
    job = await run_in_threadpool(_validate_job, data, store, "body", settings)
    return await run_in_threadpool(
        _submit, store, settings.max_queue, job, response, idempotency_key
    )


@router.get(
    "",
    response_model=list[JobRead],
    responses=error_responses(422),
    summary="List jobs, newest first",
)
async def list_jobs(
    store: StoreDep,
    cache: JobJsonDep,
    status: JobStatus | None = None,
    model_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    # Polled by dashboards: read inline (SQLite WAL reads take well under a millisecond) and
    # serialize once with pydantic-core, instead of a thread-pool hop and FastAPI re-validating.
    heads, total = store.list_job_heads(
        status=status, model_id=model_id, limit=limit, offset=offset
    )
    body = b"[" + b",".join(jobs_json(store, cache, heads)) + b"]"
    return Response(body, media_type="application/json", headers={"X-Total-Count": str(total)})


@router.get("/{job_id}", response_model=JobRead, responses=error_responses(404, 422))
async def read_job(job_id: str, store: StoreDep, cache: JobJsonDep) -> Response:
    bodies = jobs_json(store, cache, [store.job_head(job_id)])
    if not bodies:  # deleted between the two reads
        raise NotFoundError(f"No job with id {job_id!r}", code="job_not_found")
    return Response(bodies[0], media_type="application/json")


@router.post(
    "/{job_id}/cancel",
    response_model=JobRead,
    responses=error_responses(404, 409, 422),
    summary="Cancel: a queued job at once, a running one within 2 s",
)
def cancel_job(job_id: str, store: StoreDep) -> JobRead:
    return _job_reads(store, [store.request_cancel(job_id)])[0]


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409, 422),
    summary="Delete a finished job (409 while queued or running)",
)
def delete_job(job_id: str, store: StoreDep, cache: JobJsonDep) -> Response:
    store.delete_job(job_id)
    cache.discard(job_id)
    return Response(status_code=204)
