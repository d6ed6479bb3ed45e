"""Access control: optional bearer tokens in front of every route but `/healthz`.

The dashboard's shell (`/`) and its static files (`/web/`) load without one too: the page
asks for a token and sends it itself.

With no tokens configured (`OVBENCH_API_TOKENS`, `OVBENCH_API_TOKENS_FILE`) the API is open
and relies on binding to 127.0.0.1. With tokens, every request (also `/metrics`, `/docs` and
`/openapi.json`, and unknown paths) needs `Authorization: Bearer <token>`, checked before
routing and before the body is read, with a constant-time comparison against every token.
Anything else is 401 in the one error shape with `WWW-Authenticate: Bearer`.

Fleet mode adds agent tokens (`OVBENCH_AGENT_TOKENS`, name=token): they open the `/agent/`
routes only (checked there, by `agent_host`), and a request with one anywhere else is 403,
whether or not user tokens are configured: an agent cannot submit jobs. User tokens do not
open `/agent/`.
"""

from __future__ import annotations

import hmac
import json
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_body

logger = logging.getLogger(__name__)

# Reachable without a token: liveness probes (load balancers, container health checks), and
# the dashboard's shell and static assets (no data in them: the page asks for a token and
# sends it with every API call it makes).
PUBLIC_PATHS = frozenset({"/healthz", "/"})
PUBLIC_PREFIXES = ("/web/",)
AGENT_PREFIX = "/agent/"  # the agents' routes: their own tokens, checked by the routes
BEARER_SCHEME = "bearer"


def token_matches(presented: str, tokens: list[bytes]) -> bool:
    """Constant-time comparison against every configured token (no early exit)."""
    candidate = presented.encode("utf-8", "replace")
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate, token)
    return matched


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is exactly one."""
    values = [value for name, value in headers if name.lower() == b"authorization"]
    if len(values) != 1:
        return None
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    if scheme.lower() != BEARER_SCHEME or not token.strip():
        return None
    return token.strip()


class TokenAuthMiddleware:
    """Pure ASGI middleware: 401 unless the request carries one of `tokens` (when there are
    any); 403 for an agent token outside `/agent/`."""

    def __init__(
        self, app: ASGIApp, tokens: list[str], agent_tokens: list[str] | None = None
    ) -> None:
        if not tokens and not agent_tokens:
            raise ValueError("TokenAuthMiddleware needs at least one token")
        self.app = app
        self.tokens = [t.encode("utf-8") for t in tokens]
        self.agent_tokens = [t.encode("utf-8") for t in agent_tokens or []]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        agent_route = bool(self.agent_tokens) and path.startswith(AGENT_PREFIX)
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if scope["type"] != "http" or public or agent_route:
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope.get("headers", []))
        if token is not None and self.agent_tokens and token_matches(token, self.agent_tokens):
            await _refuse(
                scope, send, 403, "forbidden", "An agent token opens the /agent/ routes only"
            )
            return
        if not self.tokens or (token is not None and token_matches(token, self.tokens)):
            await self.app(scope, receive, send)
            return
        message = (
            "Missing bearer token: send 'Authorization: Bearer <token>'"
            if token is None
            else "Invalid bearer token"
        )
        await _refuse(scope, send, 401, "unauthorized", message)


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    logger.info("%d for %s %s: %s", status, scope.get("method"), scope.get("path"), message)
    body = json.dumps(error_body(code, message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="ovbench"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
