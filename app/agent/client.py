"""The agent's HTTP client for the API's `/agent/` routes (its only way to the database).

Calls that must not be lost (register, claim, file downloads, finish) are retried while the
API cannot be reached or answers 5xx (an API restart, a database outage), with a back-off up
to 2 s, until they get an answer or the agent stops; a 4xx is an answer (`ApiRefused`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger(__name__)

TIMEOUT_S = 10.0
_BACKOFF_MIN_S = 0.2
_BACKOFF_MAX_S = 2.0
CHUNK_BYTES = 1024 * 1024


class ApiRefused(Exception):
    """A 4xx from the API: its error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class AgentStopping(Exception):
    """The agent is stopping; a retried call gave up."""


class ApiClient:
    def __init__(self, api: str, token: str, stop: threading.Event) -> None:
        self.stop = stop
        self.http = httpx.Client(
            base_url=api.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT_S,
        )

    def close(self) -> None:
        self.http.close()

    def _backoff(self, backoff_s: float, what: str, problem: str) -> float:
        """Wait before the next try (logged once per outage); AgentStopping when stopping."""
        if backoff_s == 0.0:
            logger.warning("%s failed (%s); retrying", what, problem)
        backoff_s = min(_BACKOFF_MAX_S, max(_BACKOFF_MIN_S, backoff_s * 2))
        if self.stop.wait(backoff_s):
            raise AgentStopping(f"{what}: the agent is stopping")
        return backoff_s

    def call(self, method: str, path: str, body: Any = None, retry: bool = True) -> Any:
        """The JSON answer of `method path`; retried (see module docstring) when `retry`."""
        backoff_s = 0.0
        while True:
            try:
                response = self.http.request(method, path, json=body)
                if response.status_code < 500:
                    break
                problem = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if not retry:
                raise ConnectionError(f"{method} {path}: {problem}")
            backoff_s = self._backoff(backoff_s, f"{method} {path}", problem)
        if response.status_code >= 400:
            raise _refused(response)
        return response.json() if response.content else None

    def download(self, sha256: str, size_bytes: int, dest: Path) -> None:
        """GET /agent/blobs/SHA into `dest`, refusing more than `size_bytes` or another digest;
        retried as `call` is while the API cannot be reached or answers 5xx."""
        path = f"/agent/blobs/{sha256}"
        backoff_s = 0.0
        while True:
            try:
                problem = self._download_once(path, sha256, size_bytes, dest)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                return
            backoff_s = self._backoff(backoff_s, f"GET {path}", problem)

    def _download_once(self, path: str, sha256: str, size_bytes: int, dest: Path) -> str | None:
        """None when `dest` holds the blob; the problem when a retry may help (5xx)."""
        digest = hashlib.sha256()
        received = 0
        with self.http.stream("GET", path) as response:
            if response.status_code >= 400:
                response.read()
                if response.status_code >= 500:
                    return f"{response.status_code} {response.text[:200]}"
                raise _refused(response)
            with dest.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    received += len(chunk)
                    if received > size_bytes:
                        raise ValueError(
                            f"blob {sha256}: the API sent more than its {size_bytes} bytes"
                        )
                    digest.update(chunk)
                    out.write(chunk)
        if received != size_bytes or digest.hexdigest() != sha256:
            raise ValueError(
                f"blob {sha256}: received {received} bytes with sha256 {digest.hexdigest()}, "
                f"expected {size_bytes} bytes"
            )
        return None


def _refused(response: httpx.Response) -> ApiRefused:
    """A 4xx answer as ApiRefused, with the error shape's code and message when it has one."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:500]
    return ApiRefused(response.status_code, code, message)
