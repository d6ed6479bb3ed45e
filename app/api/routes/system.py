"""Service routes: devices, health, readiness, version and Prometheus metrics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import SettingsDep, StoreDep, cached_read_responses, error_responses
from app.api.schemas import DeviceRead, HealthRead, ReadyRead, VersionRead, WorkerRead
from app.errors import UnavailableError
from app.services.fleet import host_views

logger = logging.getLogger(__name__)

router = APIRouter(tags=["system"])

API_VERSION = "1"


@router.get(
    "/devices",
    response_model=list[DeviceRead],
    response_model_exclude_unset=True,  # `hosts` only in fleet mode
    responses=cached_read_responses(),
    summary="Devices the worker's OpenVINO sees (fleet mode: the live hosts')",
)
def list_devices(store: StoreDep, settings: SettingsDep) -> list[DeviceRead]:
    if not settings.fleet:
        return [
            DeviceRead(name=d.name, full_name=d.full_name, properties=d.properties)
            for d in store.workers.list_devices()
        ]
    devices: dict[str, DeviceRead] = {}
    for view in host_views(store, settings):
        if view.state == "offline":
            continue
        for d in view.row.devices:
            entry = devices.setdefault(
                d["name"],
                DeviceRead(
                    name=d["name"], full_name=d["full_name"], properties=d["properties"], hosts=[]
                ),
            )
            assert entry.hosts is not None
            entry.hosts.append(view.row.name)
    return [devices[name] for name in sorted(devices)]


@router.get("/healthz", response_model=HealthRead, summary="The API process is up")
async def read_health() -> HealthRead:  # async: no thread-pool hop for a probe
    return HealthRead(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyRead,
    response_model_exclude_unset=True,  # `hosts_live` only in fleet mode
    responses=error_responses(503),
    summary="The worker is alive (fresh heartbeat)",
)
def read_readiness(store: StoreDep, settings: SettingsDep) -> ReadyRead:
    if settings.fleet:  # the agents are the workers; this API is ready when its database is
        live = [v for v in host_views(store, settings) if v.state != "offline"]
        return ReadyRead(ready=True, worker=None, hosts_live=len(live))
    worker = store.workers.read()
    if worker is None:
        raise UnavailableError("No worker has started yet", code="worker_not_ready")
    age_s = (datetime.now(UTC) - worker.heartbeat_at).total_seconds()
    info = WorkerRead(
        pid=worker.pid,
        started_at=worker.started_at,
        heartbeat_at=worker.heartbeat_at,
        heartbeat_age_s=age_s,
        current_job_id=worker.current_job_id,
    )
    if age_s > settings.heartbeat_timeout_s:
        raise UnavailableError(
            f"The worker's last heartbeat is {age_s:.1f} s old",
            code="worker_not_ready",
            details=info.model_dump(mode="json"),
        )
    return ReadyRead(ready=True, worker=info)


@router.get("/version", response_model=VersionRead)
def read_version() -> VersionRead:
    import openvino as ov

    from app.engine.runner import ovbench_version

    return VersionRead(
        ovbench=ovbench_version(), openvino=ov.get_version(), api_version=API_VERSION
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}
    },
    summary="Prometheus metrics: gauges read from the store, counters counted as jobs end",
)
def read_metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
