"""The agent's file cache and download: only verified files enter, the cap holds, the least
recently used files go first, and the job's own files are never evicted."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.agent.cache import BlobCache, CacheTooSmall
from app.agent.client import ApiClient


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Files:
    """A fetch that serves known contents and counts what it was asked for."""

    def __init__(self, *contents: bytes) -> None:
        self.by_sha = {_sha(c): c for c in contents}
        self.fetched: list[str] = []

    def __call__(self, sha256: str, size: int, dest: Path) -> None:
        self.fetched.append(sha256)
        dest.write_bytes(self.by_sha[sha256])


def test_files_are_fetched_once_then_served_from_the_cache(tmp_path: Path) -> None:
    a, b = b"a" * 100, b"b" * 200
    files = _Files(a, b)
    cache = BlobCache(tmp_path, max_bytes=1000)
    cache.ensure([(_sha(a), 100), (_sha(b), 200)], files)
    cache.ensure([(_sha(a), 100)], files)
    assert files.fetched == [_sha(a), _sha(b)] and (cache.hits, cache.misses) == (1, 2)
    root = cache.job_dir("job1", {"model.xml": _sha(a)}, {"x.png": _sha(b)})
    assert (root / "model" / "model.xml").read_bytes() == a
    assert (root / "inputs" / "x.png").read_bytes() == b
    cache.drop_job_dir("job1")
    assert not root.exists() and cache.path_for(_sha(a)).exists()
    with pytest.raises(ValueError, match="unsafe"):
        cache.job_dir("job2", {"../x": _sha(a)}, {})


def test_the_cap_evicts_least_recently_used_but_never_the_jobs_own(tmp_path: Path) -> None:
    old, newer, wanted = b"o" * 400, b"n" * 400, b"w" * 400
    files = _Files(old, newer, wanted)
    cache = BlobCache(tmp_path, max_bytes=900)
    cache.ensure([(_sha(old), 400)], files)
    cache.ensure([(_sha(newer), 400)], files)
    os.utime(cache.path_for(_sha(old)), (1, 1))  # long unused
    cache.ensure([(_sha(wanted), 400)], files)
    assert not cache.path_for(_sha(old)).exists()
    assert cache.path_for(_sha(newer)).exists() and cache.path_for(_sha(wanted)).exists()
    with pytest.raises(CacheTooSmall, match="cache cap of 900"):
        cache.ensure([(_sha(old), 400), (_sha(newer), 400), (_sha(wanted), 400)], files)


class _Lying(http.server.BaseHTTPRequestHandler):
    body = b""
    unavailable = 0  # answer this many requests 503 (a database outage) first

    def do_GET(self) -> None:
        if type(self).unavailable > 0:
            type(self).unavailable -= 1
            error = b'{"error": {"code": "database_unavailable", "message": "retry"}}'
            self.send_response(503)
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def lying_api() -> Iterator[tuple[str, type[_Lying]]]:
    handler = type("Handler", (_Lying,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_a_download_with_other_bytes_never_enters_the_cache(
    tmp_path: Path, lying_api: tuple[str, type[_Lying]]
) -> None:
    url, handler = lying_api
    good = b"the real model"
    client = ApiClient(url, "token", threading.Event())
    cache = BlobCache(tmp_path, max_bytes=1 << 20)
    try:
        for sent, why in ((b"tampered model", "expected 14 bytes"), (good * 2, "more than its")):
            handler.body = sent
            with pytest.raises(ValueError, match=why):
                cache.ensure([(_sha(good), len(good))], client.download)
            assert not cache.path_for(_sha(good)).exists()
            assert not [p for p in cache.blobs.rglob("*") if p.is_file()]  # no partial file
        handler.body = good
        cache.ensure([(_sha(good), len(good))], client.download)
        assert cache.path_for(_sha(good)).read_bytes() == good
    finally:
        client.close()


def test_a_download_waits_out_a_503(tmp_path: Path, lying_api: tuple[str, type[_Lying]]) -> None:
    url, handler = lying_api
    good = b"the real model"
    handler.body, handler.unavailable = good, 2
    client = ApiClient(url, "token", threading.Event())
    try:
        client.download(_sha(good), len(good), tmp_path / "blob")  # two 503s, then the file
        assert (tmp_path / "blob").read_bytes() == good and handler.unavailable == 0
    finally:
        client.close()
