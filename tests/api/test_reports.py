"""GET /jobs/{id}/report (the result JSON, one flat CSV row, benchmark_app's report files) and
GET /jobs?format=csv (one row per job of the page). Real runs of the tiny model by an
in-process worker in burst mode; the benchmark_app layouts themselves are checked against the
real benchmark_app in tests/engine/test_report_formats.py."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.engine import report_formats
from app.engine.spec import BenchmarkResult
from app.services.reports import TABLE_COLUMNS
from app.settings import Settings
from app.store import Store
from tests.api.conftest import assert_error, model_files, run_queue, running_settings, submit_job_id
from tests.factories import write_dynamic_model

STATISTICS_KEYS = [
    "read model time (ms)",
    "compile model time (ms)",
    "first inference time (ms)",
    "total execution time (ms)",
    "total number of iterations",
    "latency (ms)",
    "avg latency",
    "min latency",
    "max latency",
    "throughput",
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return running_settings(tmp_path, {"CPU": 1.0, "UNKNOWN": 1.0})


def report(client: TestClient, job_id: str, **query: str) -> Any:
    return client.get(f"/jobs/{job_id}/report", params=query)


def result_of(client: TestClient, job_id: str) -> dict[str, Any]:
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job["error"]
    result: dict[str, Any] = job["result"]
    return result


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_json_and_csv_give_the_result_and_one_full_precision_row(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    job_id = submit_job_id(client, model_id=model["id"], api="async", niter=20, nireq=2)
    assert run_queue(settings, store) == 1
    result = result_of(client, job_id)

    as_json = report(client, job_id)  # format=json is the default
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers["content-disposition"] == f'attachment; filename="{job_id}.json"'
    assert as_json.json() == result

    as_csv = report(client, job_id, format="csv")
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["content-disposition"] == f'attachment; filename="{job_id}.csv"'
    header = as_csv.text.split("\n")[0].split(",")
    assert header == list(report_formats.FLAT_COLUMNS)
    (row,) = rows(as_csv.text)
    assert float(row["throughput_fps"]) == result["throughput_fps"]
    assert float(row["latency_median_ms"]) == result["latency_ms"]["median"]
    assert float(row["latency_p99_ms"]) == result["latency_ms"]["p99"]
    assert float(row["first_inference_ms"]) == result["first_inference_ms"]
    assert float(row["compile_ms"]) == result["compile_ms"]
    assert float(row["duration_ms"]) == result["duration_ms"]
    assert int(row["iterations"]) == result["iterations"] == 20
    assert (row["device"], row["api"], row["nireq"]) == ("CPU", "async", "2")
    assert row["batch_size"] == "1" and row["hint"] == "throughput"
    assert row["inference_precision"] == result["config"]["inference_precision"]
    assert row["model_sha256"] == result["provenance"]["model_sha256"] == model["sha256"]
    assert row["openvino_version"] == result["openvino_version"]
    assert row["started_at"] == result["started_at"]
    assert row["stability_verdict"] == result["stability"]["verdict"]


def test_benchmark_app_format_gives_its_statistics_report_and_counters_files(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    job_id = submit_job_id(
        client, model_id=model["id"], api="async", niter=20, nireq=2, perf_counters=True
    )
    assert run_queue(settings, store) == 1
    result = BenchmarkResult.model_validate(result_of(client, job_id))

    statistics = report(client, job_id, format="benchmark_app")
    assert statistics.status_code == 200, statistics.text
    assert statistics.headers["content-type"].startswith("text/csv")
    disposition = 'attachment; filename="benchmark_report.csv"'
    assert statistics.headers["content-disposition"] == disposition
    command_line = report_formats.equivalent_command_line(result, "no_counters", "csv")
    assert command_line[0] == ("-m", "model.xml")  # as stored; the route names the upload
    command_line[0] = ("-m", "tiny_cnn.xml")
    assert statistics.text == report_formats.statistics_report(result, command_line, "csv").text
    lines = statistics.text.split("\n")
    assert lines[:9] == [
        "Command line parameters",
        "-m;tiny_cnn.xml",
        "-d;CPU",
        "-api;async",
        "-niter;20",
        "-nireq;2",
        "-pc;",
        "-report_type;no_counters",
        "",
    ]
    execution = lines[lines.index("Execution results") + 1 : -2]
    assert [line.split(";")[0] for line in execution] == STATISTICS_KEYS
    assert f"throughput;{result.throughput_fps:.2f}" in execution
    assert report(client, job_id, format="benchmark_app", report_type="no_counters").text == (
        statistics.text
    )

    as_json = report(client, job_id, format="benchmark_app", layout="json")
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"] == "application/json"
    assert 'filename="benchmark_report.json"' in as_json.headers["content-disposition"]
    body = as_json.json()
    assert list(body) == ["cmd_options", "configuration_setup", "execution_results"]
    assert body["cmd_options"]["-json_stats"] == ""
    assert body["configuration_setup"]["inference_only"] is True
    assert body["configuration_setup"]["number of parallel infer requests"] == "2"
    assert list(body["execution_results"]) == STATISTICS_KEYS

    for report_type in ("average_counters", "detailed_counters"):
        for layout in ("csv", "json"):
            counters = report(
                client, job_id, format="benchmark_app", report_type=report_type, layout=layout
            )
            assert counters.status_code == 200, counters.text
            name = f"benchmark_{report_type}_report.{layout}"
            assert counters.headers["content-disposition"] == f'attachment; filename="{name}"'
            assert counters.text == report_formats.counters_report(result, report_type, layout).text
    assert result.perf_counters
    average = report(client, job_id, format="benchmark_app", report_type="average_counters")
    assert average.text.startswith("layerName;execStatus;layerType;execType;realTime (ms);")
    assert average.text.count("\n") == len(result.perf_counters) + 3  # header, Total, blank
    detailed = report(
        client, job_id, format="benchmark_app", report_type="detailed_counters", layout="json"
    ).json()
    assert detailed["report_type"] == "detailed"
    # One block per infer request (nireq 2), each with every node of the average, in order.
    assert result.perf_counters_per_request is not None
    assert len(detailed["detailed_performance"]) == len(result.perf_counters_per_request) == 2
    names = [c.node_name for c in result.perf_counters]
    for block, counters in zip(
        detailed["detailed_performance"], result.perf_counters_per_request, strict=True
    ):
        assert [node["name"] for node in block["nodes"]] == names
        total_ms = sum(c.real_time_ms for c in counters)
        assert block["total_real_time"] == f"{total_ms:.3f}"


def test_counters_of_a_job_run_without_perf_counters_are_409_naming_it(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    job_id = submit_job_id(client, model_id=model["id"], niter=10)
    assert run_queue(settings, store) == 1
    for report_type in ("average_counters", "detailed_counters"):
        error = assert_error(
            report(client, job_id, format="benchmark_app", report_type=report_type),
            409,
            "job_has_no_perf_counters",
        )
        assert '"perf_counters": true' in error["message"] and report_type in error["message"]
        assert error["details"] == {"job_id": job_id, "report_type": report_type}
    assert report(client, job_id, format="benchmark_app").status_code == 200


def test_a_job_without_a_result_is_409_saying_what_to_do_and_unknown_is_404(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any], tmp_path: Path
) -> None:
    upload = client.post("/models", files=model_files(write_dynamic_model(tmp_path / "dyn")))
    assert upload.status_code == 201, upload.text
    failing = submit_job_id(client, model_id=upload.json()["id"], niter=3)  # fails: dynamic shape
    assert run_queue(settings, store) == 1
    queued = submit_job_id(client, model_id=model["id"], niter=3)

    for report_format in ("json", "csv", "benchmark_app"):
        error = assert_error(report(client, queued, format=report_format), 409, "job_has_no_result")
        assert f"Poll GET /jobs/{queued}" in error["message"]
        assert error["details"] == {"job_id": queued, "status": "queued"}
        error = assert_error(
            report(client, failing, format=report_format), 409, "job_has_no_result"
        )
        assert "dynamic_shape_unresolved" in error["message"]
        assert "submit it again" in error["message"]
        assert_error(report(client, "no-such-job", format=report_format), 404, "job_not_found")


def test_bad_query_parameters_are_422(client: TestClient, model: dict[str, Any]) -> None:
    job_id = submit_job_id(client, model_id=model["id"], niter=3)
    assert_error(report(client, job_id, format="xml"), 422, "validation_error")
    assert_error(report(client, job_id, format="benchmark_app", report_type="sorted"), 422)
    assert_error(report(client, job_id, format="benchmark_app", layout="xml"), 422)
    error = assert_error(
        report(client, job_id, format="csv", report_type="no_counters"), 422, "validation_error"
    )
    assert "format=benchmark_app" in error["message"]


def test_list_as_csv_has_one_row_per_job_of_the_page_with_the_same_filters(
    client: TestClient, store: Store, settings: Settings, model: dict[str, Any]
) -> None:
    done = [submit_job_id(client, model_id=model["id"], api="sync", niter=n) for n in (5, 6)]
    assert run_queue(settings, store) == 2
    queued = submit_job_id(client, model_id=model["id"], niter=3)

    response = client.get("/jobs", params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-total-count"] == "3"
    assert response.text.split("\n")[0].split(",") == list(TABLE_COLUMNS)
    table = rows(response.text)
    listed = client.get("/jobs").json()
    assert [r["id"] for r in table] == [job["id"] for job in listed] == [queued, *done[::-1]]
    assert [r["status"] for r in table] == ["queued", "succeeded", "succeeded"]
    assert [r["created_at"] for r in table] == [job["created_at"] for job in listed]
    # A queued job: empty figure cells.
    assert all(table[0][column] == "" for column in report_formats.FLAT_COLUMNS)
    for row, job in zip(table[1:], listed[1:], strict=True):
        assert float(row["throughput_fps"]) == job["result"]["throughput_fps"]
        assert float(row["latency_median_ms"]) == job["result"]["latency_ms"]["median"]
        assert int(row["iterations"]) == job["result"]["iterations"]
        # The job's row holds the same cells as its own report.
        (own,) = rows(report(client, job["id"], format="csv").text)
        assert {k: row[k] for k in report_formats.FLAT_COLUMNS} == own

    page = client.get("/jobs", params={"format": "csv", "limit": 1, "offset": 1})
    assert page.headers["x-total-count"] == "3"
    assert [r["id"] for r in rows(page.text)] == [done[1]]
    succeeded = client.get("/jobs", params={"format": "csv", "status": "succeeded"})
    assert succeeded.headers["x-total-count"] == "2"
    assert {r["id"] for r in rows(succeeded.text)} == set(done)
    empty = client.get("/jobs", params={"format": "csv", "status": "failed"})
    assert empty.text == ",".join(TABLE_COLUMNS) + "\n"
    assert empty.headers["x-total-count"] == "0"
    assert_error(client.get("/jobs", params={"format": "xml"}), 422, "validation_error")
    # JSON stays the default.
    assert json.loads(client.get("/jobs").text)[0]["id"] == queued
