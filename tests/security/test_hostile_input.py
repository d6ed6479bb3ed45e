"""The hostile corpus (tests/data/make_corpus.py) against the real server: every case gets its
4xx in the one error shape, the server stays up, and nothing partial is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.data.make_corpus import MODEL_ID, Case, case_ids
from tests.e2e.conftest import Server
from tests.security.conftest import assert_error_shape, stored_state


@pytest.fixture(scope="module")
def model_id(server: Server, tiny_model: Path) -> str:
    """A real model, so job cases fail on what they test, not on an unknown model."""
    response = server.upload_model(tiny_model)
    assert response.status_code == 201, response.text
    model: dict[str, Any] = response.json()
    return str(model["id"])


@pytest.mark.parametrize("case_id", case_ids())
def test_hostile_request_is_refused_cleanly(
    case_id: str, corpus: tuple[Path, dict[str, Case]], server: Server, model_id: str
) -> None:
    directory, cases = corpus
    case = cases[case_id]
    body = (directory / case.body_file).read_bytes().replace(MODEL_ID.encode(), model_id.encode())
    worker_pid = server.worker_pid()
    before = stored_state(server.data_dir, server.client)

    response = server.client.request(
        case.method, case.path, content=body, headers={"Content-Type": case.content_type}
    )

    assert_error_shape(response, case.statuses, case.code)
    assert case.message in response.json()["error"]["message"]
    assert server.process is not None and server.process.poll() is None, "the server died"
    assert server.client.get("/healthz").status_code == 200
    assert server.worker_pid() == worker_pid, "the worker was replaced"
    assert stored_state(server.data_dir, server.client) == before, "something was stored"


def test_corpus_is_large_and_covers_every_route(corpus: tuple[Path, dict[str, Case]]) -> None:
    directory, cases = corpus
    assert len(cases) >= 60
    assert {c.path.partition("?")[0] for c in cases.values()} == {"/models", "/datasets", "/jobs"}
    assert (directory / "corpus.json").is_file()
    print(f"hostile corpus: {len(cases)} cases")
