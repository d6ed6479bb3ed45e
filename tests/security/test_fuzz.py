"""Fuzz the whole API from its own OpenAPI document with schemathesis (in-process, ASGI).

Every operation gets generated requests, valid by the schema (positive) and invalid on
purpose (negative). Across at least 1,000 requests: no 5xx, and every response conforms to
the document (status code declared, content type, headers, body schema). The counts are
printed (`pytest -s` shows them).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what we ship
    warnings.filterwarnings("ignore", message=".*httpx.*")
    import schemathesis
    from fastapi import FastAPI
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import Failure, FailureGroup
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

from app.api import create_app
from app.engine.spec import DeviceInfo
from app.settings import Settings
from tests.api.conftest import model_files

MIN_REQUESTS = 1000
# Examples per operation and generation mode; 18 operations x 2 modes x 80, less what
# hypothesis finds exhausted (a route without parameters has one request).
EXAMPLES = 80
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[FastAPI]:
    """The real app over a fresh data dir, with a model, a CPU and a fresh worker heartbeat."""
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    app = create_app(
        Settings(
            data_dir=data_dir,
            max_queue=100_000,  # a full queue is a documented 503, but not what we fuzz
            heartbeat_timeout_s=3600,  # /readyz: no worker process here, one heartbeat
            max_upload_bytes=256 * 1024,
        )
    )
    store = app.state.store
    store.workers.replace_devices([DeviceInfo(name="CPU", full_name="Fuzz CPU")])
    store.workers.record_start(os.getpid())
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        assert client.post("/models", files=model_files(tiny_model)).status_code == 201
    yield app
    store.close()


# Server-sent event streams stay open until their job ends: not a request/response to fuzz.
EVENT_STREAMS = frozenset({"/events", "/jobs/{job_id}/events"})


def test_fuzz_openapi(fuzz_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []
    violations: Counter[str] = Counter()
    examples: list[str] = []
    operations = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in EVENT_STREAMS:
            continue  # endless responses: tests/api/test_events.py and the e2e tests cover them
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                response = case.call()
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    server_errors.append(f"{case.method} {case.path}: {response.status_code}")
                try:
                    case.validate_response(response, checks=CHECKS)
                except (Failure, FailureGroup) as exc:  # a group: one entry per failure
                    failures = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
                    for failure in failures:
                        label = f"{case.operation.label}: {type(failure).__name__}"
                        violations[label] += 1
                        if len(examples) < 10:
                            text = str(getattr(failure, "title", "")) or str(failure)
                            examples.append(f"{label} [{response.status_code}] {text[:300]}")

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                assert mode is GenerationMode.NEGATIVE, operation.label

    total = sum(statuses.values())
    print(
        f"\nschemathesis {schemathesis.__version__ if hasattr(schemathesis, '__version__') else ''}"
        f": {total} requests over {operations} operations; status codes {dict(sorted(statuses.items()))}"
        f"; server errors: {len(server_errors)}; schema violations: {sum(violations.values())}"
    )
    for line in examples:
        print("  ", line)
    assert total >= MIN_REQUESTS
    assert not server_errors, server_errors[:10]
    assert not violations, dict(violations)


def test_method_not_allowed_lists_every_method(fuzz_app: FastAPI) -> None:
    """Starlette's 405 names only the first route matching the path; ours names them all."""
    from fastapi.testclient import TestClient

    with TestClient(fuzz_app) as client:
        for path, allowed in [("/jobs", "GET, POST"), ("/models/x", "DELETE, GET")]:
            response = client.request("PUT", path)
            assert response.status_code == 405
            assert response.headers["Allow"] == allowed
            assert response.json()["error"]["code"] == "method_not_allowed"
