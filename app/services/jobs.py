"""Submitting a job: what `POST /jobs` means, from a request's parameters to a queued job.

A JSON submission is validated (the devices the worker reported, the extensions dir, the
model's inputs) and committed to the store; a one-shot submission with files stores its model
and dataset first and removes them again if any later step fails. A committed job is handed
to the dispatcher, which tells whatever runs jobs that there is work; the store stays the
source of truth. An `Idempotency-Key` makes a retry return the job it created.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

from app.api.schemas import JobCreate, per_input_layouts, split_per_input
from app.dispatch import Dispatcher
from app.engine.spec import PortInfo
from app.errors import ValidationError, describe_validation, validation_details
from app.services.ingest import ingest_dataset, ingest_model
from app.services.webhooks import check_callback_url
from app.settings import Settings
from app.store import Store
from app.store.blobs import StagedFile
from app.store.tables import JobRow, ModelRow
from app.worker.outcome import job_provenance

logger = logging.getLogger(__name__)

MODEL_FILE_FIELDS = frozenset({"model", "model_file", "model_files"})
INPUT_FILE_FIELDS = frozenset({"input", "inputs", "image", "images", "dataset", "file", "files"})
_PLACEHOLDER_ID = "uploaded-with-this-request"
# Per-input fields whose names must be the model's inputs.
PER_INPUT_FIELDS = ("shape", "data_shape", "layout")
# A layout of one letter (or ?) per dimension, each named once: its rank is its length.
_LETTER_LAYOUT = re.compile(r"[A-Za-z?]+")


@dataclass(frozen=True)
class Submitted:
    """A submission's job, and whether this request created it (False: an Idempotency-Key
    retry got the job its first request created)."""

    job: JobRow
    created: bool


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


def check_job_files(job: JobCreate, settings: Settings) -> None:
    """403/422 unless every extension library and GPU config the job names is a file inside
    the admin's `extensions_dir` (never an upload, never a path outside it)."""
    for name in [*(job.extensions or []), *([job.gpu_config] if job.gpu_config else [])]:
        settings.extension_file(name)


def validate_job(
    data: Any,
    store: Store,
    settings: Settings,
    dispatcher: Dispatcher | None,
    source: str = "body",
    model_known: bool = True,
) -> JobCreate:
    """JobCreate from a request, checked against the devices (the dispatcher's placement:
    this host's, or the fleet's live hosts'), the extensions dir and (when `model_known`; else
    after the one-shot ingest) the model's inputs. With no dispatcher the placement is left
    to `submit_job`, which places the job anyway (a JSON submission: nothing is stored
    before it)."""
    try:
        job = JobCreate.model_validate(data)
    except pydantic.ValidationError as exc:
        details = validation_details(exc.errors())
        for err in details:
            err["loc"] = [source, *err["loc"]]
        raise ValidationError(describe_validation(details), details=details) from exc
    if dispatcher is not None:
        dispatcher.place(job.device, job.host, job.host_labels)
    check_job_files(job, settings)  # extension libraries / GPU configs: admin's dir only
    check_callback_url(job.callback_url, settings)  # OVBENCH_WEBHOOK_ALLOW's hosts only
    if model_known and any(getattr(job, field) is not None for field in PER_INPUT_FIELDS):
        check_model_inputs(job, model_inputs(store.catalog.get_model(job.model_id)))
    return job


def request_hash(payload: Any) -> str:
    """A digest of what a submission asked for, to tell a retry from a key reused."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit_job(
    store: Store,
    dispatcher: Dispatcher,
    settings: Settings,
    job: JobCreate,
    idempotency_key: str | None = None,
    request_digest: str | None = None,
    rerun_of: str | None = None,
) -> Submitted:
    """Place a validated job (fleet: pick its host), commit it to the queue (503 when full),
    then hand it to the dispatcher. `rerun_of`: the job this one repeats."""
    params = job.model_dump(mode="json", exclude_none=True)
    if idempotency_key is not None and request_digest is None:
        request_digest = request_hash(params)
    if idempotency_key is not None:  # a retry gets its job, wherever hosts stand now
        existing = store.jobs.find_idempotent(idempotency_key, request_digest or "")
        if existing is not None:
            return Submitted(existing, False)
    with dispatcher.placing():  # the host is chosen and the job committed as one step
        host = dispatcher.place(job.device, job.host, job.host_labels)
        row, created = store.jobs.submit(
            params,
            settings.max_queue,
            idempotency_key,
            request_digest,
            host=host,
            rerun_of=rerun_of,
        )
    if created:
        dispatcher.job_queued(row.id, row.host)
    return Submitted(row, created)


# What a job was submitted with beyond its run options, which a rerun keeps as submitted:
# where it runs (the placed host is not pinned) and its webhook.
_SUBMITTED_FIELDS = ("host", "host_labels", "callback_url")


def rerun_params(original: JobRow, settings: Settings) -> dict[str, Any]:
    """The parameters a rerun of `original` submits: those its result recorded as resolved
    (every default as it was filled in then), else its stored parameters resolved now; with
    its routing and its `callback_url` as submitted."""
    provenance = (original.result or {}).get("provenance") or {}
    recorded = (provenance.get("job") or {}).get("resolved")
    resolved = recorded or job_provenance(original.params, settings.default_duration_s)["resolved"]
    params = {k: v for k, v in resolved.items() if v is not None and v != []}
    params.update({k: original.params[k] for k in _SUBMITTED_FIELDS if k in original.params})
    return params


def rerun_job(store: Store, dispatcher: Dispatcher, settings: Settings, job_id: str) -> Submitted:
    """POST /jobs/{id}/rerun: queue a new job with the job's resolved parameters, recording
    `rerun_of`. Any state of the original will do (a failed job may be worth a retry); its
    model and dataset must still exist, and its callback_url's host must still be in
    OVBENCH_WEBHOOK_ALLOW (422 `callback_not_allowed`, as POST /jobs)."""
    original = store.jobs.get(job_id)
    job = validate_job(rerun_params(original, settings), store, settings, None)
    return submit_job(store, dispatcher, settings, job, rerun_of=original.id)


def submit_with_files(
    store: Store,
    dispatcher: Dispatcher,
    settings: Settings,
    params: dict[str, Any],
    files: Sequence[StagedFile],
    idempotency_key: str | None = None,
) -> Submitted:
    """One-shot: store the model files and inputs that came with the request, then submit.

    All or nothing: what this request stored is removed again if a later step fails.
    """
    request_digest: str | None = None
    if idempotency_key is not None:
        request_digest = request_hash(
            {"params": params, "files": sorted((f.field, f.sha256) for f in files)}
        )
        existing = store.jobs.find_idempotent(idempotency_key, request_digest)
        if existing is not None:  # a retry: store nothing again
            return Submitted(existing, False)
    model_files = [f for f in files if f.field in MODEL_FILE_FIELDS]
    input_files = [f for f in files if f.field in INPUT_FILE_FIELDS]
    unknown = sorted({f.field for f in files} - MODEL_FILE_FIELDS - INPUT_FILE_FIELDS)
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
    job = validate_job(params, store, settings, dispatcher, model_known=not model_files)
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
        submitted = submit_job(store, dispatcher, settings, job, idempotency_key, request_digest)
        if not submitted.created:  # lost a race with its own retry
            if created_dataset is not None:
                store.catalog.delete_dataset(created_dataset)
            if created_model is not None and created_model != submitted.job.model_id:
                store.catalog.delete_model(created_model)
        return submitted
    except Exception:
        if created_model is not None:
            store.catalog.delete_model(created_model)
        if created_dataset is not None:
            store.catalog.delete_dataset(created_dataset)
        raise
