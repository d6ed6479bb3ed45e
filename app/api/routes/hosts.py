"""`/hosts` (fleet mode): the device hosts, their state and queues; drain and resume."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import SettingsDep, StoreDep, error_responses
from app.api.fleet_schemas import HostRead
from app.engine.spec import DeviceInfo
from app.services.fleet import HostView, host_views

router = APIRouter(prefix="/hosts", tags=["fleet"])


def host_read(view: HostView) -> HostRead:
    row = view.row
    return HostRead(
        name=row.name,
        state=view.state,  # type: ignore[arg-type]
        draining=row.draining,
        labels=row.labels,
        devices=[DeviceInfo.model_validate(d) for d in row.devices],
        facts=row.facts,
        agent_version=row.agent_version,
        registered_at=row.registered_at,
        heartbeat_at=row.heartbeat_at,
        heartbeat_age_s=view.heartbeat_age_s,
        current_job_id=view.current_job_id,
        queue_depth=view.queue_depth,
    )


@router.get("", response_model=list[HostRead], summary="Device hosts (empty on a single host)")
def list_hosts(store: StoreDep, settings: SettingsDep) -> list[HostRead]:
    return [host_read(v) for v in host_views(store, settings)]


def _one(store: StoreDep, settings: SettingsDep, name: str) -> HostRead:
    return host_read(host_views(store, settings, [name])[0])


@router.get("/{name}", response_model=HostRead, responses=error_responses(404, 422))
def read_host(name: str, store: StoreDep, settings: SettingsDep) -> HostRead:
    return _one(store, settings, name)


@router.post(
    "/{name}/drain",
    response_model=HostRead,
    responses=error_responses(404, 422),
    summary="Route no new jobs to this host (jobs already queued for it still run)",
)
def drain_host(name: str, store: StoreDep, settings: SettingsDep) -> HostRead:
    store.hosts.set_draining(name, True)
    return _one(store, settings, name)


@router.post(
    "/{name}/resume",
    response_model=HostRead,
    responses=error_responses(404, 422),
    summary="Route new jobs to this host again",
)
def resume_host(name: str, store: StoreDep, settings: SettingsDep) -> HostRead:
    store.hosts.set_draining(name, False)
    return _one(store, settings, name)
