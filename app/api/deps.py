"""Typed dependencies for the routes: the store, the settings, the dispatcher and the
finished-job JSON cache."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from app.api.job_views import FinishedJobJson
from app.api.schemas import ErrorRead
from app.dispatch import Dispatcher
from app.settings import Settings
from app.store import Store


async def get_store(request: Request) -> Store:  # async: no thread-pool hop per request
    store: Store = request.app.state.store
    return store


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


async def get_job_json(request: Request) -> FinishedJobJson:
    cache: FinishedJobJson = request.app.state.job_json
    return cache


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
JobJsonDep = Annotated[FinishedJobJson, Depends(get_job_json)]


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each listed status documented with the one error shape."""
    descriptions = {
        400: "Malformed request",
        401: "No or wrong bearer token (when API tokens are configured)",
        403: "Not allowed (extension files outside OVBENCH_EXTENSIONS_DIR, or none configured)",
        404: "Unknown id",
        409: "Conflicts with the current state",
        413: "An uploaded file is larger than the limit",
        415: "Unsupported file type or content type",
        422: "Invalid parameters or files",
        503: "The queue is full, or the worker is not ready",
    }
    return {
        code: {"model": ErrorRead, "description": descriptions.get(code, "Error")}
        for code in status_codes
    }


ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": "Strong validator of this body: send it back as If-None-Match to get "
        "304 while nothing changed",
        "schema": {"type": "string"},
    }
}
TOTAL_COUNT_HEADER: dict[str, Any] = {
    "X-Total-Count": {
        "description": "How many items match the filters (all pages)",
        "schema": {"type": "integer"},
    }
}


def cached_read_responses(
    *status_codes: int, total_count: bool = False, ok: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a GET the read cache answers (app/api/read_cache.py): 200 with its
    `ETag` (and `X-Total-Count` for a list), 304 with no body, and the listed errors. `ok`:
    more of the 200 answer (e.g. another content type)."""
    headers = {**ETAG_HEADER, **(TOTAL_COUNT_HEADER if total_count else {})}
    return {
        200: {**(ok or {}), "headers": headers},
        304: {"description": "Not Modified: If-None-Match matched the ETag; no body"},
        **error_responses(*status_codes),
    }
