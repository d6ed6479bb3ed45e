"""POST /datasets with `expected_<output>.npy` files: kept under their names, found by the engine."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import openvino as ov
from fastapi.testclient import TestClient

from app.engine import inputs, outputs
from app.engine import model as model_mod
from app.engine.runner import set_request_inputs
from app.store import Store
from tests.factories import write_identity_model

KNOWN = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_expected_files_keep_their_names_and_the_engine_compares_them(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    files = [
        ("file", ("input.npy", _npy(KNOWN))),
        ("file", ("expected_output.npy", _npy(KNOWN))),
        ("file", ("expected_det:boxes.npy", _npy(KNOWN))),
        ("file", ("expected_my out.npy", _npy(KNOWN))),  # the space becomes "_"
    ]
    response = client.post("/datasets", files=files)
    assert response.status_code == 201, response.text
    body = response.json()
    names = {f["name"]: f["kind"] for f in body["files"]}
    assert names == {
        "input.npy": "npy",
        "expected_output.npy": "npy",
        "expected_det:boxes.npy": "npy",
        "expected_my_out.npy": "npy",
    }
    directory = store.blobs.dataset_dir(body["id"])
    found = inputs.collect_input_files([str(directory)])
    assert set(found.arrays) == {"input"}
    assert set(found.expected) == {"output", "det:boxes", "my_out"}

    # The engine reads the stored folder: "output" is compared, the others name no output.
    core = ov.Core()
    model = model_mod.read_model(core, write_identity_model(tmp_path))
    resolved = model_mod.resolve_inputs(model, None, None, None, None)
    per_request, _, _ = inputs.plan_and_fill(resolved.slots, found, 1, rgb=False)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    set_request_inputs(request, per_request[0], dynamic=False)
    request.infer()
    check, warns = outputs.check(request, compiled.outputs, found.expected, 1e-2, 1e-3)
    assert [c.expected_file for c in check.compared] == ["expected_output.npy"]
    assert check.outputs_match is True
    assert sorted(w.split("'")[1] for w in warns) == [
        "expected_det:boxes.npy",
        "expected_my_out.npy",
    ]
