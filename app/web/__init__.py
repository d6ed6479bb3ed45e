"""The dashboard: one HTML shell, its script and stylesheet, and the vendored assets of
/docs and /redoc, all under `static/` and served by the API (no CDN: works air-gapped).

The pages read the JSON API like any client; `app.api.routes.web` serves the files.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
INDEX_HTML = STATIC_DIR / "index.html"
