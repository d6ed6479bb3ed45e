"""`Client`: the service's routes as typed calls (httpx), answering the API's own wire models.

    with Client("http://127.0.0.1:8000", token=None) as api:
        model = api.upload_model(["model.xml", "model.bin"])   # skipped when the server has it
        job = api.submit_job({"model_id": model.id, "api": "async", "duration_s": 10})
        done = api.wait_job(job.id, on_progress=lambda j: print(j.progress.iterations))

Every failure is an `ApiError` (see app.client.errors). Nothing here imports the store, the
services or FastAPI: only the wire models (`app.api.schemas`, `app.api.sweep_schemas`,
`app.engine.compare.Comparison`), which are the contract.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from app.api.schemas import DatasetRead, DeviceRead, JobCreate, JobRead, ModelRead, VersionRead
from app.api.sweep_schemas import SweepCreate, SweepRead
from app.client import content
from app.client.errors import BAD_RESPONSE, ApiError, from_response, from_transport
from app.engine.compare import Comparison

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_POLL_S = 0.5
FINISHED_STATUSES = frozenset({"succeeded", "failed", "cancelled"})

StrPath = str | PathLike[str]
_T = TypeVar("_T")
_JOBS = TypeAdapter(list[JobRead])
_MODELS = TypeAdapter(list[ModelRead])
_DATASETS = TypeAdapter(list[DatasetRead])
_DEVICES = TypeAdapter(list[DeviceRead])


def _shown(model: type[Any] | TypeAdapter[Any]) -> str:
    """JobRead, or list[JobRead]: what an answer should have been."""
    return (
        repr(model).removeprefix("TypeAdapter(").removesuffix(")")
        if isinstance(model, TypeAdapter)
        else model.__name__
    )


class Client:
    """One service at `base_url`; `token` is sent as `Authorization: Bearer <token>`.

    `timeout_s` bounds each network operation (connect, each read and write), not a whole
    upload. `transport` is httpx's, for a test that serves an app in-process. ValueError
    for a URL that is not http(s).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"The server's URL {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        headers = {"User-Agent": "ovbench-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer (2xx or 304), else ApiError."""
        url = f"{self.base_url}{path}"
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise from_transport(exc, url, self.timeout_s) from exc
        if response.status_code >= 400:
            raise from_response(response)
        return response

    def _parse(self, response: httpx.Response, model: type[_T] | TypeAdapter[_T]) -> _T:
        adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
        try:
            return adapter.validate_json(response.content)
        except ValidationError as exc:
            url = str(response.request.url)
            raise ApiError(
                response.status_code,
                BAD_RESPONSE,
                f"{url} answered something that is not the ovbench service's "
                f"{_shown(model)} ({exc.error_count()} problems; first: "
                f"{exc.errors()[0]['msg'] if exc.errors() else exc})",
                url=url,
            ) from exc

    def _get(self, path: str, model: type[_T] | TypeAdapter[_T], **params: Any) -> _T:
        query = {k: v for k, v in params.items() if v is not None}
        return self._parse(self._send("GET", path, params=query), model)

    # ------------------------------------------------------------------ models, datasets
    def models(self, sha256: str | None = None) -> list[ModelRead]:
        """The server's models, newest first; with `sha256`, the one with that content."""
        return self._get("/models", _MODELS, sha256=sha256)

    def find_model(self, paths: Sequence[StrPath]) -> ModelRead | None:
        """The server's model with the content of these files (by `ModelRead.sha256`, as the
        server computes it), or None. Nothing is uploaded."""
        files = content.model_files([Path(p) for p in paths])
        if files is None:
            return None
        sha256 = content.model_sha256(files)
        # An older server ignores the filter and lists every model: match here too.
        return next((m for m in self.models(sha256=sha256) if m.sha256 == sha256), None)

    def upload_model(
        self, paths: Sequence[StrPath], name: str | None = None, check_first: bool = True
    ) -> ModelRead:
        """Upload a model's files (an IR's .xml and .bin, or one .onnx/.tflite/...).

        With `check_first` (the default) the server is asked first (`find_model`) and
        nothing is uploaded when it has the same content. The server also deduplicates an
        upload by content: the same files always give the same model.
        """
        local = [Path(p) for p in paths]
        if check_first and (found := self.find_model(local)) is not None:
            logger.info("model %s: the server has this content already", found.id)
            return found
        data = {"name": name} if name is not None else None
        with ExitStack() as stack:
            files = [("file", (p.name, stack.enter_context(p.open("rb")))) for p in local]
            response = self._send("POST", "/models", files=files, data=data)
        return self._parse(response, ModelRead)

    def datasets(self, sha256: str | None = None) -> list[DatasetRead]:
        """The server's datasets, newest first; with `sha256`, those holding a file with that
        content."""
        return self._get("/datasets", _DATASETS, sha256=sha256)

    def find_dataset(self, paths: Sequence[StrPath]) -> DatasetRead | None:
        """The newest dataset on the server with exactly these input files (files and folders
        as `ovbench run -i` takes them): the same names as the server stores them and the
        same contents. One request: `GET /datasets?sha256=` with the first file's digest,
        then the candidates' file lists are compared here. Nothing is uploaded."""
        files = content.dataset_files(content.input_paths([Path(p) for p in paths]))
        if not files:
            return None
        for dataset in self.datasets(sha256=files[0].sha256):
            if content.same_files(files, ((f.name, f.sha256) for f in dataset.files)):
                return dataset
        return None

    def upload_dataset(self, paths: Sequence[StrPath], check_first: bool = True) -> DatasetRead:
        """Upload input files (images, .npy; folders give their files, as `ovbench run -i`).

        With `check_first` (the default) the server is asked first (`find_dataset`) and
        nothing is uploaded when it holds a dataset of the same files. The server itself
        does not deduplicate datasets: each upload makes a new one.
        """
        local = content.input_paths([Path(p) for p in paths])
        if check_first and (found := self.find_dataset(local)) is not None:
            logger.info("dataset %s: the server has these files already", found.id)
            return found
        with ExitStack() as stack:
            files = [("file", (p.name, stack.enter_context(p.open("rb")))) for p in local]
            response = self._send("POST", "/datasets", files=files)
        return self._parse(response, DatasetRead)

    # ------------------------------------------------------------------ jobs
    def submit_job(
        self, job: JobCreate | Mapping[str, Any], idempotency_key: str | None = None
    ) -> JobRead:
        """Queue a benchmark. A mapping is checked as JobCreate here first (pydantic's
        ValidationError before any request); only the fields given are sent, so the
        server's defaults apply to the others (its default duration per device, ...)."""
        create = job if isinstance(job, JobCreate) else JobCreate.model_validate(job)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = create.model_dump(mode="json", exclude_unset=True)
        return self._parse(self._send("POST", "/jobs", json=body, headers=headers), JobRead)

    def job(self, job_id: str) -> JobRead:
        return self._get(f"/jobs/{job_id}", JobRead)

    def jobs(
        self,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        model_id: str | None = None,
    ) -> list[JobRead]:
        """Jobs, newest first."""
        return self._get(
            "/jobs", _JOBS, status=status, limit=limit, offset=offset, model_id=model_id
        )

    def cancel(self, job_id: str) -> JobRead:
        """Cancel: a queued job at once, a running one within about 2 s (409 when finished)."""
        return self._parse(self._send("POST", f"/jobs/{job_id}/cancel"), JobRead)

    def delete(self, job_id: str) -> None:
        """Delete a finished job (409 while it is queued or running)."""
        self._send("DELETE", f"/jobs/{job_id}")

    def rerun(self, job_id: str) -> JobRead:
        """Queue the job again with the same resolved parameters."""
        return self._parse(self._send("POST", f"/jobs/{job_id}/rerun"), JobRead)

    def wait_job(
        self,
        job_id: str,
        on_progress: Callable[[JobRead], None] | None = None,
        poll_s: float = DEFAULT_POLL_S,
        timeout_s: float | None = None,
    ) -> JobRead:
        """Poll the job every `poll_s` until it is succeeded, failed or cancelled; return it.

        Each poll sends the last `ETag` as `If-None-Match`, so an unchanged job costs the
        server a 304 and no body (the read cache of a SQLite server; other servers answer
        200 every time). `on_progress` gets the job on the first read and on every change.
        TimeoutError after `timeout_s` (default: no limit); Ctrl-C raises KeyboardInterrupt
        out of the wait, leaving the job as it is.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        etag: str | None = None
        job: JobRead | None = None
        while True:
            headers = {"If-None-Match": etag} if etag and job is not None else None
            response = self._send("GET", f"/jobs/{job_id}", headers=headers)
            if response.status_code != 304 or job is None:
                job = self._parse(response, JobRead)
                etag = response.headers.get("etag")
                if on_progress is not None:
                    on_progress(job)
            if job.status in FINISHED_STATUSES:
                return job
            wait_s = poll_s
            if deadline is not None:
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    raise TimeoutError(f"Job {job_id} is still {job.status} after {timeout_s} s")
                wait_s = min(wait_s, left_s)
            time.sleep(wait_s)

    # ------------------------------------------------------------------ the rest
    def compare(self, baseline: str, candidate: str, threshold: float = 0.02) -> Comparison:
        """Two succeeded jobs' results, candidate against baseline (`GET /compare`)."""
        return self._get(
            "/compare", Comparison, baseline=baseline, candidate=candidate, threshold=threshold
        )

    def devices(self) -> list[DeviceRead]:
        return self._get("/devices", _DEVICES)

    def version(self) -> VersionRead:
        return self._get("/version", VersionRead)

    def create_sweep(self, sweep: SweepCreate | Mapping[str, Any]) -> SweepRead:
        """Queue a grid of run options as jobs; a mapping is checked as SweepCreate first."""
        create = sweep if isinstance(sweep, SweepCreate) else SweepCreate.model_validate(sweep)
        body = create.model_dump(mode="json", exclude_unset=True)
        return self._parse(self._send("POST", "/sweeps", json=body), SweepRead)

    def sweep(self, sweep_id: str) -> SweepRead:
        return self._get(f"/sweeps/{sweep_id}", SweepRead)

    def cancel_sweep(self, sweep_id: str) -> SweepRead:
        return self._parse(self._send("POST", f"/sweeps/{sweep_id}/cancel"), SweepRead)
