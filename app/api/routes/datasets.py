"""`/datasets`: upload input files (images, .npy), list, read, delete."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import SettingsDep, StoreDep, cached_read_responses, error_responses
from app.api.routes.models import SHA256_PATTERN
from app.api.schemas import DatasetFileRead, DatasetRead
from app.api.uploads import FORM_FIELD_PARTS, check_file_count, read_multipart
from app.errors import ValidationError
from app.services.ingest import ingest_dataset
from app.store.tables import DatasetRow

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/datasets", tags=["datasets"])

DATASET_UPLOAD_BODY: dict[str, Any] = {
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
                            "description": "Images, and .npy files named after non-image inputs",
                        }
                    },
                    "required": ["file"],
                }
            }
        },
    }
}


def dataset_read(row: DatasetRow) -> DatasetRead:
    return DatasetRead(
        id=row.id,
        count=row.count,
        size_bytes=row.size_bytes,
        files=[DatasetFileRead.model_validate(f) for f in row.files],
        created_at=row.created_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=DatasetRead,
    responses=error_responses(400, 413, 415, 422, 507),
    openapi_extra=DATASET_UPLOAD_BODY,
    summary="Upload input files (multipart: -F file=@a.jpg -F file=@b.png)",
)
async def create_dataset(request: Request, store: StoreDep, settings: SettingsDep) -> DatasetRead:
    form = await read_multipart(
        request,
        store.blobs,
        settings.max_upload_bytes,
        settings.max_dataset_files + FORM_FIELD_PARTS,
    )
    try:
        check_file_count(form, settings.max_dataset_files, "dataset")
        if form.fields:
            raise ValidationError(
                f"Unknown form fields: {sorted(form.fields)}; send only files",
                code="unknown_fields",
            )
        row = await run_in_threadpool(ingest_dataset, store, form.files)
    finally:
        form.discard()
    return dataset_read(row)


@router.get(
    "",
    response_model=list[DatasetRead],
    responses=cached_read_responses(422),
    summary="List datasets, newest first (sha256=: those holding a file with that content)",
)
def list_datasets(
    store: StoreDep,
    sha256: Annotated[
        str | None,
        Query(
            pattern=SHA256_PATTERN,
            description="Only datasets with a file of this sha256: a client finds a dataset "
            "it would upload again by one file's digest, then compares the others",
        ),
    ] = None,
) -> list[DatasetRead]:
    rows = store.catalog.list_datasets()
    if sha256 is not None:
        wanted = sha256.lower()
        rows = [row for row in rows if any(f["sha256"] == wanted for f in row.files)]
    return [dataset_read(row) for row in rows]


@router.get("/{dataset_id}", response_model=DatasetRead, responses=cached_read_responses(404, 422))
def read_dataset(dataset_id: str, store: StoreDep) -> DatasetRead:
    return dataset_read(store.catalog.get_dataset(dataset_id))


@router.delete(
    "/{dataset_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409, 422),
    summary="Delete a dataset (409 while a queued or running job uses it)",
)
def delete_dataset(dataset_id: str, store: StoreDep) -> Response:
    store.catalog.delete_dataset(dataset_id)
    return Response(status_code=204)
