"""The event hub: job changes read once from the store and pushed to every SSE subscriber.

One watcher task per API process runs while anyone subscribes. Every `interval_s` it reads
the store's change token (SQLite's `data_version`, moved by any commit of any process: a few
microseconds); when the token moved it looks once, in a thread:

- the rows of jobs that are queued or running, that were active at the last look, or that
  were created in the last few seconds (a job created and finished between two looks), in
  one query, and the number of jobs (a second, index-only query);
- each of those rows becomes its JSON through `job_views.job_read` (queue positions come from
  the same rows, which hold every queued job) and is compared with the bytes it had at the
  last look: a job whose JSON differs is one event. A finished job never changes again, so it
  is remembered as finished and never serialized twice;
- the number of jobs differing from the ids known (finished jobs deleted by a user, a sweep
  or the retention sweep) makes it read the ids once and send `job_deleted` for each gone.

Without a change token (PostgreSQL) the look runs every tick instead: it is the cheap query.

Between looks the watcher sleeps on the store's commit signal (an inotify watch on SQLite's
WAL file, app/store/commit_signal.py) rather than on a timer: on this kind of VM every
wake-up of a sleeping loop costs 0.1-0.2 ms of CPU, so twenty ticks a second cost more than
the looks. A write to the WAL wakes it; the commit becomes visible once SQLite has synced
it (1-10 ms later here), so it reads the token again after 5, 10, 20 ... ms, looking at each
commit as it becomes visible, until nothing more was written and every visible commit was
looked at (a second commit often follows the first within milliseconds). It also wakes for a new subscriber's `fresh()`, the keepalive, and once a second whatever
happens (a missed signal costs at most that). Where there is no signal (PostgreSQL, no
inotify) it ticks every `interval_s` as before.

Each event's bytes (`id:`, `event:`, `data:`) are built once and the same object goes on
every subscriber's bounded queue; a subscriber whose queue is full is dropped (its stream
ends; EventSource reconnects with `Last-Event-ID` and gets what it missed from the hub's
recent events, or `event: resync` when they are gone). Subscribers share nothing else.

Event ids: microseconds since the epoch when the hub was made, plus one per event, so they
grow across restarts of the API and a `Last-Event-ID` from an earlier process is never
mistaken for a recent one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import bindparam, func, or_, select

from app.api.job_views import FINAL_STATUSES, FinishedJobJson, job_read
from app.errors import UnavailableError
from app.store import Store
from app.store.commit_signal import CommitSignal
from app.store.tables import ACTIVE_STATUSES, JobRow, utcnow

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 0.05
DEFAULT_KEEPALIVE_S = 15.0
DEFAULT_QUEUE_EVENTS = 256  # per subscriber: two minutes of a running job's progress
DEFAULT_REPLAY_EVENTS = 1024  # kept for Last-Event-ID
CREATED_WINDOW_S = 5.0  # a job created this long before a look is read again (commit delays)
SETTLE_FIRST_S = 0.005  # after a WAL write, the token is read again after 5, 10, 20 ... ms
SETTLE_MAX_S = 0.32  # ... until it moved or this long passed
SAFETY_S = 1.0  # with a commit signal: the token is read at least this often anyway

KEEPALIVE = b": keepalive\n\n"
RESYNC = b"event: resync\ndata: {}\n\n"
END = b"event: end\ndata: {}\n\n"
_FINISHED = b""  # the known-bytes marker of a finished job (its JSON is in FinishedJobJson)


# A look's two statements, built once (building one costs more than running it here).
_MAY_HAVE_CHANGED = select(JobRow).where(
    or_(
        JobRow.status.in_(ACTIVE_STATUSES),
        JobRow.created_at >= bindparam("since"),
        JobRow.id.in_(bindparam("ids", expanding=True)),
    )
)
_COUNT = select(func.count()).select_from(JobRow)


@dataclass(frozen=True)
class JobEvent:
    """One change of one job: `frame` is the SSE bytes every subscriber gets."""

    event_id: int
    job_id: str
    final: bool  # the job is finished or deleted: a per-job stream ends after it
    frame: bytes


# What a subscriber's queue carries: events, keepalives, or None (dropped: end the stream).
Item = JobEvent | bytes | None


@dataclass(eq=False)
class Subscription:
    """One open stream: its queue, and the job it follows (None: every job)."""

    job_id: str | None
    queue: asyncio.Queue[Item] = field(default_factory=asyncio.Queue)


def job_frame(body: bytes, event_id: int | None = None, event: str = "job") -> bytes:
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return head + b"event: " + event.encode() + b"\ndata: " + body + b"\n\n"


class EventHub:
    """The watcher and the subscribers of one API process (see the module's docstring)."""

    def __init__(
        self,
        store: Store,
        default_duration_s: Mapping[str, float],
        finished_json: FinishedJobJson | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        queue_events: int = DEFAULT_QUEUE_EVENTS,
        replay_events: int = DEFAULT_REPLAY_EVENTS,
    ) -> None:
        self.store = store
        self.default_duration_s = default_duration_s
        self.finished_json = finished_json
        self.interval_s = interval_s
        self.keepalive_s = keepalive_s
        self.queue_events = queue_events
        self._all: set[Subscription] = set()
        self._by_job: dict[str, set[Subscription]] = {}
        self._recent: deque[JobEvent] = deque(maxlen=replay_events)
        self._last_id = time.time_ns() // 1000
        self._run_first_id = self._last_id + 1  # events before this one were not watched
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # What the last look saw: every job id, with the JSON of the active ones.
        self._known: dict[str, bytes] = {}
        self._primed = False
        self._token: int | None = None
        self._watermark = utcnow()
        self._waiters: list[asyncio.Future[None]] = []
        self._wake: asyncio.Event | None = None  # set by a commit signal or a waiter
        self.wakeups = 0  # times the watcher woke (ticks, signals, settles), for tests
        self.signal_missed = 0  # commits found by the once-a-second look, not the signal
        self.looks = 0  # store reads on change, for tests and /metrics
        self.dropped = 0  # subscribers dropped for a full queue

    # ------------------------------------------------------------------ subscribers
    @property
    def subscribers(self) -> int:
        return len(self._all) + sum(len(subs) for subs in self._by_job.values())

    def subscribe(self, job_id: str | None = None) -> Subscription:
        """A new subscriber's queue (the watcher starts with the first one)."""
        if self._closed:
            raise UnavailableError(
                "The service is shutting down: event streams are closed; reconnect to the "
                "service once it is back",
                code="shutting_down",
            )
        sub = Subscription(job_id, asyncio.Queue(self.queue_events))
        if job_id is None:
            self._all.add(sub)
        else:
            self._by_job.setdefault(job_id, set()).add(sub)
        self._ensure_watching()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub.job_id is None:
            self._all.discard(sub)
            return
        subs = self._by_job.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_job[sub.job_id]

    def replay_since(self, last_event_id: int) -> list[JobEvent] | None:
        """The events after `last_event_id`, or None when some of them are gone (resync)."""
        if last_event_id < self._run_first_id or last_event_id > self._last_id:
            # Before this watch began (changes since then were not seen), or not ours.
            return None
        if last_event_id == self._last_id:
            return []
        if not self._recent or self._recent[0].event_id > last_event_id + 1:
            return None
        return [event for event in self._recent if event.event_id > last_event_id]

    def current(self, job_id: str) -> bytes | None:
        """An active job's JSON as of the last look; None when finished, deleted or unseen."""
        body = self._known.get(job_id)
        return body if body else None

    async def fresh(self) -> None:
        """Return once the hub has looked at the store as it is now (or later)."""
        if self._primed and self._token is not None and self.store.change_token() == self._token:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._ensure_watching()
        if self._wake is not None:
            self._wake.set()
        await waiter

    def open(self) -> None:
        """Accept subscribers (again: an app that starts after it stopped, as tests do)."""
        self._closed = False

    async def close(self) -> None:
        """End every stream and stop the watcher (the app is shutting down)."""
        self._closed = True
        for sub in [*self._all, *(s for subs in self._by_job.values() for s in subs)]:
            self._drop(sub)
        self._all.clear()
        self._by_job.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def close_threadsafe(self, loop: asyncio.AbstractEventLoop) -> None:
        """`close` from another thread (a signal handler) on the loop that serves."""
        loop.call_soon_threadsafe(lambda: loop.create_task(self.close()))

    # ------------------------------------------------------------------ the watcher
    def _ensure_watching(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="event-hub")

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        signal = self.store.commit_signal() if self.interval_s > 0 else None
        pause = _Pause(self, signal, loop) if signal is not None else None
        next_keepalive = time.monotonic() + self.keepalive_s
        try:
            while self.subscribers or self._waiters:
                self.wakeups += 1
                token = self.store.change_token()
                # Who waits for a look that starts after they asked: this one, taken now.
                waiters, self._waiters = self._waiters, []
                if not self._primed:
                    await asyncio.to_thread(self._prime)
                    self._token = token
                    self._primed = True
                elif token is None or token != self._token or waiters:
                    # The token is taken before the read: a commit during it is looked at again.
                    self._token = token
                    # A local SQLite read of the few active rows (about a millisecond; WAL
                    # readers never wait for a writer) runs on the loop: a hop to a thread
                    # and back costs about as much again. A server's round trips do not.
                    look = (
                        self._look() if pause is not None else await asyncio.to_thread(self._look)
                    )
                    self._publish(look)
                self._wake_waiters(waiters)
                now = time.monotonic()
                if now >= next_keepalive:
                    next_keepalive = now + self.keepalive_s
                    self._broadcast(KEEPALIVE)
                if pause is None:
                    await asyncio.sleep(self.interval_s)
                else:
                    await pause.until_change(next_keepalive - now)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the event hub's watcher failed; its streams end")
            for sub in [*self._all, *(s for subs in self._by_job.values() for s in subs)]:
                self.unsubscribe(sub)
                self._drop(sub)
        finally:
            if pause is not None:
                pause.close()
            # Nobody watches now: what changes until the next subscriber is not seen, so a
            # Last-Event-ID from this run cannot be replayed by the next one.
            self._primed = False
            self._known = {}
            self._run_first_id = self._last_id + 1
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.cancel()
            self._waiters = []

    @staticmethod
    def _wake_waiters(waiters: Sequence[asyncio.Future[None]]) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _prime(self) -> None:
        """What the store holds now, without events: the baseline of the next looks."""
        self._watermark = utcnow() - timedelta(seconds=CREATED_WINDOW_S)
        with self.store.session() as s:
            ids = s.scalars(select(JobRow.id)).all()
            rows = s.scalars(select(JobRow).where(JobRow.status.in_(ACTIVE_STATUSES))).all()
        self.looks += 1
        self._known = dict.fromkeys(ids, _FINISHED)
        for job_id, (body, final) in self._serialize(rows).items():
            self._known[job_id] = _FINISHED if final else body

    def _look(self) -> list[tuple[str, bytes | None, bool]]:
        """One read of what may have changed since the last look (see the module docstring):
        (job id, its JSON or None when deleted, whether it is final) per change."""
        started = utcnow()
        active = [job_id for job_id, body in self._known.items() if body]
        with self.store.session() as s:
            rows = s.scalars(_MAY_HAVE_CHANGED, {"since": self._watermark, "ids": active}).all()
            count = s.scalar(_COUNT) or 0
            seen = {row.id for row in rows}
            expected = len(self._known) + len(seen - self._known.keys())
            ids = set(s.scalars(select(JobRow.id)).all()) if count != expected else None
        self.looks += 1
        self._watermark = started - timedelta(seconds=CREATED_WINDOW_S)
        changes: list[tuple[str, bytes | None, bool]] = []
        todo = [row for row in rows if self._known.get(row.id) != _FINISHED]
        for job_id, (body, final) in self._serialize(todo).items():
            if final:
                self._known[job_id] = _FINISHED
                changes.append((job_id, body, True))
            elif self._known.get(job_id) != body:
                self._known[job_id] = body
                changes.append((job_id, body, False))
        if ids is not None:
            for job_id in [job_id for job_id in self._known if job_id not in ids]:
                del self._known[job_id]
                if job_id not in seen:
                    changes.append((job_id, None, True))
            for job_id in ids - self._known.keys():
                self._known[job_id] = _FINISHED  # committed after the rows were read
        return changes

    def _serialize(self, rows: Sequence[JobRow]) -> dict[str, tuple[bytes, bool]]:
        """Each row's JSON through `job_read`, and whether the job is finished (its JSON then
        also goes to the finished-job cache that GET /jobs/{id} reads)."""
        positions = _queue_positions(rows)
        out: dict[str, tuple[bytes, bool]] = {}
        for row in rows:
            read = job_read(row, positions.get(row.id), self.default_duration_s)
            body = read.model_dump_json().encode()
            final = row.status in FINAL_STATUSES
            if final and self.finished_json is not None:
                self.finished_json.put(row.id, body)
            out[row.id] = (body, final)
        return out

    # ------------------------------------------------------------------ fan-out
    def _publish(self, changes: Sequence[tuple[str, bytes | None, bool]]) -> None:
        for job_id, body, final in changes:
            self._last_id += 1
            if body is None:
                frame = job_frame(b'{"id":"%s"}' % job_id.encode(), self._last_id, "job_deleted")
            else:
                frame = job_frame(body, self._last_id)
            event = JobEvent(self._last_id, job_id, final, frame)
            self._recent.append(event)
            for sub in [*self._all, *self._by_job.get(job_id, ())]:
                self._put(sub, event)

    def _broadcast(self, item: bytes) -> None:
        for sub in [*self._all, *(s for subs in self._by_job.values() for s in subs)]:
            self._put(sub, item)

    def _put(self, sub: Subscription, item: Item) -> None:
        try:
            sub.queue.put_nowait(item)
        except asyncio.QueueFull:
            logger.warning("an event stream fell %d events behind; dropped", self.queue_events)
            self.dropped += 1
            self.unsubscribe(sub)
            self._drop(sub)

    @staticmethod
    def _drop(sub: Subscription) -> None:
        """End `sub`'s stream: its queue is emptied and holds only the end marker."""
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)


class _Pause:
    """The watcher's sleep between two reads of the token, on the store's commit signal (see
    the module docstring): `until_change` returns when a commit may have become visible, a
    waiter came, `SAFETY_S` passed, or the keepalive is due.

    A commit writes the WAL a few times before it becomes visible: the descriptor is not
    watched from its first write until the writes have settled (one wake-up for them all).
    While settling, what it holds is read before each read of the token; settling ends only
    when that read found nothing and the hub has looked at the token as it is, so a commit
    written meanwhile is never left unseen."""

    def __init__(self, hub: EventHub, signal: CommitSignal, loop: asyncio.AbstractEventLoop):
        self.hub = hub
        self.signal = signal
        self.loop = loop
        self.wake = hub._wake = asyncio.Event()
        self._settle_s: float | None = None  # a write was seen; its commit may not be visible
        self._settle_left_s = 0.0
        self._seen_token: int | None = None  # what the hub had looked at when it was written
        self._reading = False
        signal.drain()
        self._arm()

    def _arm(self) -> None:
        if not self._reading:
            self.loop.add_reader(self.signal.fileno(), self._on_write)
            self._reading = True

    def _on_write(self) -> None:
        self.loop.remove_reader(self.signal.fileno())
        self._reading = False
        self._settle_s, self._settle_left_s = SETTLE_FIRST_S, SETTLE_MAX_S
        self._seen_token = self.hub._token
        self.wake.set()

    async def until_change(self, keepalive_in_s: float) -> None:
        if self._settle_s is not None:
            # Read what was written first: a write after this read wakes the next step.
            written = self.signal.drain()
            token = self.hub.store.change_token()
            if token != self.hub._token:
                # A commit is visible that the hub has not looked at (commits come in quick
                # succession: the next one may have been written while this one settled).
                self._settle_s, self._settle_left_s = SETTLE_FIRST_S, SETTLE_MAX_S
                return
            if (written or token == self._seen_token) and self._settle_left_s > 0:
                await asyncio.sleep(self._settle_s)  # a commit is being written or synced
                self._settle_left_s -= self._settle_s
                self._settle_s *= 2
                return
            # Nothing written since the last read, and every visible commit looked at.
            self._settle_s = None
            self._arm()
        try:
            await asyncio.wait_for(self.wake.wait(), max(0.0, min(SAFETY_S, keepalive_in_s)))
        except TimeoutError:
            if self.hub.store.change_token() != self.hub._token:
                self.hub.signal_missed += 1  # a commit the signal did not wake for
                logger.info("the event hub found a commit its signal missed")
        self.wake.clear()

    def close(self) -> None:
        if self._reading:
            self.loop.remove_reader(self.signal.fileno())
            self._reading = False
        self.hub._wake = None
        self.signal.close()


def _queue_positions(rows: Sequence[JobRow]) -> dict[str, int]:
    """1-based positions among queued jobs per host, as `Jobs.queue_positions` counts them
    (the rows of a look hold every queued job)."""
    positions: dict[str, int] = {}
    per_host: dict[str | None, int] = {}
    queued = sorted((r for r in rows if r.status == "queued"), key=lambda r: (r.created_at, r.id))
    for row in queued:
        per_host[row.host] = positions[row.id] = per_host.get(row.host, 0) + 1
    return positions
