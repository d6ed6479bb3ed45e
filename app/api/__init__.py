"""The HTTP API (FastAPI): `create_app(settings)`.

`create_app` is imported on first use, so that importing the wire models (`app.api.schemas`,
as `app.client` does) does not load FastAPI, the store and OpenVINO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from app.api.app import create_app

        return create_app
    raise AttributeError(f"module 'app.api' has no attribute {name!r}")
