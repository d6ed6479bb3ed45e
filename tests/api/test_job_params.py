"""POST /jobs parameters: benchmark_app's defaults (resolved_params), numbers where it takes
numbers, input names checked against the model at submit, messages naming JSON fields."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.engine.spec import BenchmarkResult
from app.settings import Settings
from app.store import Store
from app.worker.worker import Worker
from tests.api.conftest import assert_error, image_files, model_files, running_settings
from tests.factories import write_dynamic_model, write_two_input_model

DURATIONS_S = {"CPU": 1.0, "UNKNOWN": 1.5}
CLI_FLAG = re.compile(r"(?<![\w-])-(shape|data_shape|layout|b|nireq|nstreams|niter|t)\b")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Short device default durations (real runs below use them) and room in the queue."""
    return running_settings(tmp_path, DURATIONS_S)


def _upload(client: TestClient, xml: Path) -> dict[str, Any]:
    response = client.post("/models", files=model_files(xml))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def two_inputs(client: TestClient, tmp_path: Path) -> dict[str, Any]:
    """Inputs "image" [1,3,32,32] and "scale" [1,4]."""
    return _upload(client, write_two_input_model(tmp_path / "two"))


@pytest.fixture
def dynamic(client: TestClient, tmp_path: Path) -> dict[str, Any]:
    """Input "input" [?,3,?,?]."""
    return _upload(client, write_dynamic_model(tmp_path / "dynamic"))


def submit(client: TestClient, model_id: str, **params: Any) -> Any:
    return client.post("/jobs", json={"model_id": model_id, **params})


def resolved(**overrides: Any) -> dict[str, Any]:
    """resolved_params of a CPU sync job with nothing else given, plus `overrides`."""
    return {
        "device": "CPU",
        "api": "sync",
        "niter": None,
        "duration_s": DURATIONS_S["CPU"],
        "nireq": 1,
        "nstreams": None,
        "nthreads": None,
        "batch": None,
        "pin": None,
        "hint": "latency",
        "shape": None,
        "data_shape": None,
        "layout": None,
        "infer_precision": None,
        "latency_percentile": 50,
        "perf_counters": False,
        "rgb": False,
        "repeats": 1,
        "rtol": 0.01,
        "atol": 0.001,
        "dataset_id": None,
        "extensions": [],
        "gpu_config": None,
        **overrides,
    }


# --- point 5: model_id alone, benchmark_app's defaults, visible ----------------------------


def test_model_id_alone_is_queued_as_cpu_sync_with_every_default_resolved(
    client: TestClient, model: dict[str, Any]
) -> None:
    response = submit(client, model["id"])
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["params"] == {
        "model_id": model["id"],
        "device": "CPU",
        "api": "sync",
        "latency_percentile": 50,
        "perf_counters": False,
        "rgb": False,
        "repeats": 1,
        "rtol": 0.01,
        "atol": 0.001,
    }
    assert job["resolved_params"] == resolved(model_id=model["id"])
    assert client.get(f"/jobs/{job['id']}").json() == job
    assert client.get("/jobs").json() == [job]


@pytest.mark.parametrize(
    ("params", "changed"),
    [
        ({"api": "async"}, {"api": "async", "nireq": 2, "hint": "throughput"}),
        (
            {"api": "async", "niter": 7, "nireq": 3},
            {"api": "async", "niter": 9, "duration_s": None, "nireq": 3, "hint": "throughput"},
        ),
        ({"nireq": 4, "niter": 5}, {"niter": 5, "duration_s": None}),
        ({"nstreams": 2}, {"nstreams": "2", "hint": "none"}),
        ({"nthreads": 2, "hint": "throughput"}, {"nthreads": 2, "hint": "throughput"}),
        ({"device": "AUTO"}, {"device": "AUTO", "duration_s": DURATIONS_S["UNKNOWN"]}),
        ({"duration_s": 3, "batch": 2}, {"duration_s": 3.0, "batch": 2}),
    ],
)
def test_resolved_params_apply_the_engine_rules(
    client: TestClient, model: dict[str, Any], params: dict[str, Any], changed: dict[str, Any]
) -> None:
    response = submit(client, model["id"], **params)
    assert response.status_code == 202, response.text
    assert response.json()["resolved_params"] == resolved(model_id=model["id"], **changed)


def test_one_shot_with_only_files_runs_with_the_defaults(
    client: TestClient, tiny_model: Path, images_dir: Path
) -> None:
    response = client.post(
        "/jobs", files=model_files(tiny_model, "model") + image_files(images_dir, "inputs")
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["params"]["device"], job["params"]["api"]) == ("CPU", "sync")
    assert job["resolved_params"] == resolved(
        model_id=job["model_id"], dataset_id=job["dataset_id"]
    )


def test_defaults_and_given_values_run_as_resolved(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    """Real runs: what the engine used (result limits and config) is what resolved_params said."""
    cases: list[dict[str, Any]] = [
        {},  # the device default duration (the settings' table)
        {"api": "async", "niter": 7},
        {"api": "async", "niter": 5, "nireq": 3, "nstreams": 2},
        {"api": "sync", "niter": 5, "nireq": 4, "hint": "throughput"},
        {"niter": 3, "nthreads": 1},
        {"niter": 4, "batch": 2},
    ]
    jobs = []
    for params in cases:
        response = submit(client, model["id"], **params)
        assert response.status_code == 202, response.text
        jobs.append(response.json())
    assert Worker(settings, store).run(burst=True) == len(cases)
    for params, queued in zip(cases, jobs, strict=True):
        job = client.get(f"/jobs/{queued['id']}").json()
        assert job["status"] == "succeeded", (params, job["error"])
        assert client.get(f"/jobs/{queued['id']}").json() == job  # the cached body too
        want = job["resolved_params"]
        assert want == queued["resolved_params"], params
        result = BenchmarkResult.model_validate(job["result"])
        assert (result.device, result.api) == (want["device"], want["api"])
        assert result.limits == {k: want[k] for k in ("niter", "duration_s", "nireq")}, params
        # warnings name JSON fields too ("Neither niter nor duration_s given ...")
        assert result.warnings and not any(CLI_FLAG.search(w) for w in result.warnings), params
        requested = result.config.requested.get("PERFORMANCE_HINT")
        if want["hint"] == "none":
            assert requested is None, params
        else:
            assert requested == want["hint"].upper() and result.config.hint == want["hint"]
        if want["batch"] is not None:
            assert result.config.batch_size == want["batch"]
        if want["nstreams"] is not None:
            assert result.config.nstreams == int(want["nstreams"])
        if want["nthreads"] is not None:
            assert result.config.nthreads == want["nthreads"]


# --- point 6: numbers where benchmark_app takes numbers ----------------------------------


@pytest.mark.parametrize(
    ("nstreams", "stored"),
    [(2, "2"), (1, "1"), ("2", "2"), ("AUTO", "AUTO"), ("CPU:4,GPU:2", "CPU:4,GPU:2")],
)
def test_nstreams_takes_a_number_or_text_and_is_stored_as_text(
    client: TestClient, model: dict[str, Any], nstreams: Any, stored: str
) -> None:
    response = submit(client, model["id"], nstreams=nstreams)
    assert response.status_code == 202, response.text
    assert response.json()["params"]["nstreams"] == stored


@pytest.mark.parametrize("nstreams", [0, -1, 1025, 2.5, True, "4; DROP TABLE jobs", [2]])
def test_bad_nstreams_is_422(client: TestClient, model: dict[str, Any], nstreams: Any) -> None:
    error = assert_error(submit(client, model["id"], nstreams=nstreams), 422, "validation_error")
    assert all(d["loc"][1] == "nstreams" for d in error["details"]), error


def form(**fields: str) -> list[tuple[str, tuple[None, str]]]:
    """Form fields of a multipart body (no files)."""
    return [(name, (None, value)) for name, value in fields.items()]


def test_form_fields_are_text_and_numbers_parse(client: TestClient, model: dict[str, Any]) -> None:
    response = client.post(
        "/jobs", files=form(model_id=model["id"], nstreams="2", niter="4", duration_s="1.5")
    )
    assert response.status_code == 202, response.text
    params = response.json()["params"]
    assert (params["nstreams"], params["niter"], params["duration_s"]) == ("2", 4, 1.5)


# --- point 7: input names (and certain ranks) checked at submit --------------------------


@pytest.mark.parametrize(
    ("field", "value", "unknown"),
    [
        ("shape", "foo[1,3,32,32]", ["foo"]),
        ("shape", "[1,3,32,32],foo[1,4]", ["foo"]),
        ("data_shape", "image[1,3,32,32],bar[1,4],baz[2]", ["bar", "baz"]),
        ("layout", "nope[NCHW]", ["nope"]),
        ("layout", "image[NCHW], other [NC]", ["other"]),
    ],
)
def test_an_input_the_model_lacks_is_422_naming_the_field_and_the_inputs(
    client: TestClient, two_inputs: dict[str, Any], field: str, value: str, unknown: list[str]
) -> None:
    error = assert_error(submit(client, two_inputs["id"], **{field: value}), 422, "unknown_input")
    assert error["details"] == {"field": field, "unknown": unknown, "inputs": ["image", "scale"]}
    message = error["message"]
    assert message.startswith(f"{field} names input")
    assert all(f"'{name}'" in message for name in [*unknown, "image", "scale"]), message
    assert not CLI_FLAG.search(message), message
    assert client.get("/jobs").json() == []


@pytest.mark.parametrize(
    "params",
    [
        {"shape": "image[1,3,16,16],scale[1,4]"},
        {"data_shape": "image[1,3,32,32]"},  # static input: the engine ignores it, with a warning
        {"layout": "image[NCHW],scale[NC]"},
        {"layout": "image[N?HW]"},
        {"layout": "image[NCH]", "shape": "image[1,3,32]"},  # a reshape: the engine judges
        {"layout": "a[NCHW"},  # does not parse: the engine says how
        {"shape": "[1,3,32,32]"},  # no name: every input (valid here; ranks are the engine's)
    ],
)
def test_names_and_ranks_the_model_has_are_accepted(
    client: TestClient, two_inputs: dict[str, Any], params: dict[str, Any]
) -> None:
    response = submit(client, two_inputs["id"], **params)
    assert response.status_code == 202, response.text


def test_a_layout_of_another_rank_is_422(
    client: TestClient, model: dict[str, Any], two_inputs: dict[str, Any]
) -> None:
    assert submit(client, model["id"], layout="NCHW").status_code == 202
    error = assert_error(
        submit(client, two_inputs["id"], layout="NCHW"), 422, "input_rank_mismatch"
    )
    assert error["details"] == {
        "field": "layout",
        "input": "scale",
        "value": "NCHW",
        "rank": 4,
        "input_shape": "[1,4]",
    }
    assert error["message"].startswith("layout 'NCHW' for input 'scale' has 4 dimensions")
    error = assert_error(
        submit(client, two_inputs["id"], layout="image[nch]"), 422, "input_rank_mismatch"
    )
    assert error["details"]["input"] == "image" and error["details"]["rank"] == 3


def test_a_data_shape_of_another_rank_for_a_dynamic_input_is_422(
    client: TestClient, dynamic: dict[str, Any]
) -> None:
    assert submit(client, dynamic["id"], data_shape="[1,3,32,32]").status_code == 202
    error = assert_error(
        submit(client, dynamic["id"], data_shape="input[1,3,32]"), 422, "input_rank_mismatch"
    )
    assert error["details"] == {
        "field": "data_shape",
        "input": "input",
        "value": "[1,3,32]",
        "rank": 3,
        "input_shape": "[?,3,?,?]",
    }
    assert not CLI_FLAG.search(error["message"]), error["message"]
    # a reshape or a batch may change the input: left to the engine
    assert submit(client, dynamic["id"], data_shape="[1,3,32]", batch=1).status_code == 202
    assert submit(client, dynamic["id"], data_shape="[1,3,32]", shape="[?,3,?]").status_code == 202


def test_one_shot_with_an_unknown_input_stores_nothing(
    client: TestClient, store: Store, tmp_path: Path, images_dir: Path
) -> None:
    xml = write_two_input_model(tmp_path / "two")
    response = client.post(
        "/jobs",
        files=model_files(xml, "model") + image_files(images_dir, "inputs"),
        data={"shape": "picture[1,3,32,32]", "api": "async"},
    )
    error = assert_error(response, 422, "unknown_input")
    assert error["details"]["inputs"] == ["image", "scale"]
    assert client.get("/models").json() == [] and client.get("/datasets").json() == []
    assert client.get("/jobs").json() == []
    assert list(store.blobs.tmp_dir.iterdir()) == []
    assert list(store.blobs.datasets_dir.iterdir()) == []
    # an upload of a model that was already there keeps it; a good one-shot goes through
    model = _upload(client, xml)
    again = client.post("/jobs", files=model_files(xml, "model"), data={"layout": "scale[NCHW]"})
    assert_error(again, 422, "input_rank_mismatch")
    assert [m["id"] for m in client.get("/models").json()] == [model["id"]]
    by_id = client.post("/jobs", files=form(model_id=model["id"], data_shape="x[1,4]"))
    assert assert_error(by_id, 422, "unknown_input")["details"]["field"] == "data_shape"
    good = client.post("/jobs", files=model_files(xml, "model"), data={"shape": "image[1,3,16,16]"})
    assert good.status_code == 202, good.text
    assert good.json()["model_id"] == model["id"]
