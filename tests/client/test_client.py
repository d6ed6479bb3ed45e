"""app.client.Client against a real `ovbench serve` on a free port (one for the module).

A recording transport (httpx's own, passing every request on to the server) lets the tests
see what went over the wire: an upload skipped, an If-None-Match sent, a 304 answered.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.api.schemas import JobRead
from app.client import ApiError, Client, content
from tests.e2e.conftest import Server, free_port, plain_server, wait_for
from tests.factories import write_known_images

QUICK = {"device": "CPU", "api": "sync", "niter": 20}


class RecordingTransport(httpx.HTTPTransport):
    """The real HTTP transport, keeping (method, path, If-None-Match, status) of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, str | None, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.calls.append(
            (
                request.method,
                request.url.path,
                request.headers.get("if-none-match"),
                response.status_code,
            )
        )
        return response

    def posts(self, path: str) -> int:
        return sum(1 for method, p, _, _ in self.calls if method == "POST" and p == path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from plain_server(tmp_path_factory, "client")


@pytest.fixture
def recorder() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def api(server: Server, recorder: RecordingTransport) -> Iterator[Client]:
    with Client(server.url, transport=recorder) as client:
        yield client


@pytest.fixture(scope="module")
def model_id(server: Server, tiny_model: Path) -> str:
    with Client(server.url) as client:
        return client.upload_model(content.model_paths(tiny_model)).id


def test_a_model_is_uploaded_once_and_found_by_the_servers_digest(
    api: Client, recorder: RecordingTransport, tmp_path: Path, tiny_model: Path
) -> None:
    # A copy under another name: the same content, so the same model (module's model_id or not).
    xml = tmp_path / "renamed.xml"
    xml.write_bytes(tiny_model.read_bytes())
    xml.with_suffix(".bin").write_bytes(tiny_model.with_suffix(".bin").read_bytes())
    paths = content.model_paths(xml)
    first = api.upload_model(paths)
    files = content.model_files(paths)
    assert files is not None
    assert first.sha256 == content.model_sha256(files)
    posts = recorder.posts("/models")
    again = api.upload_model(paths)
    assert again.id == first.id
    assert recorder.posts("/models") == posts  # asked, found, not sent again
    assert api.find_model(paths) == again
    assert [m.id for m in api.models(sha256=first.sha256)] == [first.id]
    assert api.models(sha256="0" * 64) == []


def test_a_changed_model_is_not_taken_for_the_stored_one(
    api: Client, recorder: RecordingTransport, tmp_path: Path, tiny_model: Path
) -> None:
    xml = tmp_path / "tiny.xml"
    xml.write_bytes(tiny_model.read_bytes() + b"\n")  # same network, other bytes
    xml.with_suffix(".bin").write_bytes(tiny_model.with_suffix(".bin").read_bytes())
    stored = {m.sha256 for m in api.models()}
    assert api.find_model(content.model_paths(xml)) is None
    uploaded = api.upload_model(content.model_paths(xml))
    assert uploaded.sha256 not in stored
    assert recorder.posts("/models") == 1


def test_a_dataset_is_uploaded_once(
    api: Client, recorder: RecordingTransport, tmp_path: Path
) -> None:
    """The server makes a new dataset on every upload: the client's lookup is what saves it."""
    images = write_known_images(tmp_path / "images")
    before = len(api.datasets())
    first = api.upload_dataset([images])
    again = api.upload_dataset([images])
    assert again.id == first.id
    assert recorder.posts("/datasets") == 1
    assert len(api.datasets()) == before + 1
    one_file = first.files[0].sha256
    assert first.id in {d.id for d in api.datasets(sha256=one_file)}
    # A subset of the same files is another dataset.
    subset = sorted(images.iterdir())[:1]
    assert api.find_dataset(subset) is None
    assert api.upload_dataset(subset).id != first.id


def test_a_bad_digest_is_a_422_in_the_error_shape(api: Client) -> None:
    with pytest.raises(ApiError) as caught:
        api.datasets(sha256="not-a-digest")
    assert caught.value.status == 422
    assert caught.value.code  # the one error shape: a code, a message, details
    assert "sha256" in str(caught.value.details) + caught.value.message


def test_submit_wait_and_read_a_job(api: Client, model_id: str) -> None:
    seen: list[JobRead] = []
    job = api.submit_job({"model_id": model_id, **QUICK})
    assert job.status in ("queued", "running") and job.params.model_id == model_id
    done = api.wait_job(job.id, on_progress=seen.append, poll_s=0.05, timeout_s=60)
    assert done.status == "succeeded", done.error
    assert seen[-1] == done and all(j.id == job.id for j in seen)
    assert done.result is not None and done.progress.iterations == 20
    assert api.job(job.id) == done
    listed = api.jobs(status="succeeded", limit=100)
    assert job.id in {j.id for j in listed}
    assert all(j.status == "succeeded" for j in listed)


def test_wait_job_polls_with_etags(
    api: Client, recorder: RecordingTransport, model_id: str
) -> None:
    """A queued job behind a running one does not change: each poll after the first sends
    its ETag and gets 304, no body."""
    running = api.submit_job({"model_id": model_id, "device": "CPU", "duration_s": 2})
    queued = api.submit_job({"model_id": model_id, **QUICK})
    done = api.wait_job(queued.id, poll_s=0.1, timeout_s=60)
    assert done.status == "succeeded"
    polls = [c for c in recorder.calls if c[0] == "GET" and c[1] == f"/jobs/{queued.id}"]
    assert polls[0][2] is None and all(tag is not None for _, _, tag, _ in polls[1:])
    assert any(status == 304 for *_, status in polls), polls
    assert api.job(running.id).status == "succeeded"


def test_wait_job_gives_up_at_its_timeout(api: Client, model_id: str) -> None:
    job = api.submit_job({"model_id": model_id, "device": "CPU", "duration_s": 30})
    try:
        with pytest.raises(TimeoutError, match=job.id):
            api.wait_job(job.id, poll_s=0.05, timeout_s=0.3)
    finally:
        api.cancel(job.id)
    assert api.wait_job(job.id, poll_s=0.05, timeout_s=30).status == "cancelled"


def test_cancel_rerun_delete_compare(api: Client, model_id: str) -> None:
    first = api.wait_job(api.submit_job({"model_id": model_id, **QUICK}).id, poll_s=0.05)
    rerun = api.rerun(first.id)
    assert rerun.rerun_of == first.id
    second = api.wait_job(rerun.id, poll_s=0.05)
    comparison = api.compare(first.id, second.id)
    assert (comparison.baseline_id, comparison.candidate_id) == (first.id, second.id)
    assert {m.metric for m in comparison.metrics} >= {"throughput_fps", "latency_median_ms"}
    with pytest.raises(ApiError) as finished:
        api.cancel(first.id)
    assert finished.value.status == 409
    api.delete(first.id)
    with pytest.raises(ApiError) as gone:
        api.job(first.id)
    assert (gone.value.status, gone.value.code) == (404, "job_not_found")
    assert first.id in gone.value.message


def test_devices_and_version(api: Client) -> None:
    assert "CPU" in {d.name for d in api.devices()}
    version = api.version()
    assert version.api_version == "1" and version.openvino


def test_a_sweep_is_created_read_and_cancelled(api: Client, model_id: str) -> None:
    sweep = api.create_sweep(
        {"model_id": model_id, "device": "CPU", "duration_s": 5, "grid": {"nireq": [1, 2, 4]}}
    )
    assert sweep.grid == {"nireq": [1, 2, 4]} and sweep.progress.points_total == 3
    assert api.sweep(sweep.id).id == sweep.id
    api.cancel_sweep(sweep.id)
    ended = wait_for(
        lambda: (s := api.sweep(sweep.id)).status in ("cancelled",) and s,
        30,
        f"sweep {sweep.id} to be cancelled",
    )
    assert all(p.status in ("cancelled", "succeeded", "skipped") for p in ended.points)


def test_a_url_without_http_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        Client("127.0.0.1:8000")


def test_no_answer_is_an_api_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, timeout_s=5) as client, pytest.raises(ApiError) as caught:
        client.version()
    assert caught.value.status is None and caught.value.code == "unreachable"
    assert f"{url}/version" in caught.value.message


class _NotOvbench(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>hello</html>" if self.path == "/version" else b"<h1>gone</h1>"
        self.send_response(200 if self.path == "/version" else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_another_program_at_the_url_is_named_as_such() -> None:
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotOvbench)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        with Client(f"http://127.0.0.1:{other.server_address[1]}") as client:
            with pytest.raises(ApiError) as not_json:
                client.version()
            assert not_json.value.code == "bad_response" and "VersionRead" in str(not_json.value)
            with pytest.raises(ApiError) as not_shaped:
                client.job("x")
            assert not_shaped.value.status == 404 and not_shaped.value.code == "http_404"
            assert "gone" in not_shaped.value.message
    finally:
        other.shutdown()
        other.server_close()
