"""Webhooks: who may be called, how a delivery is signed, and the sender (README: Webhooks).

A job or sweep with a `callback_url` gets a delivery row in the outbox in the transaction
that ends it (app/store/deliveries.py). `WebhookSender` is one thread in each API process:
it claims due deliveries (a lease, safe across processes), builds the body at the first
attempt and keeps it (every retry sends the same bytes), POSTs it with httpx and short
timeouts, and records the outcome: delivered on a 2xx, else due again after an exponential
backoff with jitter, until `webhook_retry_for_s` after the end (then `failed`).

The body is built by a function the API layer hands in (`render(kind, id) -> bytes`: the
job's JSON as GET /jobs/{id} returns it, the sweep's as GET /sweeps/{id}), so this module
never imports app.api and the wire views have one builder.

Signing (the Standard Webhooks layout, with our header names): with `webhook_secret` set,
`X-Ovbench-Signature: sha256=<hex>` where hex = HMAC-SHA256(secret,
"<X-Ovbench-Delivery>.<X-Ovbench-Timestamp>." + body bytes). The timestamp is the attempt's
(unix seconds), so a receiver can refuse old replays, and the delivery id is signed, so a
replayed body cannot pass as a new delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from app.api.schemas import check_callback_syntax
from app.errors import NotFoundError, ValidationError
from app.settings import Settings
from app.store import Store
from app.store.tables import DeliveryRow, utcnow

logger = logging.getLogger(__name__)

IDLE_READ_S = 60.0  # the due time is read at least this often, whatever the token says

SIGNATURE_HEADER = "X-Ovbench-Signature"
DELIVERY_HEADER = "X-Ovbench-Delivery"
EVENT_HEADER = "X-Ovbench-Event"
TIMESTAMP_HEADER = "X-Ovbench-Timestamp"
ATTEMPT_HEADER = "X-Ovbench-Attempt"
CLAIM_BATCH = 20

Render = Callable[[str, str], bytes]


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 over "<delivery id>.<timestamp>." + body."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def host_allowed(url: str, allow: list[str]) -> bool:
    """Whether `url`'s host (any port) or host:port is in `allow` (lower-case entries)."""
    try:
        host, port = check_callback_syntax(url)
    except ValueError:
        return False
    return any(entry in allow for entry in (host, f"{host}:{port}", f"[{host}]:{port}"))


def check_callback_url(url: str | None, settings: Settings) -> None:
    """422 `callback_not_allowed` unless the callback's host is in OVBENCH_WEBHOOK_ALLOW."""
    if url is None or host_allowed(url, settings.webhook_allow_list()):
        return
    allow = settings.webhook_allow_list()
    raise ValidationError(
        f"callback_url {url!r}: its host is not in this server's OVBENCH_WEBHOOK_ALLOW "
        f"({', '.join(allow) if allow else 'empty: no callbacks allowed'}); ask its admin "
        "to add the host (or host:port)",
        code="callback_not_allowed",
        details={"field": "callback_url", "allowed": allow},
    )


def retry_delay_s(attempts: int, first_s: float, max_s: float) -> float:
    """The delay after the `attempts`-th failed attempt: first_s, doubling, capped at max_s,
    with +-20% jitter (so receivers that failed together are not retried together)."""
    base = min(max_s, first_s * 2 ** min(attempts - 1, 60))
    return base * random.uniform(0.8, 1.2)


class WebhookSender:
    """The outbox's sender: `start()` a thread, `stop()` it; `run_once()` for one pass."""

    def __init__(self, store: Store, settings: Settings, render: Render) -> None:
        self.store = store
        self.settings = settings
        self.render = render
        self.lease_s = 2 * settings.webhook_timeout_s + 5  # one attempt ends well within it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(
            timeout=httpx.Timeout(settings.webhook_timeout_s),
            follow_redirects=False,  # a redirect could leave the allowed hosts
            trust_env=False,  # no proxy from the environment: the allowed host is the one called
        )

    def start(self) -> None:
        if not self.settings.webhook_secret and self.settings.webhook_allow_list():
            logger.warning("OVBENCH_WEBHOOK_SECRET is not set: webhooks are sent unsigned")
        self._thread = threading.Thread(target=self._loop, name="webhook-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.webhook_timeout_s + 2)
            self._thread = None
        self._client.close()

    def _loop(self) -> None:
        """Passes while deliveries are due; between them one look every
        `webhook_poll_interval_s` that asks the store only when it may hold something new:
        the earliest pending delivery's due time is read again after a commit (the store's
        change token moved), after a pass, and once a minute; passes run once it is due.
        Without a change token (PostgreSQL) every look is a pass, as the claim is the query."""
        token: object = object()  # forces a read of the due time
        due_at: datetime | None = None
        read_s = 0.0
        while not self._stop.is_set():
            busy = False
            try:
                current = self.store.change_token()
                if current is None:
                    busy = self.run_once() > 0
                else:
                    if current != token or time.monotonic() - read_s >= IDLE_READ_S:
                        token, read_s = current, time.monotonic()
                        due_at = self.store.deliveries.next_due_at()
                    if due_at is not None and utcnow() >= due_at:
                        busy = self.run_once() > 0
                        token = object()  # what the pass recorded: read the due time again
            except Exception:
                logger.exception("webhook sender pass failed")
                token = object()
            if not busy:
                self._stop.wait(self.settings.webhook_poll_interval_s)

    def run_once(self) -> int:
        """Claim the due deliveries and attempt each; how many were attempted."""
        rows = self.store.deliveries.claim_due(self.lease_s, CLAIM_BATCH)
        for row in rows:
            if self._stop.is_set():
                break  # the rest are due again when their lease ends
            self._attempt(row)
        return len(rows)

    def _attempt(self, row: DeliveryRow) -> None:
        token = row.claim_token or ""
        deliveries = self.store.deliveries
        if not host_allowed(row.url, self.settings.webhook_allow_list()):
            deliveries.record_failed_attempt(
                row.id, token, None, "host not in OVBENCH_WEBHOOK_ALLOW", None
            )
            logger.warning("delivery %s to %s given up: host not allowed", row.id, row.url)
            return
        body = row.body
        if body is None:
            try:
                body = deliveries.keep_body(row.id, self.render(row.subject_kind, row.subject_id))
            except NotFoundError:
                deliveries.record_failed_attempt(
                    row.id, token, None, f"the {row.subject_kind} was deleted", None
                )
                return
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ovbench-webhooks",
            DELIVERY_HEADER: row.id,
            EVENT_HEADER: row.event,
            TIMESTAMP_HEADER: timestamp,
            ATTEMPT_HEADER: str(row.attempts),
        }
        if self.settings.webhook_secret:
            headers[SIGNATURE_HEADER] = signature(
                self.settings.webhook_secret, row.id, timestamp, bytes(body)
            )
        status: int | None = None
        try:
            response = self._client.post(row.url, content=bytes(body), headers=headers)
            status = response.status_code
            error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if status is not None and 200 <= status < 300:
            if deliveries.record_delivered(row.id, token, status):
                logger.info(
                    "delivery %s (%s %s) delivered to %s at attempt %d",
                    *(row.id, row.event, row.subject_id, row.url, row.attempts),
                )
            return
        retry_at = self._retry_at(row)
        deliveries.record_failed_attempt(row.id, token, status, error, retry_at)
        if retry_at is None:
            logger.warning(
                "delivery %s to %s given up after %d attempts: %s",
                *(row.id, row.url, row.attempts, error),
            )

    def _retry_at(self, row: DeliveryRow) -> datetime | None:
        """When to try again, or None once `webhook_retry_for_s` since the end has passed."""
        now = utcnow()
        deadline = row.created_at + timedelta(seconds=self.settings.webhook_retry_for_s)
        if now >= deadline:
            return None
        delay = retry_delay_s(
            row.attempts, self.settings.webhook_first_retry_s, self.settings.webhook_max_retry_s
        )
        return min(now + timedelta(seconds=delay), deadline)
