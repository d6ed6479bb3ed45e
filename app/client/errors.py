"""`ApiError`: every way a call to the service can fail, as one exception."""

from __future__ import annotations

from typing import Any

import httpx

# Codes of the failures that have no HTTP answer (status None).
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
BAD_RESPONSE = "bad_response"


class ApiError(Exception):
    """A call that did not get the answer it asked for.

    - The server answered non-2xx: `status` and the error body's `code`, `message` and
      `details` (`{"error": {"code", "message", "details"}}`); a body in another shape gives
      code `http_<status>` and the start of the body as the message.
    - No answer (connection refused, DNS, timeout): `status` None, code `unreachable` or
      `timeout`, and a message naming the URL.
    - A 2xx body that is not what the service sends (another program at that URL): code
      `bad_response`.
    """

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        details: Any = None,
        url: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if status is not None else message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.url = url


def from_response(response: httpx.Response) -> ApiError:
    """The error a non-2xx answer carries, in the service's one error shape when it has it."""
    url = str(response.request.url)
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        details = error.get("details")
    except (ValueError, KeyError, TypeError, AttributeError):
        text = response.text.strip()[:500] or response.reason_phrase
        code, message, details = f"http_{response.status_code}", text, None
    return ApiError(response.status_code, code, message, details, url)


def from_transport(exc: httpx.TransportError, url: str, timeout_s: float) -> ApiError:
    if isinstance(exc, httpx.TimeoutException):
        return ApiError(
            None, TIMEOUT, f"No answer from {url} within {timeout_s:g} s ({exc})", url=url
        )
    return ApiError(None, UNREACHABLE, f"Cannot reach {url}: {exc or type(exc).__name__}", url=url)
