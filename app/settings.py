"""Service settings: pydantic-settings with the `OVBENCH_` prefix.

Built by `get_settings()` and passed down explicitly (`create_app(settings)`, the worker's
entry point); nothing reads the environment at import time, so tests build their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.engine.spec import DEFAULT_DURATION_S

ENV_PREFIX = "OVBENCH_"


class Settings(BaseSettings):
    """Everything the serve process, the API and the worker need to agree on."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Field(
        default=Path("./var"), description="Database, uploaded files and per-model directories"
    )
    host: str = Field(default="127.0.0.1", description="Address to bind")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to bind")
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest accepted uploaded file, per file"
    )
    max_queue: int = Field(
        default=1000, ge=1, description="Queued jobs beyond which POST /jobs is 503"
    )
    default_duration_s: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_DURATION_S),
        description="Run length per device type when a job gives neither niter nor duration_s (JSON)",
    )
    worker_poll_interval_s: float = Field(
        default=0.2, gt=0, description="How often an idle worker looks for a queued job"
    )
    cancel_grace_s: float = Field(
        default=6.0, gt=0, description="How long shutdown waits for the worker before killing it"
    )
    heartbeat_timeout_s: float = Field(
        default=10.0, gt=0, description="Worker heartbeat age beyond which /readyz fails"
    )
    api_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness added to the API threads (the worker keeps 0)",
    )

    def env_help(self) -> list[tuple[str, str, Any]]:
        """(env var, description, current value) for every setting, for `serve --help`."""
        rows: list[tuple[str, str, Any]] = []
        for name, field in type(self).model_fields.items():
            rows.append((ENV_PREFIX + name.upper(), field.description or "", getattr(self, name)))
        return rows

    @property
    def db_path(self) -> Path:
        return self.data_dir / "ovbench.db"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment (`OVBENCH_*`), with explicit overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
