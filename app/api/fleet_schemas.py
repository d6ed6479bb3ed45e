"""Fleet mode's wire models: hosts as users see them, and the agents' protocol (`/agent/`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.engine.spec import DeviceInfo

HostState = Literal["idle", "busy", "offline", "draining"]


class HostRead(BaseModel):
    name: str
    state: HostState = Field(
        description="offline: no heartbeat for OVBENCH_HEARTBEAT_TIMEOUT_S; draining: takes no "
        "new jobs; busy: runs a job; idle: waits for one"
    )
    draining: bool
    labels: dict[str, str]
    devices: list[DeviceInfo]
    facts: dict[str, Any] = Field(description="What the agent said about its host (CPU, OS...)")
    agent_version: str
    registered_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float
    current_job_id: str | None
    queue_depth: int = Field(description="Jobs queued for this host")


class AgentRegister(BaseModel):
    model_config = ConfigDict(extra="forbid")

    devices: list[DeviceInfo] = Field(max_length=64)
    labels: dict[str, str] = Field(default_factory=dict, max_length=16)
    facts: dict[str, Any] = Field(default_factory=dict)
    agent_version: str = Field(max_length=64)


class AgentRegistered(BaseModel):
    host: str
    heartbeat_interval_s: float
    lost_job_ids: list[str] = Field(description="Jobs this host left running, now worker_lost")


class AgentHeartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_job_id: str | None = None


class AgentHeartbeatReply(BaseModel):
    draining: bool


class AgentClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claim_token: str = Field(
        min_length=8,
        max_length=64,
        description="Names this claim; the same token again gets the job",
    )


class AgentFile(BaseModel):
    name: str = Field(description="The file's name in the job's model or input directory")
    original_name: str
    sha256: str
    size_bytes: int


class AgentJob(BaseModel):
    """What an agent needs to run a job it claimed."""

    id: str
    params: dict[str, Any]
    model_files: list[AgentFile]
    dataset_files: list[AgentFile]


class AgentProgress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fraction: float | None = Field(default=None, ge=0, le=1)
    iterations: int | None = Field(default=None, ge=0)
    elapsed_s: float | None = Field(default=None, ge=0)


class AgentProgressReply(BaseModel):
    cancel_requested: bool
    status: str


class AgentFinish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["succeeded", "failed", "cancelled"]
    result: dict[str, Any] | None = None
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, max_length=100_000)
