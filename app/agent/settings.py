"""The agent's settings: `ovbench agent` options, or `OVBENCH_AGENT_*` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.settings import HOST_NAME_RE
from app.worker.run_lock import default_lock_path

DEFAULT_CACHE_MAX_BYTES = 20 * 1024**3


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OVBENCH_AGENT_", extra="ignore")

    api: str = Field(description="The API's URL, e.g. http://api-host:8000")
    token: str = Field(repr=False, exclude=True, description="This host's agent token")
    name: str = Field(description="This host's name (its queue: ovbench.host.NAME)")
    broker_url: str = Field(
        repr=False,
        exclude=True,
        validation_alias=AliasChoices("broker_url", "OVBENCH_BROKER_URL"),
        description="RabbitMQ's AMQP URL (OVBENCH_BROKER_URL)",
    )
    labels: str = Field(default="", description="Host labels for routing, as k=v,k2=v2")
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "ovbench-agent",
        description="Where model and input files are cached, by sha256",
    )
    cache_max_bytes: int = Field(
        default=DEFAULT_CACHE_MAX_BYTES, ge=1, description="The cache's size cap"
    )
    run_lock_path: Path = Field(
        default_factory=default_lock_path,
        validation_alias=AliasChoices("run_lock_path", "OVBENCH_RUN_LOCK_PATH"),
        description="The host's run lock, shared with every ovbench process on the host",
    )
    progress_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="How often a running job's progress (and cancel) is exchanged",
    )
    simulate: bool = Field(
        default=False,
        description="Tests and bench/fleet_sim.py only: sleep each job's duration, no OpenVINO",
    )

    @field_validator("name")
    @classmethod
    def _host_name(cls, value: str) -> str:
        if not HOST_NAME_RE.fullmatch(value):
            raise ValueError(
                "a host name is letters, digits, '.', '_' or '-', at most 64, starting with a "
                "letter or digit"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _labels_parse(cls, value: str) -> str:
        parse_labels(value)
        return value

    def label_map(self) -> dict[str, str]:
        return parse_labels(self.labels)


def parse_labels(text: str) -> dict[str, str]:
    """`k=v,k2=v2` as a dict (ValueError naming the pair that is not key=value)."""
    labels = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        key, sep, label = pair.partition("=")
        if not sep or not key.strip() or not label.strip():
            raise ValueError(f"label {pair!r} is not key=value")
        labels[key.strip()] = label.strip()
    return labels
