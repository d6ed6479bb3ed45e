"""The wire contract of `/sweeps`: `SweepCreate` in, `SweepRead` out (engine.sweep's points
and summary inside)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import DEVICE_PATTERN, PER_DEVICE_PATTERN, DeliveryRead, JobCreate
from app.engine.spec import Api, Hint
from app.engine.sweep import DEFAULT_MIN_GAIN, Objective, Strategy, SweepConstraints, SweepStatus
from app.engine.sweep_summary import PointRead, SweepSummary

MAX_AXIS_VALUES = 64

DeviceName = Annotated[str, Field(min_length=1, max_length=255, pattern=DEVICE_PATTERN)]
PerDevice = Annotated[str, Field(max_length=255, pattern=PER_DEVICE_PATTERN)]
Values = Field(default=None, min_length=1, max_length=MAX_AXIS_VALUES)


class SweepGrid(BaseModel):
    """The options to sweep, each a list of values (their cartesian product is the points).
    Each value is checked as JobCreate checks that field."""

    model_config = ConfigDict(extra="forbid")

    device: list[DeviceName] | None = Field(
        default=None, min_length=1, max_length=MAX_AXIS_VALUES, description="Devices to compare"
    )
    api: list[Api] | None = Values
    hint: list[Hint] | None = Values
    infer_precision: list[PerDevice] | None = Values
    batch: list[int] | None = Values
    nstreams: list[int | str] | None = Values
    nireq: list[int] | None = Values

    def axes(self) -> dict[str, list[int | str]]:
        """{axis: values} for the axes given, in field order."""
        return {
            name: list(values)
            for name in type(self).model_fields
            if (values := getattr(self, name)) is not None
        }


class SweepCreate(JobCreate):
    """A sweep: JobCreate's fields as the base of every point, and the grid that varies them."""

    grid: SweepGrid = Field(
        description='e.g. {"nireq": [1, 2, 4], "nstreams": [1, 2]}; sweeping nireq makes api '
        "async unless api is given (sync runs one request: 422) or swept"
    )
    strategy: Strategy = Field(
        default="grid",
        description="grid: every point; search: skip points that cannot win (each skip says why)",
    )
    objective: Objective = Field(
        default="throughput_fps",
        description="throughput_fps is maximized; a latency percentile is minimized",
    )
    constraints: SweepConstraints = Field(
        default_factory=SweepConstraints,
        description='Bounds the best point must meet, e.g. {"latency_p99_ms": 20}',
    )
    min_gain: float = Field(
        default=DEFAULT_MIN_GAIN,
        ge=0,
        le=10,
        description="search: stop raising nireq once throughput grows by less than this share "
        "(0.05: 5%, about a shared host's run-to-run noise)",
    )


class SweepProgress(BaseModel):
    points_total: int
    points_done: int = Field(description="Points decided: finished, or skipped")
    points_skipped: int
    fraction: float = Field(description="points_done / points_total")


class SweepEstimate(BaseModel):
    points: int
    repeats: int
    measured_s: float | None = Field(
        description="Sum of the points' measuring time (duration x repeats); null when the "
        "points are bounded by niter only"
    )
    note: str


class SweepTiming(BaseModel):
    wall_s: float = Field(description="From submission to the end (or to now)")
    jobs_s: float = Field(description="The points' jobs, from claim to end, summed")
    measured_s: float = Field(description="The points' measured loops, summed")
    setup_s: float = Field(description="Reading, compiling and first inferences, summed")


class SweepRead(BaseModel):
    id: str
    status: SweepStatus
    model_id: str
    dataset_id: str | None
    created_at: datetime
    finished_at: datetime | None
    strategy: Strategy
    objective: Objective
    constraints: SweepConstraints
    min_gain: float
    grid: dict[str, list[int | str]] = Field(description="The axes swept, as normalized")
    base: dict[str, int | float | str | bool | list[str] | dict[str, str]] = Field(
        description="The base parameters (JobCreate's fields set); the grid overrides them"
    )
    estimate: SweepEstimate
    progress: SweepProgress
    timing: SweepTiming
    points: list[PointRead]
    summary: SweepSummary
    deliveries: list[DeliveryRead] = Field(
        default_factory=list,
        description="Webhook deliveries of its end (callback_url); not part of the delivered body",
    )
