"""POST/GET/DELETE /models: upload, dedupe by content, safe names, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.store import Store
from tests.api.conftest import MAX_UPLOAD_BYTES, assert_error, model_files
from tests.engine.model_builders import write_onnx_unknown_rank_conv, write_tflite_model
from tests.factories import write_onnx_model


def test_upload_describes_the_model(model: dict[str, Any]) -> None:
    assert model["name"] == "tiny_cnn" and model["format"] == "openvino_ir"
    assert model["inputs"] == [
        {"name": "input", "shape": "[1,3,64,64]", "element_type": "f32", "layout": ""}
    ]
    assert [o["name"] for o in model["outputs"]] == ["logits"]
    assert {f["name"] for f in model["files"]} == {"model.xml", "model.bin"}
    assert model["size_bytes"] == sum(f["size_bytes"] for f in model["files"])
    assert len(model["sha256"]) == 64


def test_same_content_returns_the_same_model_with_200(
    client: TestClient, model: dict[str, Any], tiny_model: Path, tmp_path: Path
) -> None:
    renamed = tmp_path / "other.xml"
    renamed.write_bytes(tiny_model.read_bytes())
    renamed.with_suffix(".bin").write_bytes(tiny_model.with_suffix(".bin").read_bytes())
    again = client.post("/models", files=model_files(renamed))
    assert again.status_code == 200
    assert again.json()["id"] == model["id"]
    assert len(client.get("/models").json()) == 1


def test_model_files_are_stored_by_hash_and_materialised_with_safe_names(
    client: TestClient, store: Store, tiny_model: Path
) -> None:
    files = [
        ("file", ("../../evil.xml", tiny_model.read_bytes())),
        ("file", ("/etc/evil.bin", tiny_model.with_suffix(".bin").read_bytes())),
    ]
    body = client.post("/models", files=files).json()
    model_dir = store.blobs.model_dir(body["id"])
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.bin", "model.xml"]
    assert (model_dir / "model.xml").read_bytes() == tiny_model.read_bytes()
    assert not (store.data_dir.parent / "evil.xml").exists()
    assert list(store.blobs.tmp_dir.iterdir()) == []


def test_onnx_upload(client: TestClient, tmp_path: Path) -> None:
    onnx_path = write_onnx_model(tmp_path)
    response = client.post("/models", files={"file": (onnx_path.name, onnx_path.read_bytes())})
    assert response.status_code == 201, response.text
    assert response.json()["format"] == "onnx"


def test_get_list_delete(client: TestClient, model: dict[str, Any], store: Store) -> None:
    assert client.get(f"/models/{model['id']}").json() == model
    assert [m["id"] for m in client.get("/models").json()] == [model["id"]]
    assert client.delete(f"/models/{model['id']}").status_code == 204
    assert_error(client.get(f"/models/{model['id']}"), 404, "model_not_found")
    assert_error(client.delete(f"/models/{model['id']}"), 404, "model_not_found")
    assert (
        list(store.blobs.blobs_dir.rglob("*.*")) == []
        and not store.blobs.model_dir(model["id"]).exists()
    )


def test_delete_while_a_job_uses_it_is_409(client: TestClient, model: dict[str, Any]) -> None:
    job = client.post(
        "/jobs", json={"model_id": model["id"], "device": "CPU", "api": "sync"}
    ).json()
    error = assert_error(client.delete(f"/models/{model['id']}"), 409, "in_use")
    assert error["details"]["job_ids"] == [job["id"]]
    client.post(f"/jobs/{job['id']}/cancel")
    assert client.delete(f"/models/{model['id']}").status_code == 204


def test_xml_without_bin_is_422(client: TestClient, tiny_model: Path) -> None:
    response = client.post("/models", files={"file": ("m.xml", tiny_model.read_bytes())})
    assert ".bin" in assert_error(response, 422, "ir_weights_missing")["message"]


def test_unknown_format_is_415_naming_the_file(client: TestClient) -> None:
    response = client.post("/models", files={"file": ("notes.txt", b"hello")})
    assert "notes.txt" in assert_error(response, 415, "unsupported_model_format")["message"]


def test_unreadable_model_is_422_and_leaves_nothing(
    client: TestClient, store: Store, tiny_model: Path
) -> None:
    files = [("file", ("m.xml", b"<net>not really</net>")), ("file", ("m.bin", b"1234"))]
    error = assert_error(client.post("/models", files=files), 422, "model_unreadable")
    assert "m.xml" in error["message"] or "model.xml" in error["message"]
    assert list(store.blobs.blobs_dir.rglob("*.*")) == []
    assert list(store.blobs.models_dir.iterdir()) == []
    assert list(store.blobs.tmp_dir.iterdir()) == []


def test_too_large_file_is_413_and_nothing_is_left_on_disk(
    client: TestClient, store: Store
) -> None:
    big = b"x" * (MAX_UPLOAD_BYTES + 1)
    response = client.post("/models", files=[("file", ("m.onnx", big))])
    error = assert_error(response, 413, "payload_too_large")
    assert "m.onnx" in error["message"]
    assert list(store.blobs.tmp_dir.iterdir()) == []
    assert list(store.blobs.blobs_dir.iterdir()) == []


def test_not_multipart_is_415(client: TestClient) -> None:
    assert_error(client.post("/models", json={"file": "x"}), 415, "unsupported_media_type")


def test_unknown_form_field_is_422(client: TestClient, tiny_model: Path) -> None:
    response = client.post("/models", files=model_files(tiny_model), data={"colour": "blue"})
    assert_error(response, 422, "unknown_fields")


def test_onnx_that_openvino_cannot_convert_is_422_naming_the_upload_and_the_cause(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    path = write_onnx_unknown_rank_conv(tmp_path, "my_net.onnx")
    response = client.post("/models", files={"file": ("my_net.onnx", path.read_bytes())})
    message = assert_error(response, 422, "model_unreadable")["message"]
    assert message.startswith("OpenVINO cannot read model 'my_net.onnx'")
    assert "The input data tensor's rank has to be known (static)" in message
    assert "model.onnx" not in message and str(store.data_dir) not in message
    assert ".bin" not in message
    assert "(extensions)" in message and "(-l)" not in message
    assert list(store.blobs.models_dir.iterdir()) == []


def test_tflite_with_a_custom_operator_is_422_naming_the_upload_and_the_cause(
    client: TestClient, tmp_path: Path
) -> None:
    path = write_tflite_model(tmp_path, "MyCustomOp", "edge.tflite")
    response = client.post("/models", files={"file": ("edge.tflite", path.read_bytes())})
    message = assert_error(response, 422, "model_unreadable")["message"]
    assert message.startswith("OpenVINO cannot read model 'edge.tflite'")
    assert "No translator found for MyCustomOp node" in message
    assert "model.tflite" not in message and ".bin" not in message


def test_ir_errors_name_the_uploaded_files(client: TestClient, tiny_model: Path) -> None:
    weights = tiny_model.with_suffix(".bin").read_bytes()
    files = [
        ("file", ("resnet.xml", tiny_model.read_bytes())),
        ("file", ("resnet.bin", weights[: len(weights) // 2])),
    ]
    message = assert_error(client.post("/models", files=files), 422, "model_unreadable")["message"]
    assert "'resnet.bin'" in message and "'resnet.xml'" in message
    assert "model.bin" not in message and "model.xml" not in message
