"""Access: loopback binding, bearer tokens, the extensions directory, CORS and upload limits."""

from __future__ import annotations

import hmac
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.api import auth as auth_mod
from app.api import create_app
from app.engine.spec import DeviceInfo
from app.serve import _parser
from app.settings import Settings, get_settings
from tests.api.conftest import image_files, model_files
from tests.e2e.conftest import Server
from tests.security.conftest import assert_error_shape, stored_state

with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what we ship
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from fastapi.testclient import TestClient

TOKENS = ("alpha-token-1", "beta-token-2")
JOB = {"device": "CPU", "api": "sync", "niter": 2}


@contextmanager
def app_client(tmp_path: Path, **overrides: Any) -> Iterator[TestClient]:
    """The real app over a fresh data dir (no worker), built from `Settings(**overrides)`."""
    settings = Settings(data_dir=tmp_path / "data", **overrides)
    app = create_app(settings)
    app.state.store.workers.replace_devices([DeviceInfo(name="CPU", full_name="Test CPU")])
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        app.state.store.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- binding --------------------------------------------------------------------------------


def test_binds_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OVBENCH_"):
            monkeypatch.delenv(name)
    assert get_settings().host == "127.0.0.1"
    args = _parser(get_settings()).parse_args([])
    assert args.host == "127.0.0.1"
    assert _parser(get_settings()).parse_args(["--host", "0.0.0.0"]).host == "0.0.0.0"


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                address, hex_port = fields[1].split(":")
                if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                    found.add(address)
    return found


def test_real_server_listens_on_loopback_only(server: Server) -> None:
    assert _listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, nothing else


# --- tokens ---------------------------------------------------------------------------------


def test_without_tokens_the_api_is_open(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        assert client.get("/models").status_code == 200
        assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKENS[0]}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {TOKENS[0]}x"},
        {"Authorization": f"Bearer {TOKENS[0][:-1]}"},
    ],
    ids=["none", "wrong", "basic_scheme", "empty", "longer", "prefix"],
)
@pytest.mark.parametrize(
    "method_path",
    [
        ("GET", "/models"),
        ("GET", "/jobs"),
        ("POST", "/jobs"),
        ("GET", "/metrics"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/readyz"),
        ("GET", "/no/such/route"),
    ],
)
def test_tokens_required_everywhere_but_healthz(
    tmp_path: Path, headers: dict[str, str], method_path: tuple[str, str]
) -> None:
    method, path = method_path
    with app_client(tmp_path, api_tokens=",".join(TOKENS)) as client:
        response = client.request(method, path, headers=headers, json=JOB)
        assert_error_shape(response, [401], "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/healthz").status_code == 200


def test_each_token_opens_every_route(tmp_path: Path) -> None:
    with app_client(tmp_path, api_tokens=f" {TOKENS[0]} ,{TOKENS[1]},") as client:
        for token in TOKENS:
            for path in ("/models", "/metrics", "/docs", "/openapi.json", "/version"):
                assert client.get(path, headers=_bearer(token)).status_code == 200, path
            assert client.get("/models", headers={"authorization": f"bearer {token}"}).is_success
        assert client.get("/no/such/route", headers=_bearer(TOKENS[0])).status_code == 404


def test_a_read_served_from_memory_still_needs_a_token(tmp_path: Path) -> None:
    with app_client(tmp_path, api_tokens=TOKENS[0]) as client:
        authed = client.get("/jobs?limit=5", headers=_bearer(TOKENS[0]))
        assert authed.status_code == 200 and "etag" in authed.headers  # now held in memory
        for headers in ({}, {"If-None-Match": authed.headers["etag"]}, _bearer("wrong")):
            assert_error_shape(client.get("/jobs?limit=5", headers=headers), [401], "unauthorized")


def test_unauthorized_upload_stores_nothing(tmp_path: Path, tiny_model: Path) -> None:
    with app_client(tmp_path, api_tokens=TOKENS[0]) as client:
        before = stored_state(tmp_path / "data", _Authed(client))
        response = client.post("/models", files=model_files(tiny_model))
        assert_error_shape(response, [401], "unauthorized")
        assert stored_state(tmp_path / "data", _Authed(client)) == before


class _Authed:
    """A TestClient that adds the first token (for `stored_state`)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=_bearer(TOKENS[0]), **kwargs)


def test_tokens_file(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# ops team\n\n  {TOKENS[1]}  \n")
    with app_client(tmp_path, api_tokens_file=tokens_file) as client:
        assert client.get("/models", headers=_bearer(TOKENS[1])).status_code == 200
        assert client.get("/models", headers=_bearer("# ops team")).status_code == 401
        assert client.get("/models").status_code == 401


def test_empty_or_missing_tokens_file_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("# nothing here\n")
    for path in (tmp_path / "empty", tmp_path / "missing"):
        settings = Settings(data_dir=tmp_path / "data", api_tokens_file=path)
        with pytest.raises((ValueError, OSError)):
            create_app(settings)


def test_every_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_mod.hmac, "compare_digest", spy)
    tokens = [t.encode() for t in TOKENS]
    assert auth_mod.token_matches(TOKENS[0], tokens)  # matches the first: still checks both
    assert [b for _, b in calls] == tokens
    assert not auth_mod.token_matches("nope", tokens)


def test_openapi_documents_the_bearer_scheme(tmp_path: Path) -> None:
    with app_client(tmp_path, api_tokens=TOKENS[0]) as client:
        schema = client.get("/openapi.json", headers=_bearer(TOKENS[0])).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "401" in schema["paths"]["/models"]["post"]["responses"]
    assert schema["paths"]["/models"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_real_server_with_tokens(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> None:
    base = tmp_path_factory.mktemp("tokens_server")
    token = "s3cret-" + os.urandom(8).hex()
    server = Server(base / "data", base / "serve.log", {"OVBENCH_API_TOKENS": token})
    server.client.headers["Authorization"] = f"Bearer {token}"  # for start()'s readiness poll
    try:
        server.start()
        assert server.client.get("/models").status_code == 200
        assert server.upload_model(tiny_model).status_code == 201
        anonymous = server.client.get("/models", headers={"Authorization": ""})
        assert_error_shape(anonymous, [401], "unauthorized")
        # The worker gets its settings on its command line: the token must not be there.
        cmdline = Path(f"/proc/{server.worker_pid()}/cmdline").read_bytes()
        assert b"--settings-json" in cmdline and token.encode() not in cmdline
        assert token not in (base / "serve.log").read_text()
    finally:
        server.close()


# --- extension libraries and GPU configs ----------------------------------------------------


@pytest.fixture
def extensions_dir(tmp_path: Path) -> Path:
    """libfake.so (not a library) and kernels.xml inside; secret.so and a symlink to it outside."""
    inside = tmp_path / "extensions"
    (inside / "sub").mkdir(parents=True)
    (inside / "libfake.so").write_bytes(b"not an ELF file\n")
    (inside / "sub" / "kernels.xml").write_text("<CustomLayers/>\n")
    (tmp_path / "secret.so").write_bytes(b"outside\n")
    (inside / "escape.so").symlink_to(tmp_path / "secret.so")
    (inside / "dir_escape").symlink_to(tmp_path)
    return inside


def _submit(client: TestClient, model_id: str, **extra: Any) -> Any:
    return client.post("/jobs", json={**JOB, "model_id": model_id, **extra})


def _model_id(client: TestClient, tiny_model: Path) -> str:
    response = client.post("/models", files=model_files(tiny_model))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_extensions_refused_when_no_dir_is_configured(tmp_path: Path, tiny_model: Path) -> None:
    with app_client(tmp_path) as client:
        model_id = _model_id(client, tiny_model)
        for extra in ({"extensions": ["libfake.so"]}, {"gpu_config": "kernels.xml"}):
            assert_error_shape(_submit(client, model_id, **extra), [403], "extensions_disabled")
        assert _submit(client, model_id, extensions=[]).status_code == 202
        assert client.get("/jobs").headers["X-Total-Count"] == "1"


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        ({"extensions": ["../secret.so"]}, 403, "extension_outside_dir"),
        ({"extensions": ["sub/../../secret.so"]}, 403, "extension_outside_dir"),
        ({"extensions": ["SECRET"]}, 422, "extension_not_found"),
        ({"extensions": ["escape.so"]}, 403, "extension_outside_dir"),
        ({"extensions": ["dir_escape/secret.so"]}, 403, "extension_outside_dir"),
        ({"extensions": ["."]}, 403, "extension_outside_dir"),
        ({"extensions": ["sub"]}, 422, "extension_not_found"),
        ({"extensions": ["missing.so"]}, 422, "extension_not_found"),
        ({"extensions": ["libfake.so\x00.xml"]}, 422, "invalid_extension"),
        ({"gpu_config": "../secret.so"}, 403, "extension_outside_dir"),
        ({"extensions": ["libfake.so"] * 17}, 422, "validation_error"),
        ({"extensions": ["x" * 300]}, 422, "validation_error"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_extensions_outside_the_dir_are_refused(
    tmp_path: Path,
    tiny_model: Path,
    extensions_dir: Path,
    extra: dict[str, Any],
    status: int,
    code: str,
) -> None:
    if extra.get("extensions") == ["SECRET"]:  # an absolute path
        extra = {"extensions": [str(tmp_path / "secret.so")]}
        status, code = 403, "extension_outside_dir"
    with app_client(tmp_path, extensions_dir=extensions_dir) as client:
        model_id = _model_id(client, tiny_model)
        assert_error_shape(_submit(client, model_id, **extra), [status], code)
        assert client.get("/jobs").headers["X-Total-Count"] == "0"


def test_uploaded_files_can_never_be_named(tmp_path: Path, tiny_model: Path) -> None:
    """An extensions dir that overlaps the data dir (where uploads live) is refused at start."""
    for extensions in (tmp_path / "data", tmp_path / "data" / "models", tmp_path):
        settings = Settings(data_dir=tmp_path / "data", extensions_dir=extensions)
        with pytest.raises(ValueError, match="overlaps the data dir"):
            create_app(settings)


def test_extensions_inside_the_dir_reach_the_engine(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> None:
    """Accepted at submit, resolved by the worker, loaded by OpenVINO: a file that is not a
    library fails the job with the engine's message (not an HTTP error)."""
    base = tmp_path_factory.mktemp("extensions_server")
    extensions = base / "extensions"
    extensions.mkdir()
    (extensions / "libfake.so").write_bytes(b"not an ELF file\n")
    (extensions / "kernels.xml").write_text("<CustomLayers/>\n")
    server = Server(base / "data", base / "serve.log", {"OVBENCH_EXTENSIONS_DIR": str(extensions)})
    try:
        server.start()
        model_id = server.upload_model(tiny_model).json()["id"]
        failing = server.submit(model_id=model_id, niter=2, extensions=["libfake.so"])
        assert failing["params"]["extensions"] == ["libfake.so"]
        job = server.wait_job(failing["id"])
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "invalid_config"
        assert (
            f"Cannot load extension library '{(extensions / 'libfake.so').resolve()}'"
            in job["error"]["message"]
        )
        # A GPU config inside the dir is accepted; on CPU the engine does not use it.
        ok = server.wait_job(
            server.submit(model_id=model_id, niter=2, gpu_config="kernels.xml")["id"]
        )
        assert ok["status"] == "succeeded", ok
        outside = server.client.post(
            "/jobs", json={**JOB, "model_id": model_id, "extensions": ["../data/ovbench.db"]}
        )
        assert_error_shape(outside, [403], "extension_outside_dir")
    finally:
        server.close()


# --- CORS -----------------------------------------------------------------------------------

ORIGIN = "https://dashboard.example"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}


def test_cors_off_by_default(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        response = client.get("/models", headers={"Origin": ORIGIN})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
        preflight = client.options("/models", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in preflight.headers
        assert preflight.status_code == 405


def test_cors_for_configured_origins_only(tmp_path: Path) -> None:
    overrides = {"cors_origins": f"{ORIGIN}, https://other.example", "api_tokens": TOKENS[0]}
    with app_client(tmp_path, **overrides) as client:
        preflight = client.options("/models", headers=PREFLIGHT)  # no token: still answered
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        response = client.get("/models", headers={"Origin": ORIGIN, **_bearer(TOKENS[0])})
        assert response.headers["access-control-allow-origin"] == ORIGIN
        evil = client.get(
            "/models", headers={"Origin": "https://evil.example", **_bearer(TOKENS[0])}
        )
        assert "access-control-allow-origin" not in evil.headers
        assert client.get("/models", headers={"Origin": ORIGIN}).status_code == 401


# --- limits ---------------------------------------------------------------------------------


def test_limit_defaults() -> None:
    settings = Settings()
    assert settings.max_dataset_files == 10_000
    assert settings.max_model_files == 8
    assert settings.max_upload_bytes == 2 * 1024**3


def test_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVBENCH_MAX_DATASET_FILES", "12")
    monkeypatch.setenv("OVBENCH_MAX_MODEL_FILES", "3")
    monkeypatch.setenv("OVBENCH_CORS_ORIGINS", "https://a.example,https://b.example")
    settings = get_settings()
    assert (settings.max_dataset_files, settings.max_model_files) == (12, 3)
    assert settings.cors_origin_list() == ["https://a.example", "https://b.example"]


def test_dataset_file_limit(tmp_path: Path, images_dir: Path) -> None:
    images = image_files(images_dir)  # 5 images
    with app_client(tmp_path, max_dataset_files=4) as client:
        before = stored_state(tmp_path / "data", client)
        assert_error_shape(client.post("/datasets", files=images), [413], "too_many_files")
        many = [("file", (f"{i}.png", b"x")) for i in range(40)]
        assert_error_shape(client.post("/datasets", files=many), [413], "too_many_parts")
        assert stored_state(tmp_path / "data", client) == before
        assert client.post("/datasets", files=images[:4]).status_code == 201


def test_model_file_limit(tmp_path: Path, tiny_model: Path) -> None:
    files = model_files(tiny_model)
    with app_client(tmp_path, max_model_files=2) as client:
        before = stored_state(tmp_path / "data", client)
        extra = [*files, ("file", ("notes.txt", b"hello"))]
        assert_error_shape(client.post("/models", files=extra), [413], "too_many_files")
        assert stored_state(tmp_path / "data", client) == before
        assert client.post("/models", files=files).status_code == 201


def test_upload_size_limit(tmp_path: Path, tiny_model: Path) -> None:
    with app_client(tmp_path, max_upload_bytes=1024) as client:  # the .bin is 6 KiB
        before = stored_state(tmp_path / "data", client)
        response = client.post("/models", files=model_files(tiny_model))
        assert_error_shape(response, [413], "payload_too_large")
        assert stored_state(tmp_path / "data", client) == before


def test_tokens_are_hidden_from_help_and_repr() -> None:
    settings = Settings(api_tokens=TOKENS[0])
    shown = {env: value for env, _, value in settings.env_help()}
    assert shown["OVBENCH_API_TOKENS"] == "(set, hidden)"
    assert TOKENS[0] not in repr(settings) and TOKENS[0] not in settings.model_dump_json()
    assert settings.api_token_list() == [TOKENS[0]]
