"""Service errors and the one handler that renders every non-2xx response.

Every error body has the same shape::

    {"error": {"code": "model_not_found", "message": "...", "details": ...}}

`ServiceError` and its subclasses are plain exceptions (the store raises them too);
`install_error_handlers(app)` wires them, FastAPI's request validation errors, unknown
routes and unexpected exceptions (500, generic message, logged) into that shape.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import JSONResponse

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error with an HTTP status, a stable code and a user-facing message."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        code: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.details = details


class BadRequestError(ServiceError):
    status_code = 400
    code = "bad_request"


class UnauthorizedError(ServiceError):
    """No valid `Authorization: Bearer <token>` while API tokens are configured."""

    status_code = 401
    code = "unauthorized"


class ForbiddenError(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFoundError(ServiceError):
    status_code = 404
    code = "not_found"


class ConflictError(ServiceError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaError(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class ValidationError(ServiceError):
    status_code = 422
    code = "validation_error"


class QueueFullError(ServiceError):
    status_code = 503
    code = "queue_full"


class UnavailableError(ServiceError):
    status_code = 503
    code = "unavailable"


class InsufficientStorageError(ServiceError):
    """The data dir's quota (`OVBENCH_MAX_DATA_BYTES`) would be passed."""

    status_code = 507
    code = "insufficient_storage"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one error shape, as a dict."""
    return {"error": {"code": code, "message": message, "details": details}}


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """pydantic errors without the echoed input or non-JSON context."""
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in errors
    ]


def describe_validation(details: list[dict[str, Any]]) -> str:
    """A one-line message from validation details."""
    parts = []
    for err in details[:5]:
        loc = ".".join(p for p in err["loc"] if p not in ("body", "query", "path"))
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "Invalid request: " + "; ".join(parts) if parts else "Invalid request"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every non-2xx response the one error shape."""
    import sqlalchemy.exc
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import JSONResponse

    def _json(
        status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> JSONResponse:
        return JSONResponse(status_code=status_code, content=body, headers=headers)

    async def handle_service_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return _json(exc.status_code, error_body(exc.code, exc.message, exc.details))

    async def handle_request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = validation_details(exc.errors())
        return _json(422, error_body("validation_error", describe_validation(details), details))

    async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"No route for {request.method} {request.url.path}"
        return _json(exc.status_code, error_body(code, message), dict(exc.headers or {}))

    async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _json(
            500, error_body("internal_error", "Internal server error; see the service log")
        )

    async def handle_database_down(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("database unreachable on %s %s: %s", request.method, request.url.path, exc)
        return _json(
            503,
            error_body(
                "database_unavailable",
                "The database cannot be reached right now; retry in a few seconds (a "
                "submission retried with the same Idempotency-Key never makes a second job)",
            ),
            {"Retry-After": "2"},
        )

    app.add_exception_handler(sqlalchemy.exc.OperationalError, handle_database_down)
    app.add_exception_handler(sqlalchemy.exc.InterfaceError, handle_database_down)
    app.add_exception_handler(ServiceError, handle_service_error)
    app.add_exception_handler(RequestValidationError, handle_request_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)
