"""Server-sent events: `GET /events` (every job's changes) and `GET /jobs/{id}/events` (one
job: its state at once, then each change, then `end` once it is finished).

Both are fed by the one `EventHub` of the process (app/api/events.py): a subscriber only
waits on its queue and writes what it gets. Wire format (text/event-stream)::

    retry: 2000

    id: 1764646000123457
    event: job
    data: {"id": "...", "status": "running", ...}    <- exactly GET /jobs/{id}

    event: job_deleted
    data: {"id":"..."}

    : keepalive                                      <- every 15 s

`GET /events` honours `Last-Event-ID` (EventSource sends it when it reconnects): the events
after it, when the hub still has them, else `event: resync` (`data: {}`: read `GET /jobs`
again). `GET /jobs/{id}/events` starts with the job's current state (an event without an
id), so it needs no replay.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from app.api.deps import JobJsonDep, SettingsDep, StoreDep, error_responses
from app.api.events import END, RESYNC, EventHub, JobEvent, Subscription, job_frame
from app.api.job_views import FINAL_STATUSES, jobs_json
from app.errors import NotFoundError

logger = logging.getLogger(__name__)

router = APIRouter(tags=["events"])

RETRY = b"retry: 2000\n\n"  # EventSource's reconnection delay, ms
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"


def _stream_responses(description: str, *errors: int) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": description,
            "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **error_responses(*errors),
    }


def _hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.event_hub
    return hub


async def _stream(hub: EventHub, sub: Subscription, first: bytes) -> AsyncIterator[bytes]:
    """`first`, then what the hub puts on the queue until it ends the stream (a per-job
    stream: after the job's final event). Whatever is queued at once goes out in one write."""
    try:
        yield first
        while True:
            items = [await sub.queue.get()]
            while not sub.queue.empty():
                items.append(sub.queue.get_nowait())
            chunks: list[bytes] = []
            for item in items:
                if item is None:  # dropped (fell behind) or the app is closing
                    yield b"".join(chunks)
                    return
                if isinstance(item, JobEvent):
                    chunks.append(item.frame)
                    if sub.job_id is not None and item.final:
                        yield b"".join([*chunks, END])
                        return
                else:
                    chunks.append(item)
            yield b"".join(chunks)
    finally:
        hub.unsubscribe(sub)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses=_stream_responses(
        "Server-sent events: `event: job` (data: the job as GET /jobs/{id} returns it) for "
        'each job that changed, `event: job_deleted` (data: {"id": ...}), `event: resync` '
        "when events after Last-Event-ID are gone (read GET /jobs again), `: keepalive` "
        "comments every 15 s",
        422,
        503,
    ),
    summary="Stream every job's changes (server-sent events)",
)
async def stream_events(
    request: Request,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="The last event id received: the events after it are sent first",
        ),
    ] = None,
) -> StreamingResponse:
    hub = _hub(request)
    # Subscribing and reading the replay in one step (no await): nothing falls in between.
    sub = hub.subscribe()
    first = RETRY
    if last_event_id is not None:
        try:
            replay = hub.replay_since(int(last_event_id))
        except ValueError:
            replay = None
        first += RESYNC if replay is None else b"".join(event.frame for event in replay)
    return StreamingResponse(_stream(hub, sub, first), media_type=MEDIA_TYPE, headers=SSE_HEADERS)


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses=_stream_responses(
        "Server-sent events: the job's current state at once (`event: job`), one `event: job` "
        "per change; after its final state (succeeded, failed, cancelled) `event: end` and the "
        "stream closes. `: keepalive` comments every 15 s",
        404,
        422,
        503,
    ),
    summary="Stream one job's changes until it is finished (server-sent events)",
)
async def stream_job_events(
    job_id: str,
    request: Request,
    store: StoreDep,
    cache: JobJsonDep,
    settings: SettingsDep,
) -> StreamingResponse:
    hub = _hub(request)
    sub = hub.subscribe(job_id)
    try:
        await hub.fresh()
        # The hub has now looked at the store as it was when this request came; what it queued
        # meanwhile is no newer than what it holds, which is sent instead.
        closed = False
        while not sub.queue.empty():
            closed |= sub.queue.get_nowait() is None
        body = hub.current(job_id)
        final = False
        if body is None:  # finished, unknown, or created after the hub's look
            bodies = jobs_json(store, cache, [store.jobs.head(job_id)], settings.default_duration_s)
            if not bodies:
                raise NotFoundError(f"No job with id {job_id!r}", code="job_not_found")
            body = bodies[0]
            final = _status(body) in FINAL_STATUSES
    except BaseException:
        hub.unsubscribe(sub)
        raise
    first = RETRY + job_frame(body)
    if final or closed:
        hub.unsubscribe(sub)
        return StreamingResponse(
            _once(first + END if final else first), media_type=MEDIA_TYPE, headers=SSE_HEADERS
        )
    return StreamingResponse(_stream(hub, sub, first), media_type=MEDIA_TYPE, headers=SSE_HEADERS)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _status(body: bytes) -> str:
    """The status of a JobRead's JSON (as `model_dump_json` writes it: compact)."""
    start = body.index(b'"status":"') + len(b'"status":"')
    return body[start : body.index(b'"', start)].decode()
