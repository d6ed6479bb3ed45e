"""Browser fixtures shared by tests/web: one real `ovbench serve` and one Chromium (Debian's,
driven by playwright, offline) for the package; a fresh tab per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.e2e.conftest import Server
from tests.factories import write_known_images, write_tiny_model

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _require_chromium() -> None:
    """No skips: a missing browser fails the tests, with the fix in the message."""
    assert CHROMIUM.exists(), "Chromium is missing: run `bash .ci/browser-prepare.sh` (as root)"


@pytest.fixture(scope="package")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("web_files")
    xml = write_tiny_model(base / "model")
    return {"xml": xml, "bin": xml.with_suffix(".bin"), "images": write_known_images(base / "img")}


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("web_server")
    srv = Server(base / "data", base / "serve.log").start()
    yield srv
    srv.close()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    _require_chromium()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (own sessionStorage and cache); fails the test on an uncaught JS error
    and on any request leaving 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    errors: list[str] = []
    remote: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "request",
        lambda req: (
            None
            if req.url.startswith(("http://127.0.0.1", "data:", "blob:http://127.0.0.1"))
            else remote.append(req.url)
        ),
    )
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert not errors, errors
    assert not remote, remote
