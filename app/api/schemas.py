"""The wire contract: what the API accepts (`JobCreate`) and returns (`...Read`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
)

from app.engine.defaults import (
    DEFAULT_API,
    DEFAULT_DEVICE,
    DEFAULT_LATENCY_PERCENTILE,
    ResolvedOptions,
)
from app.engine.spec import (
    DEFAULT_ATOL,
    DEFAULT_NIREQ,
    DEFAULT_RTOL,
    MAX_REPEATS,
    Api,
    BenchmarkResult,
    Hint,
    Pin,
    PortInfo,
)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]

# Upper bounds on a job's numbers: far beyond any real run, low enough that nothing overflows
# or allocates absurdly before the engine starts (README: Reliability and security).
MAX_NITER = 100_000_000
MAX_NTHREADS = 1024
MAX_NSTREAMS = 1024
MAX_BATCH = 1024
MAX_EXTENSIONS = 16
# A device: CPU, GPU.1, NPU, AUTO:GPU,-CPU, HETERO:GPU,CPU, MULTI:GPU.0,CPU ...
DEVICE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.]*(:[A-Za-z0-9_.,-]+)?$"
# nstreams / infer_precision as text: a value, or per device `CPU:4,GPU:2`.
PER_DEVICE_PATTERN = r"^[A-Za-z0-9_.]+(:[A-Za-z0-9_.]+)?(,[A-Za-z0-9_.]+:[A-Za-z0-9_.]+)*$"
# One dimension: 3, -1, ?, or a range 1..10 / ..10 / 1..
_DIMENSION = re.compile(r"\s*(\?|-1|\d{1,10}|\d{0,10}\.\.\d{0,10})\s*")
MAX_RANK = 16

ExtensionName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
StreamCount = Annotated[int, Field(strict=True, ge=1, le=MAX_NSTREAMS)]
StreamText = Annotated[str, Field(max_length=255, pattern=PER_DEVICE_PATTERN)]
HOST_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # settings.HOST_NAME_RE
HostLabel = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def split_per_input(text: str) -> list[tuple[str, str]]:
    """`[v]` or `name[v],other[w]` -> [(name, v), ...] (name "" for all inputs), else ValueError.

    The syntax of `shape`, `data_shape` and a bracketed `layout`, as the engine parses it.
    """
    rest = text.strip()
    pairs: list[tuple[str, str]] = []
    while rest:
        open_, close = rest.find("["), rest.find("]")
        if open_ < 0 or close < open_:
            raise ValueError(f"cannot parse {text!r}: expected name[d1,d2,...] or [d1,d2,...]")
        name, value = rest[:open_].strip(), rest[open_ + 1 : close]
        if any(c in name for c in ",[]"):
            raise ValueError(f"cannot parse {text!r}: bad input name {name!r}")
        pairs.append((name, value))
        rest = rest[close + 1 :].strip()
        if rest.startswith(","):
            rest = rest[1:].strip()
        elif rest:
            raise ValueError(f"cannot parse {text!r}: separate inputs with ','")
    return pairs


def check_shape_syntax(text: str) -> str:
    """`[1,3,224,224]` or `name[1,3,224,224],other[1,4]` (benchmark_app's -shape), else ValueError.

    Only the syntax; the routes check the names against the model's inputs.
    """
    if not text.strip():
        raise ValueError("empty shape; use [1,3,224,224] or name[1,3,224,224]")
    for _name, dims in split_per_input(text):
        parts = dims.split(",") if dims.strip() else []
        if len(parts) > MAX_RANK:
            raise ValueError(f"shape {dims!r} has more than {MAX_RANK} dimensions")
        for part in parts:
            if not _DIMENSION.fullmatch(part):
                raise ValueError(
                    f"{part.strip()!r} in {text!r} is not a dimension (use 3, ?, -1 or 1..10)"
                )
    return text


def per_input_layouts(text: str) -> list[tuple[str, str]] | None:
    """`NCHW` (every input) or `name[NCHW],other[NC]` -> [(name, layout), ...]; None when it
    does not parse (the engine then reports it)."""
    if "[" not in text:
        return [("", text.strip())]
    try:
        return split_per_input(text)
    except ValueError:
        return None


def check_callback_syntax(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL with a host, else ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("callback_url must be an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"callback_url has a bad port: {exc}") from exc
    if parts.username or parts.password:
        raise ValueError("callback_url must not carry credentials (user:password@)")
    return parts.hostname.lower(), port


class JobCreate(BaseModel):
    """A benchmark run: benchmark_app's knobs, for an uploaded model (and dataset)."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=64)
    dataset_id: str | None = Field(
        default=None, max_length=64, description="Inputs; random data when omitted"
    )
    device: str = Field(
        default=DEFAULT_DEVICE,
        min_length=1,
        max_length=255,
        pattern=DEVICE_PATTERN,
        description=f"CPU, GPU, NPU, AUTO, HETERO:GPU,CPU ... (default {DEFAULT_DEVICE})",
    )
    api: Api = Field(default=DEFAULT_API, description=f"sync or async (default {DEFAULT_API})")
    niter: int | None = Field(default=None, ge=1, le=MAX_NITER, description="Iterations to run")
    duration_s: float | None = Field(
        default=None,
        ge=1,
        le=86400,
        description="Run length; when neither niter nor duration_s is given, the server's "
        "default for the device type (OVBENCH_DEFAULT_DURATION_S)",
    )
    nireq: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description=f"Async infer requests (default {DEFAULT_NIREQ}); sync uses 1",
    )
    nstreams: StreamCount | StreamText | None = Field(
        default=None,
        description="Streams: a number >= 1, AUTO, or per device as text (CPU:4,GPU:2). "
        'Stored as text: 2 becomes "2"',
    )
    nthreads: int | None = Field(default=None, ge=1, le=MAX_NTHREADS)
    batch: int | None = Field(default=None, ge=1, le=MAX_BATCH)
    pin: Pin | None = None
    hint: Hint | None = None
    shape: str | None = Field(default=None, max_length=4096)
    data_shape: str | None = Field(default=None, max_length=4096)
    layout: str | None = Field(default=None, max_length=4096)
    infer_precision: str | None = Field(default=None, max_length=255, pattern=PER_DEVICE_PATTERN)
    latency_percentile: int = Field(default=DEFAULT_LATENCY_PERCENTILE, ge=1, le=100)
    perf_counters: bool = False
    rgb: bool = Field(default=False, description="Feed images in RGB order (default BGR)")
    repeats: int = Field(
        default=1,
        ge=1,
        le=MAX_REPEATS,
        description="Measured runs after one compile, each with the job's niter/duration_s; "
        "the result keeps every run and adds their aggregate and a stability verdict",
    )
    rtol: float = Field(
        default=DEFAULT_RTOL,
        ge=0,
        le=1e6,
        description="Relative tolerance of the outputs check against the dataset's "
        "expected_<output>.npy files",
    )
    atol: float = Field(
        default=DEFAULT_ATOL,
        ge=0,
        le=1e6,
        description="Absolute tolerance of the outputs check (|out - expected| <= atol + rtol * |expected|)",
    )
    extensions: list[ExtensionName] | None = Field(
        default=None,
        max_length=MAX_EXTENSIONS,
        description="-l: extension libraries, by name inside the server's OVBENCH_EXTENSIONS_DIR "
        "(403 when it is not configured)",
    )
    gpu_config: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="-c: GPU kernels config, by name inside OVBENCH_EXTENSIONS_DIR",
    )
    host: str | None = Field(
        default=None,
        pattern=HOST_NAME_PATTERN,
        description="Fleet mode: the device host to run on (default: the live host offering "
        "the device that will start it soonest)",
    )
    host_labels: dict[HostLabel, HostLabel] | None = Field(
        default=None,
        max_length=16,
        description='Fleet mode: only hosts with all these labels, e.g. {"sku": "xeon-6448"}',
    )

    callback_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Webhook: POSTed the final JobRead (a sweep: its SweepRead) when it ends, "
        "signed (README: Webhooks); its host must be in the server's OVBENCH_WEBHOOK_ALLOW",
    )

    @field_validator("callback_url")
    @classmethod
    def _callback_is_http(cls, value: str | None) -> str | None:
        if value is not None:
            check_callback_syntax(value)
        return value

    @field_validator("shape", "data_shape")
    @classmethod
    def _shape_parses(cls, value: str | None) -> str | None:
        return None if value is None else check_shape_syntax(value)

    @field_validator("nstreams")
    @classmethod
    def _nstreams_as_text(cls, value: int | str | None) -> str | None:
        """The engine takes nstreams as text (benchmark_app's -nstreams)."""
        return None if value is None else str(value)


class JobParams(JobCreate):
    """A job's parameters as stored: JobCreate's fields that were set (nulls left out)."""

    model_config = ConfigDict(extra="ignore")

    @model_serializer(mode="wrap")
    def _set_fields_only(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # No return annotation: the schema stays JobCreate's (typed), not a bare object.
        return {key: value for key, value in handler(self).items() if value is not None}


class ProgressRead(BaseModel):
    fraction: float
    iterations: int
    elapsed_s: float


class JobErrorRead(BaseModel):
    code: str
    message: str


class ResolvedParams(ResolvedOptions):
    """A job's parameters with every default filled in as the engine applies it.

    The same defaults as `ovbench run -m model.xml`; duration_s from the server's
    OVBENCH_DEFAULT_DURATION_S as it is set now. null means the engine sets nothing and the
    model or the device decides (batch: the model's; nstreams, nthreads, pin,
    infer_precision: the device's under the hint). The result's `limits` and `config` say
    what the run really used.
    """

    model_id: str
    dataset_id: str | None = Field(description="null: random data")
    extensions: list[str]
    gpu_config: str | None


class DeliveryRead(BaseModel):
    """A webhook delivery of the job's end (README: Webhooks)."""

    id: str = Field(description="X-Ovbench-Delivery: the same on every retry")
    event: str = Field(description="X-Ovbench-Event, e.g. job.succeeded")
    url: str
    state: Literal["pending", "delivered", "failed"] = Field(
        description="failed: given up after OVBENCH_WEBHOOK_RETRY_FOR_S, or the host is no "
        "longer allowed"
    )
    attempts: int
    last_status_code: int | None = Field(description="The receiver's last HTTP status")
    last_error: str | None = Field(description="Why the last attempt failed")
    next_attempt_at: datetime | None = Field(description="null unless pending")
    delivered_at: datetime | None


class JobRead(BaseModel):
    id: str
    status: JobStatus
    host: str | None = Field(
        description="Fleet mode: the host the job is routed to and runs on (null on a single host)"
    )
    model_id: str
    dataset_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    params: JobParams = Field(
        description="What was submitted, normalised: JobCreate's fields that are set, with "
        "its defaults (nstreams as text)"
    )
    resolved_params: ResolvedParams
    rerun_of: str | None = Field(
        default=None, description="The job this one reruns (POST /jobs/{id}/rerun)"
    )
    sweep_id: str | None = Field(
        default=None, description="The sweep this job is a point of (POST /sweeps)"
    )
    queue_position: int | None = Field(description="1 = next to run; null unless queued")
    progress: ProgressRead
    result: BenchmarkResult | None = Field(
        description="The engine's BenchmarkResult (also when cancelled: what ran); null until "
        "done, and for a failed job"
    )
    error: JobErrorRead | None
    deliveries: list[DeliveryRead] = Field(
        default_factory=list,
        description="Webhook deliveries of its end (callback_url); not part of the delivered body",
    )


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
    hosts: list[str] | None = Field(
        default=None, description="Fleet mode: the live hosts that offer it (null on a single host)"
    )


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
    worker: WorkerRead | None = Field(description="The local worker (null in fleet mode)")
    hosts_live: int | None = Field(
        default=None, description="Fleet mode: hosts with a fresh heartbeat (null on a single host)"
    )


class VersionRead(BaseModel):
    ovbench: str
    openvino: str
    api_version: str
