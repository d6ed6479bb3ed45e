"""The OpenAPI schema is good enough for a generated client: openapi-python-client turns
/openapi.json into a package whose calls have our route names and whose job has a typed
result, read here against a real job."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.read_cache import CACHEABLE_PATHS
from app.settings import Settings
from app.store import Store
from app.worker.worker import Worker

BIN = Path(sys.executable).parent
PACKAGE = "ovbench_generated_client"


@pytest.fixture
def generated(client: TestClient, tmp_path: Path) -> Iterator[ModuleType]:
    """The client package openapi-python-client generates from this app's /openapi.json."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(client.get("/openapi.json").json()))
    command = [str(BIN / "openapi-python-client"), "generate", "--path", str(spec)]
    done = subprocess.run(
        [*command, "--meta", "none", "--output-path", str(tmp_path / PACKAGE)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_a_generated_client_reads_a_jobs_throughput_as_a_typed_attribute(
    generated: ModuleType,
    client: TestClient,
    settings: Settings,
    store: Store,
    model: dict[str, Any],
) -> None:
    submitted = client.post(
        "/jobs", json={"model_id": model["id"], "api": "async", "niter": 50, "nireq": 2}
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    Worker(settings, store).run(burst=True)

    api = generated.Client(base_url="http://testserver")
    api.set_httpx_client(client)  # the TestClient is an httpx.Client on this app
    read_job = importlib.import_module(f"{PACKAGE}.api.jobs.read_job")
    job = read_job.sync(client=api, job_id=job_id)
    models = importlib.import_module(f"{PACKAGE}.models")

    assert isinstance(job, models.JobRead), job
    assert isinstance(job.result, models.BenchmarkResult)
    assert (
        job.result.throughput_fps
        == client.get(f"/jobs/{job_id}").json()["result"]["throughput_fps"]
    )
    assert job.result.throughput_fps > 0
    assert job.result.config.nireq == 2  # nested models are typed too
    assert isinstance(job.params, models.JobParams) and job.params.niter == 50
    # operation ids are the route names, not FastAPI's read_job_jobs__job_id__get
    calls = {p.stem for p in Path(generated.__file__).parent.glob("api/*/*.py")}
    assert {"create_job", "read_job", "list_jobs", "create_sweep", "read_sweep"} <= calls


def test_the_schema_documents_the_read_caches_answers_and_headers(client: TestClient) -> None:
    """Every GET the read cache answers documents its ETag and its 304; lists their
    X-Total-Count; POST /jobs its Idempotent-Replayed."""
    paths = client.get("/openapi.json").json()["paths"]
    cached = [
        path
        for path in paths
        if "get" in paths[path] and CACHEABLE_PATHS.match(path.replace("{", "").replace("}", ""))
    ]
    assert {"/jobs", "/jobs/{job_id}", "/models", "/datasets", "/devices", "/compare"} <= set(
        cached
    )
    for path in cached:
        answers = paths[path]["get"]["responses"]
        assert "304" in answers, path
        assert "ETag" in answers["200"]["headers"], path
    for path in ("/jobs", "/sweeps"):
        assert "X-Total-Count" in paths[path]["get"]["responses"]["200"]["headers"], path
    created = paths["/jobs"]["post"]["responses"]["202"]["headers"]
    assert {"Location", "Idempotent-Replayed"} <= set(created)
