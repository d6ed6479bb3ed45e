"""The dashboard's shell at `/`, its static assets under `/web/`, and /docs and /redoc
served from vendored assets (FastAPI's defaults load them from a CDN)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.web import INDEX_HTML, STATIC_DIR

router = APIRouter(include_in_schema=False)

STATIC_PREFIX = "/web"
_SWAGGER = f"{STATIC_PREFIX}/vendor/swagger-ui"
_REDOC = f"{STATIC_PREFIX}/vendor/redoc"


@router.get("/", response_class=FileResponse)
async def read_dashboard() -> FileResponse:
    # no-cache: the shell is revalidated (ETag) so a new release's assets are picked up.
    return FileResponse(INDEX_HTML, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/docs", response_class=HTMLResponse)
async def read_swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="ovbench - Swagger UI",
        swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{_SWAGGER}/favicon-32x32.png",
        # No validator badge: it is an image from validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc", response_class=HTMLResponse)
async def read_redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="ovbench - ReDoc",
        redoc_js_url=f"{_REDOC}/redoc.standalone.js",
        redoc_favicon_url=f"{_SWAGGER}/favicon-32x32.png",
        with_google_fonts=False,
    )


def install_web(app: FastAPI) -> None:
    """The routes above and the static files (create the app with docs_url=None, redoc_url=None)."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="web")
