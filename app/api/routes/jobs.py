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
import re
from collections.abc import Sequence
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.auth import check_job_files
from app.api.deps import JobJsonDep, SettingsDep, StoreDep, error_responses
from app.api.ingest import ingest_dataset, ingest_model
from app.api.job_views import job_read, jobs_json
from app.api.schemas import (
    JobCreate,
    JobRead,
    JobStatus,
    per_input_layouts,
    split_per_input,
)
from app.api.uploads import UploadedForm, is_multipart, read_multipart
from app.engine.devices import VIRTUAL_DEVICES, hardware_devices
from app.engine.spec import PortInfo
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
from app.store.tables import JobRow, ModelRow

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_JSON_BYTES = 1 << 20
MODEL_FILE_FIELDS = frozenset({"model", "model_file", "model_files"})
INPUT_FILE_FIELDS = frozenset({"input", "inputs", "image", "images", "dataset", "file", "files"})
_PLACEHOLDER_ID = "uploaded-with-this-request"
# Per-input fields whose names must be the model's inputs.
PER_INPUT_FIELDS = ("shape", "data_shape", "layout")
# A layout of one letter (or ?) per dimension, each named once: its rank is its length.
_LETTER_LAYOUT = re.compile(r"[A-Za-z?]+")

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


def _job_reads(store: Store, rows: Sequence[JobRow], settings: Settings) -> list[JobRead]:
    positions = store.jobs.queue_positions(rows)
    return [job_read(row, positions.get(row.id), settings.default_duration_s) for row in rows]


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


def model_inputs(model: ModelRow) -> list[PortInfo]:
    """The model's inputs as read at upload (empty when unknown)."""
    return [PortInfo.model_validate(p) for p in model.description.get("inputs", [])]


def _by_input(pairs: Sequence[tuple[str, str]], names: Sequence[str]) -> dict[str, str]:
    """{input: value} as the engine applies them: a name-less value to every input, in order."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name:
            values[name] = value
        else:
            values.update(dict.fromkeys(names, value))
    return values


def _rank(shape: str) -> int | None:
    """The rank of a partial shape as stored (`[1,3,?,?]` -> 4), None when dynamic or unknown."""
    text = shape.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1].strip()
    if inner == "...":
        return None
    return len(inner.split(",")) if inner else 0


def _layout_rank(layout: str) -> int | None:
    """`NCHW` -> 4 (letters or ?, each letter once); None when it is any other form."""
    text = layout.strip()
    if not _LETTER_LAYOUT.fullmatch(text):
        return None
    letters = [c.upper() for c in text if c != "?"]
    return len(text) if len(set(letters)) == len(letters) else None


def _rank_mismatch(
    field: str, port: PortInfo, value: str, given: int, rank: int
) -> ValidationError:
    return ValidationError(
        f"{field} {value!r} for input {port.name!r} has {given} dimensions, but the model's "
        f"input {port.name!r} {port.shape} has {rank}",
        code="input_rank_mismatch",
        details={
            "field": field,
            "input": port.name,
            "value": value,
            "rank": given,
            "input_shape": port.shape,
        },
    )


def check_model_inputs(job: JobCreate, inputs: Sequence[PortInfo]) -> None:
    """422 when `shape`, `data_shape` or `layout` names an input the model lacks, or gives an
    input a layout or data_shape of a rank the engine is certain to refuse.

    Ranks are checked only where the model's rank stands: the input has no `shape` (a reshape
    may change it; the engine judges), and for `data_shape` the input is dynamic (a static
    input ignores it) and no `batch` is set (it may make the input static).
    """
    if not inputs:  # not known: the engine checks
        return
    names = [port.name for port in inputs]
    given: dict[str, dict[str, str]] = {}
    for field in PER_INPUT_FIELDS:
        text: str | None = getattr(job, field)
        if text is None:
            continue
        pairs = per_input_layouts(text) if field == "layout" else split_per_input(text)
        if pairs is None:  # a layout that does not parse: the engine says how
            continue
        unknown = list(dict.fromkeys(n for n, _ in pairs if n and n not in names))
        if unknown:
            which = ", ".join(repr(n) for n in unknown)
            raise ValidationError(
                f"{field} names input{'s' if len(unknown) > 1 else ''} {which}, which the "
                f"model does not have; its inputs are: {', '.join(repr(n) for n in names)}",
                code="unknown_input",
                details={"field": field, "unknown": unknown, "inputs": names},
            )
        given[field] = _by_input(pairs, names)
    shapes, data_shapes = given.get("shape", {}), given.get("data_shape", {})
    layouts = given.get("layout", {})
    for port in inputs:
        rank = _rank(port.shape)
        if rank is None or port.name in shapes:
            continue
        layout = layouts.get(port.name)
        layout_rank = None if layout is None else _layout_rank(layout)
        if layout is not None and layout_rank is not None and layout_rank != rank:
            raise _rank_mismatch("layout", port, layout, layout_rank, rank)
        data_shape = data_shapes.get(port.name)
        dynamic = "?" in port.shape or ".." in port.shape
        if data_shape is not None and dynamic and job.batch is None:
            dims = len(data_shape.split(",")) if data_shape.strip() else 0
            if dims != rank:
                raise _rank_mismatch("data_shape", port, f"[{data_shape}]", dims, rank)


def _validate_job(
    data: Any, store: Store, source: str, settings: Settings, model_known: bool = True
) -> JobCreate:
    """JobCreate from a request, checked against the devices, the extensions dir and (when
    `model_known`; else after the one-shot ingest) the model's inputs."""
    try:
        job = JobCreate.model_validate(data)
    except pydantic.ValidationError as exc:
        details = validation_details(exc.errors())
        for err in details:
            err["loc"] = [source, *err["loc"]]
        raise ValidationError(describe_validation(details), details=details) from exc
    check_device(job.device, [d.name for d in store.workers.list_devices()])
    check_job_files(job, settings)  # extension libraries / GPU configs: admin's dir only
    if model_known and any(getattr(job, field) is not None for field in PER_INPUT_FIELDS):
        check_model_inputs(job, model_inputs(store.catalog.get_model(job.model_id)))
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


def _answer(
    store: Store, row: JobRow, created: bool, response: Response, settings: Settings
) -> JobRead:
    response.headers["Location"] = f"/jobs/{row.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return _job_reads(store, [row], settings)[0]


def _submit(
    store: Store,
    settings: Settings,
    job: JobCreate,
    response: Response,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> JobRead:
    params = job.model_dump(mode="json", exclude_none=True)
    if idempotency_key is not None and request_hash is None:
        request_hash = _request_hash(params)
    row, created = store.jobs.submit(params, settings.max_queue, idempotency_key, request_hash)
    return _answer(store, row, created, response, settings)


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
        existing = store.jobs.find_idempotent(idempotency_key, request_hash)
        if existing is not None:  # a retry: store nothing again
            return _answer(store, existing, False, response, settings)
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
    # Before storing anything; the inputs of a model uploaded here are checked after ingest.
    job = _validate_job(params, store, "body", settings, model_known=not model_files)
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
            check_model_inputs(job, model_inputs(model))
        answer = _submit(store, settings, job, response, idempotency_key, request_hash)
        if response.headers.get("Idempotent-Replayed"):  # lost a race with its own retry
            if created_dataset is not None:
                store.catalog.delete_dataset(created_dataset)
            if created_model is not None and created_model != answer.model_id:
                store.catalog.delete_model(created_model)
        return answer
    except Exception:
        if created_model is not None:
            store.catalog.delete_model(created_model)
        if created_dataset is not None:
            store.catalog.delete_dataset(created_dataset)
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
    return await run_in_threadpool(_submit, store, settings, job, response, idempotency_key)


@router.get(
    "",
    response_model=list[JobRead],
    responses=error_responses(422),
    summary="List jobs, newest first",
)
async def list_jobs(
    store: StoreDep,
    cache: JobJsonDep,
    settings: SettingsDep,
    status: JobStatus | None = None,
    model_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    # Polled by dashboards: read inline (SQLite WAL reads take well under a millisecond) and
    # serialize once with pydantic-core, instead of a thread-pool hop and FastAPI re-validating.
    heads, total = store.jobs.list_heads(
        status=status, model_id=model_id, limit=limit, offset=offset
    )
    bodies = jobs_json(store, cache, heads, settings.default_duration_s)
    body = b"[" + b",".join(bodies) + b"]"
    return Response(body, media_type="application/json", headers={"X-Total-Count": str(total)})


@router.get("/{job_id}", response_model=JobRead, responses=error_responses(404, 422))
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
