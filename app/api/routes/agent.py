"""`/agent/` (fleet mode): the agents' protocol. Each call carries an agent token, which
names the host it acts as (services/fleet.py says what that host may do)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from app.api.auth import bearer_token, token_matches
from app.api.deps import StoreDep, error_responses
from app.api.fleet_schemas import (
    AgentClaim,
    AgentFile,
    AgentFinish,
    AgentHeartbeat,
    AgentHeartbeatReply,
    AgentJob,
    AgentProgress,
    AgentProgressReply,
    AgentRegister,
    AgentRegistered,
)
from app.engine.spec import Progress
from app.errors import ForbiddenError, NotFoundError, UnauthorizedError
from app.services import fleet

router = APIRouter(prefix="/agent", tags=["agent (internal)"])

AGENT_HEARTBEAT_INTERVAL_S = 1.0


async def agent_host(request: Request) -> str:
    """The host whose agent token the request carries (401 without one)."""
    tokens: dict[bytes, str] = request.app.state.agent_tokens
    token = bearer_token(list(request.scope.get("headers", [])))
    if token is None:
        raise UnauthorizedError("Missing agent token: send 'Authorization: Bearer <token>'")
    found = None
    for known, host in tokens.items():  # constant time per token, every token checked
        if token_matches(token, [known]):
            found = host
    if found is None:
        raise UnauthorizedError("Invalid agent token")
    return found


AgentHost = Annotated[str, Depends(agent_host)]


def _files(files: list[dict[str, object]]) -> list[AgentFile]:
    return [
        AgentFile(
            name=str(f["name"]),
            original_name=str(f.get("original_name", f["name"])),
            sha256=str(f["sha256"]),
            size_bytes=int(str(f["size_bytes"])),
        )
        for f in files
    ]


@router.post("/register", response_model=AgentRegistered, responses=error_responses(401, 422))
def register(body: AgentRegister, host: AgentHost, store: StoreDep) -> AgentRegistered:
    lost = fleet.register(
        store,
        host,
        body.labels,
        [d.model_dump() for d in body.devices],
        body.facts,
        body.agent_version,
    )
    return AgentRegistered(
        host=host, heartbeat_interval_s=AGENT_HEARTBEAT_INTERVAL_S, lost_job_ids=lost
    )


@router.post(
    "/heartbeat", response_model=AgentHeartbeatReply, responses=error_responses(401, 404, 422)
)
def heartbeat(body: AgentHeartbeat, host: AgentHost, store: StoreDep) -> AgentHeartbeatReply:
    row = fleet.heartbeat(store, host, body.current_job_id)
    return AgentHeartbeatReply(draining=row.draining)


@router.post(
    "/jobs/{job_id}/claim", response_model=AgentJob, responses=error_responses(401, 404, 409, 422)
)
def claim(job_id: str, body: AgentClaim, host: AgentHost, store: StoreDep) -> AgentJob:
    job = fleet.claim(store, host, job_id, body.claim_token)
    model, dataset = fleet.job_files(store, job)
    return AgentJob(
        id=job.id,
        params=job.params,
        model_files=_files(model.files),
        dataset_files=_files(dataset.files) if dataset is not None else [],
    )


@router.post(
    "/jobs/{job_id}/progress",
    response_model=AgentProgressReply,
    responses=error_responses(401, 403, 404, 422),
)
def progress(
    job_id: str, body: AgentProgress, host: AgentHost, store: StoreDep
) -> AgentProgressReply:
    job = fleet.own_job(store, host, job_id)
    if job.status == "running" and body.fraction is not None:
        store.jobs.update_progress(
            job_id,
            Progress(
                fraction=body.fraction,
                iterations=body.iterations or 0,
                elapsed_s=body.elapsed_s or 0.0,
            ),
        )
    return AgentProgressReply(cancel_requested=job.cancel_requested, status=job.status)


@router.post(
    "/jobs/{job_id}/finish", status_code=204, responses=error_responses(401, 403, 404, 409, 422)
)
def finish(job_id: str, body: AgentFinish, host: AgentHost, store: StoreDep) -> None:
    fleet.finish(store, host, job_id, body.status, body.result, body.error_code, body.error_message)


@router.get(
    "/blobs/{sha256}",
    response_class=FileResponse,
    responses=error_responses(401, 403, 404, 422),
    summary="A file of a job routed to this agent's host (by sha256)",
)
def blob(sha256: str, host: AgentHost, store: StoreDep) -> FileResponse:
    try:
        path = store.blobs.path_for(sha256)
    except ValueError:
        raise NotFoundError(f"{sha256!r} is not a sha256", code="blob_not_found") from None
    if not fleet.may_read_blob(store, host, sha256):
        raise ForbiddenError(
            f"Blob {sha256} belongs to no job queued or running on host {host}",
            code="not_your_blob",
        )
    if not path.is_file():
        raise NotFoundError(f"Blob {sha256} is missing from the data dir", code="blob_not_found")
    return FileResponse(path, media_type="application/octet-stream")
