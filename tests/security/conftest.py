"""Fixtures for security tests: one real `ovbench serve` per module, the hostile corpus, and
a snapshot of what the data dir stores (files and rows), to prove nothing partial is kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.data.make_corpus import Case, build_corpus
from tests.e2e.conftest import Server

# Files the service rewrites on its own (database, its WAL, the serve lock): not "stored data".
_BOOKKEEPING = ("ovbench.db", "serve.lock")


@pytest.fixture(scope="session")
def corpus(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> tuple[Path, dict[str, Case]]:
    """(directory, {case id: case}): the hostile corpus, written once per session."""
    directory = tmp_path_factory.mktemp("hostile_corpus")
    return directory, build_corpus(directory, tiny_model)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `ovbench serve` on loopback with default settings (its worker sees the CPU)."""
    base = tmp_path_factory.mktemp("security_server")
    instance = Server(base / "data", base / "serve.log")
    try:
        yield instance.start()
    finally:
        instance.close()


def stored_state(data_dir: Path, client: Any) -> dict[str, Any]:
    """What the service holds: every file under the data dir but its bookkeeping, and the
    models, datasets and jobs the API lists."""
    files = sorted(
        str(p.relative_to(data_dir))
        for p in data_dir.rglob("*")
        if p.is_file() and not p.name.startswith(_BOOKKEEPING)
    )
    jobs = client.get("/jobs", params={"limit": 1000})
    return {
        "files": files,
        "models": sorted(m["id"] for m in client.get("/models").json()),
        "datasets": sorted(d["id"] for d in client.get("/datasets").json()),
        "jobs": sorted(j["id"] for j in jobs.json()),
    }


def assert_error_shape(response: Any, statuses: list[int], code: str | None = None) -> None:
    """A 4xx in the one error shape: {"error": {"code", "message", "details"}}."""
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
