"""The FastAPI application, built from `Settings` by `create_app`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.metrics import build_registry
from app.api.routes import datasets, jobs, models, system
from app.api.schemas import JobCreate
from app.engine.spec import BenchmarkResult
from app.errors import install_error_handlers
from app.settings import Settings
from app.store import Store

logger = logging.getLogger(__name__)

DESCRIPTION = """OpenVINO benchmarks on demand: upload a model and inputs, queue a run with
benchmark_app's parameters, read the result JSON by job id. One worker process owns the
devices and runs one job at a time."""


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The API over the store in `settings.data_dir` (migrated here; idempotent)."""
    from app.engine.runner import ovbench_version

    if store is None:
        store = Store(settings.data_dir)
        store.migrate()
    app = FastAPI(title="ovbench", version=ovbench_version(), description=DESCRIPTION)
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = build_registry(store, settings.heartbeat_timeout_s)
    install_error_handlers(app)
    for router in (models.router, datasets.router, jobs.router, system.router):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (JobCreate, BenchmarkResult):
                extra = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(extra.pop("$defs", {}))
                components[model.__name__] = extra
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
