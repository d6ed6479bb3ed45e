"""The FastAPI application, built from `Settings` by `create_app`."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import Match

from app.api.auth import PUBLIC_PATHS, TokenAuthMiddleware
from app.api.cpu_budget import CpuBudgetMiddleware, budget_for
from app.api.events import EventHub
from app.api.job_views import FinishedJobJson, webhook_body
from app.api.metrics import build_registry
from app.api.read_cache import ReadCache
from app.api.routes import agent, compare, datasets, hosts, jobs, models, reports, sweeps, system
from app.api.routes import events as event_routes
from app.api.routes.web import install_web
from app.api.schemas import JobCreate
from app.api.sweep_schemas import SweepCreate
from app.dispatch import Dispatcher, LocalDispatcher
from app.engine.spec import BenchmarkResult
from app.errors import error_body, install_error_handlers
from app.services.sweeps import advance as advance_sweep
from app.services.webhooks import WebhookSender
from app.settings import Settings
from app.store import Store

logger = logging.getLogger(__name__)

DESCRIPTION = """OpenVINO benchmarks on demand: upload a model and inputs, queue a run with
benchmark_app's parameters, read the result JSON by job id. One worker process owns the
devices and runs one job at a time."""


def create_app(
    settings: Settings, store: Store | None = None, dispatcher: Dispatcher | None = None
) -> FastAPI:
    """The API over the store in `settings.data_dir` (migrated here; idempotent).

    Submitted jobs go to `dispatcher`; by default the local engine's, which whoever runs the
    worker starts (`ovbench serve` does; tests run their own worker, or none).
    """
    from app.engine.runner import ovbench_version

    if store is None:
        store = Store(settings.data_dir, database_url=settings.database_url)
        store.migrate()
    if dispatcher is None:
        dispatcher = LocalDispatcher(settings, store)
    app = FastAPI(
        title="ovbench",
        version=ovbench_version(),
        description=DESCRIPTION,
        # operationId = the route function's name (read_job, create_sweep ...): what a
        # generated client names its calls; FastAPI's default is read_job_jobs__job_id__get.
        generate_unique_id_function=_operation_id,
        lifespan=_lifespan,
        docs_url=None,  # /docs and /redoc: app.api.routes.web, from local assets (no CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.dispatcher = dispatcher
    # A sweep's next points, queued as its jobs end here (fleet: agents' reports), go to the
    # dispatcher at once (the store's own hook, in the worker, only queues them).
    store.jobs.on_sweep_child_ended = functools.partial(advance_sweep, store, dispatcher)
    app.state.job_json = FinishedJobJson()
    # Server-sent events: one watcher of the store, fanned out to every open stream.
    app.state.event_hub = EventHub(store, settings.default_duration_s, app.state.job_json)
    # The webhook outbox's sender, started by `ovbench serve` (tests start their own).
    app.state.webhooks = WebhookSender(
        store, settings, functools.partial(webhook_body, store, settings.default_duration_s)
    )
    # Fleet mode: the API shares no CPUs with a benchmark (agents run them elsewhere).
    app.state.cpu_budget = (
        None if settings.fleet else budget_for(settings.api_cpu_share_while_running)
    )
    agent_tokens = settings.agent_token_map() if settings.fleet else {}
    app.state.agent_tokens = {token.encode("utf-8"): host for token, host in agent_tokens.items()}
    app.state.metrics = build_registry(store, settings.heartbeat_timeout_s, app.state.cpu_budget)
    install_error_handlers(app)
    routers = (models, datasets, jobs, reports, sweeps, compare, hosts, system, event_routes)
    for router in (module.router for module in routers):
        app.include_router(router)
    if settings.fleet:
        app.include_router(agent.router)
    install_web(app)  # the dashboard at /, its assets under /web/, /docs and /redoc
    app.add_middleware(ReadCache, store=store)  # first added = innermost: after auth and CORS
    tokens = _install_access(app, settings)
    # Last added = outermost: every request, even one refused for a token, is metered.
    app.add_middleware(CpuBudgetMiddleware, store=store, budget=app.state.cpu_budget)
    app.add_exception_handler(405, _method_not_allowed)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (JobCreate, SweepCreate, BenchmarkResult):
                extra = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(extra.pop("$defs", {}))
                components[model.__name__] = extra
            if tokens:
                _document_auth(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open event streams end when the app stops (uvicorn waits for open responses)."""
    app.state.event_hub.open()
    yield
    await app.state.event_hub.close()


def _operation_id(route: APIRoute) -> str:
    return route.name


def _install_access(app: FastAPI, settings: Settings) -> list[str]:
    """Bearer tokens and CORS from the settings (README: Reliability and security); returns the tokens."""
    settings.check_extensions_dir()
    tokens = settings.api_token_list()
    agent_tokens = list(settings.agent_token_map()) if settings.fleet else []
    if tokens or agent_tokens:
        app.add_middleware(TokenAuthMiddleware, tokens=tokens, agent_tokens=agent_tokens)
    if tokens:
        logger.info("API tokens configured: every route but /healthz needs a bearer token")
    origins = settings.cors_origin_list()
    if origins:  # added last = outermost: preflight requests carry no token
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "X-Total-Count", "ETag"],
        )
    return tokens


def _document_auth(schema: dict[str, Any]) -> None:
    """Declare the bearer scheme, and 401 on every operation that needs a token."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "One of OVBENCH_API_TOKENS / OVBENCH_API_TOKENS_FILE",
    }
    unauthorized = {
        "description": "No or wrong bearer token",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorRead"}}},
    }
    for path, operations in schema.get("paths", {}).items():
        if path in PUBLIC_PATHS:
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}]
            operation.setdefault("responses", {})["401"] = unauthorized


_HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 with every method the path supports in `Allow` (Starlette names only the first
    route that matched the path; /jobs has GET and POST on two routes)."""
    allowed = [
        method
        for method in _HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    ]
    message = f"{request.method} is not allowed on {request.url.path}"
    return JSONResponse(
        status_code=405,
        content=error_body("method_not_allowed", message, {"allowed": allowed}),
        headers={"Allow": ", ".join(allowed)},
    )
