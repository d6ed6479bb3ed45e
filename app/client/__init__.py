"""The service's typed HTTP client: `Client` (app.client.client) and its one error, `ApiError`.

The remote CLI (`ovbench submit`, `jobs`, `show`, `cancel`) and the tests use it.
"""

from app.client.client import Client
from app.client.errors import ApiError

__all__ = ["ApiError", "Client"]
