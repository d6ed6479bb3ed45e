"""`/models`: upload (deduplicated by content), list, read, delete."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import SettingsDep, StoreDep, cached_read_responses, error_responses
from app.api.schemas import ModelFileRead, ModelRead
from app.api.uploads import FORM_FIELD_PARTS, check_file_count, read_multipart
from app.engine.spec import PortInfo
from app.errors import ValidationError
from app.services.ingest import ingest_model
from app.store.tables import ModelRow

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/models", tags=["models"])

MODEL_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "The model files: .xml and .bin, or one .onnx/.tflite/...",
                        },
                        "name": {
                            "type": "string",
                            "description": "Display name (default: file stem)",
                        },
                    },
                    "required": ["file"],
                }
            }
        },
    }
}


def model_read(row: ModelRow) -> ModelRead:
    return ModelRead(
        id=row.id,
        name=row.name,
        format=row.format,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        inputs=[PortInfo.model_validate(p) for p in row.description.get("inputs", [])],
        outputs=[PortInfo.model_validate(p) for p in row.description.get("outputs", [])],
        files=[ModelFileRead.model_validate(f) for f in row.files],
        created_at=row.created_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=ModelRead,
    responses={
        200: {
            "model": ModelRead,
            "description": "The same content was uploaded before: that model",
        },
        **error_responses(400, 413, 415, 422, 507),
    },
    openapi_extra=MODEL_UPLOAD_BODY,
    summary="Upload a model (multipart: -F file=@model.xml -F file=@model.bin)",
)
async def create_model(
    request: Request, response: Response, store: StoreDep, settings: SettingsDep
) -> ModelRead:
    form = await read_multipart(
        request, store.blobs, settings.max_upload_bytes, settings.max_model_files + FORM_FIELD_PARTS
    )
    try:
        check_file_count(form, settings.max_model_files, "model upload")
        unknown = sorted(set(form.fields) - {"name"})
        if unknown:
            raise ValidationError(f"Unknown form fields: {unknown}", code="unknown_fields")
        name = form.single("name")
        row, created = await run_in_threadpool(ingest_model, store, form.files, name)
    finally:
        form.discard()
    if not created:
        response.status_code = 200
    return model_read(row)


SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"


@router.get(
    "",
    response_model=list[ModelRead],
    responses=cached_read_responses(422),
    summary="List models, newest first (sha256=: the model with that content, if any)",
)
def list_models(
    store: StoreDep,
    sha256: Annotated[
        str | None,
        Query(
            pattern=SHA256_PATTERN,
            description="Only the model whose `sha256` (over its files' names and contents) "
            "is this: a client asks before uploading what the server may already have",
        ),
    ] = None,
) -> list[ModelRead]:
    if sha256 is not None:
        row = store.catalog.find_model_by_sha(sha256.lower())
        return [] if row is None else [model_read(row)]
    return [model_read(row) for row in store.catalog.list_models()]


@router.get("/{model_id}", response_model=ModelRead, responses=cached_read_responses(404, 422))
def read_model(model_id: str, store: StoreDep) -> ModelRead:
    return model_read(store.catalog.get_model(model_id))


@router.delete(
    "/{model_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409, 422),
    summary="Delete a model (409 while a queued or running job uses it)",
)
def delete_model(model_id: str, store: StoreDep) -> Response:
    store.catalog.delete_model(model_id)
    return Response(status_code=204)
