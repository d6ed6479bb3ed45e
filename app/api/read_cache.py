"""Polled reads answered from memory while the database has not changed, with ETags.

Dashboards and scripts poll `GET /jobs/{id}` and `GET /jobs` while a benchmark runs on the
same host, and every millisecond of CPU the API spends is taken from the measurement.
The responses of the routes below are a pure function of the database, so this pure ASGI
middleware keeps each one's bytes, keyed by path and query string, for as long as the
store's change token (SQLite's `data_version`: any commit by any process changes it) stays
the same. A poll then costs a token read and a send instead of queries and serialization;
the worker's progress writes (twice a second) invalidate everything, so what is served is
never older than the last commit.

Every cacheable 200 carries a strong `ETag`; `If-None-Match` with it gets 304 and no body.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.store import Store

# GETs whose 200 body depends on nothing but the database (not /readyz: heartbeat age).
CACHEABLE_PATHS = re.compile(r"^/(?:(?:jobs|models|datasets)(?:/[^/]+)?|devices|compare)$")
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class _Entry:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes


def _etag(body: bytes) -> bytes:
    return b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'


def _if_none_match(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            return bytes(value)
    return None


def _matches(if_none_match: bytes | None, etag: bytes) -> bool:
    if if_none_match is None:
        return False
    if if_none_match.strip() == b"*":
        return True
    tags = (tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b","))
    return etag in tags


class ReadCache:
    """Pure ASGI middleware: serves cacheable GETs from memory while the store is unchanged."""

    def __init__(self, app: ASGIApp, store: Store, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.app = app
        self.store = store
        self.max_bytes = max_bytes
        self._token: int | None = None
        self._entries: dict[tuple[str, bytes], _Entry] = {}
        self._bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not CACHEABLE_PATHS.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        token = self.store.change_token()
        if token is None:
            await self.app(scope, receive, send)
            return
        if token != self._token:
            self._entries.clear()
            self._bytes = 0
            self._token = token
        key = (scope["path"], scope["query_string"])
        entry = self._entries.get(key)
        if entry is not None:
            await self._answer(entry, _if_none_match(scope), send)
            return
        await self._fill(scope, receive, send, key, token)

    async def _fill(
        self, scope: Scope, receive: Receive, send: Send, key: tuple[str, bytes], token: int
    ) -> None:
        """Run the route, buffering its response: a 200 is kept and sent with its ETag."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffer(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            if start["status"] != 200:
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            entry = _Entry([*start.get("headers", [])], body, _etag(body))
            # Kept only if nothing committed meanwhile (the body may be newer than `token`).
            if token == self._token and len(body) <= self.max_bytes:
                self._bytes += len(body)
                if self._bytes > self.max_bytes:
                    self._entries.clear()
                    self._bytes = len(body)
                self._entries[key] = entry
            await self._answer(entry, _if_none_match(scope), send)

        await self.app(scope, receive, buffer)

    async def _answer(self, entry: _Entry, if_none_match: bytes | None, send: Send) -> None:
        if _matches(if_none_match, entry.etag):
            headers = [(b"etag", entry.etag)]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*entry.headers, (b"etag", entry.etag)],
            }
        )
        await send({"type": "http.response.body", "body": entry.body})
