"""The dashboard's shell, assets and offline /docs and /redoc, without a browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.api.app import create_app
from app.settings import Settings
from app.web import STATIC_DIR

TOKEN = "web-pages-token"
# What a first visit to / loads: the shell and the two files it names.
FIRST_LOAD_BUDGET_BYTES = 300 * 1024


@contextmanager
def app_client(tmp_path: Path, **overrides: Any) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path / "data", **overrides))
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        app.state.store.close()


def _local_refs(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_root_is_the_dashboard_with_links_to_the_api_docs(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        response = client.get("/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "<title>ovbench</title>" in html
        for link in ('href="/docs"', 'href="/openapi.json"', 'href="/redoc"'):
            assert link in html
        refs = [r for r in _local_refs(html) if not r.startswith(("#", "data:"))]
        assert "/web/app.js" in refs and "/web/app.css" in refs
        total = len(response.content)
        for ref in refs:
            assert ref.startswith("/"), f"{ref} is not served by the service"
            if ref.startswith("/web/"):
                asset = client.get(ref)
                assert asset.status_code == 200, ref
                total += len(asset.content)
        assert total < FIRST_LOAD_BUDGET_BYTES, total


def test_the_shell_is_not_in_the_openapi_document(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        paths = client.get("/openapi.json").json()["paths"]
        assert "/" not in paths and "/docs" not in paths and "/jobs" in paths


def test_the_pages_name_no_remote_host(tmp_path: Path) -> None:
    for name in ("index.html", "app.js", "app.css"):
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"https?://", text), name
        assert "@import" not in text and "fonts.googleapis" not in text


def test_docs_and_redoc_load_their_assets_from_the_service(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        for path, needed in (
            ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
            ("/redoc", ("redoc.standalone.js",)),
        ):
            html = client.get(path).text
            assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html, path
            refs = re.findall(r'(?:src|href)=["\'](/web/[^"\']+)', html)
            for name in needed:
                assert any(r.endswith(name) for r in refs), (path, refs)
            for ref in refs:
                assert client.get(ref).status_code == 200, ref


def test_vendored_assets_ship_with_their_licenses() -> None:
    for folder in ("swagger-ui", "redoc"):
        license_text = (STATIC_DIR / "vendor" / folder / "LICENSE").read_text()
        assert "License" in license_text or "LICENSE" in license_text


def test_with_tokens_the_shell_loads_but_the_api_stays_closed(tmp_path: Path) -> None:
    with app_client(tmp_path, api_tokens=TOKEN) as client:
        assert client.get("/").status_code == 200
        assert client.get("/web/app.js").status_code == 200
        for path in ("/models", "/jobs", "/docs", "/redoc", "/openapi.json", "/webhooks"):
            assert client.get(path).status_code == 401, path
        # The public prefix is /web/ exactly, and a dot segment does not reach the API.
        assert client.get("/web").status_code == 401
        assert client.get("/webx/app.js").status_code == 401
        sneaky = client.get("/web/../models")
        assert sneaky.status_code in (401, 404), sneaky.status_code
        assert client.get("/web/no-such.js").status_code == 404
        authed = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/docs", headers=authed).status_code == 200
