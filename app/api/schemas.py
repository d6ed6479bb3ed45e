"""The wire contract: what the API accepts (`JobCreate`) and returns (`...Read`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.engine.spec import Api, Hint, Pin, PortInfo

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobCreate(BaseModel):
    """A benchmark run: benchmark_app's knobs, for an uploaded model (and dataset)."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=64)
    dataset_id: str | None = Field(
        default=None, max_length=64, description="Inputs; random data when omitted"
    )
    device: str = Field(
        min_length=1, max_length=255, description="CPU, GPU, NPU, AUTO, HETERO:GPU,CPU ..."
    )
    api: Api
    niter: int | None = Field(default=None, ge=1, description="Iterations to run")
    duration_s: float | None = Field(
        default=None, ge=1, le=86400, description="Run length; default per device type"
    )
    nireq: int | None = Field(
        default=None, ge=1, le=1024, description="Async infer requests (default 2)"
    )
    nstreams: str | None = Field(default=None, max_length=255)
    nthreads: int | None = Field(default=None, ge=1)
    batch: int | None = Field(default=None, ge=1)
    pin: Pin | None = None
    hint: Hint | None = None
    shape: str | None = Field(default=None, max_length=4096)
    data_shape: str | None = Field(default=None, max_length=4096)
    layout: str | None = Field(default=None, max_length=4096)
    infer_precision: str | None = Field(default=None, max_length=255)
    latency_percentile: int = Field(default=50, ge=1, le=100)
    perf_counters: bool = False
    rgb: bool = Field(default=False, description="Feed images in RGB order (default BGR)")


class ProgressRead(BaseModel):
    fraction: float
    iterations: int
    elapsed_s: float


class JobErrorRead(BaseModel):
    code: str
    message: str


class JobRead(BaseModel):
    id: str
    status: JobStatus
    model_id: str
    dataset_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    params: dict[str, Any]
    queue_position: int | None = Field(description="1 = next to run; null unless queued")
    progress: ProgressRead
    result: dict[str, Any] | None = Field(
        description="Exactly the engine's BenchmarkResult JSON (see that schema); null until done"
    )
    error: JobErrorRead | None


class ModelFileRead(BaseModel):
    name: str = Field(
        description="The file's name in the model directory (model.xml, model.bin ...)"
    )
    original_name: str = Field(description="The name it was uploaded with")
    size_bytes: int
    sha256: str


class ModelRead(BaseModel):
    id: str
    name: str
    format: str
    sha256: str = Field(description="Over the model's files (name and sha256 of each)")
    size_bytes: int
    inputs: list[PortInfo]
    outputs: list[PortInfo]
    files: list[ModelFileRead]
    created_at: datetime


class DatasetFileRead(BaseModel):
    name: str
    kind: Literal["image", "npy"]
    size_bytes: int
    sha256: str
    width: int | None = None
    height: int | None = None


class DatasetRead(BaseModel):
    id: str
    count: int
    size_bytes: int
    files: list[DatasetFileRead]
    created_at: datetime


class DeviceRead(BaseModel):
    name: str
    full_name: str
    properties: dict[str, str]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. model_not_found")
    message: str
    details: Any = None


class ErrorRead(BaseModel):
    error: ErrorBody


class HealthRead(BaseModel):
    status: Literal["ok"]


class WorkerRead(BaseModel):
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float
    current_job_id: str | None


class ReadyRead(BaseModel):
    ready: bool
    worker: WorkerRead | None


class VersionRead(BaseModel):
    ovbench: str
    openvino: str
    api_version: str
