"""Service settings: pydantic-settings with the `OVBENCH_` prefix.

Built by `get_settings()` and passed down explicitly (`create_app(settings)`, the worker's
entry point); nothing reads the environment at import time, so tests build their own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.engine.integrity import HostGuardRules, StabilityRules
from app.engine.spec import DEFAULT_DURATION_S
from app.worker.run_lock import default_lock_path

ENV_PREFIX = "OVBENCH_"
# A fleet host's name: also its queue's name on the broker (ovbench.host.<name>).
HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Settings(BaseSettings):
    """Everything the serve process, the API and the worker need to agree on."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", env_nested_delimiter="__"
    )

    data_dir: Path = Field(
        default=Path("./var"), description="Database, uploaded files and per-model directories"
    )
    database_url: str | None = Field(
        default=None,
        repr=False,
        # It may hold a password: kept out of model_dump, so off the worker's command line
        # (`ps`); the supervisor hands it to the worker in its environment instead.
        exclude=True,
        description=(
            "SQLAlchemy URL of the database, e.g. postgresql+psycopg://user:password@host/db "
            "(unset: SQLite, ovbench.db in the data dir)"
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address to bind")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to bind")
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest accepted uploaded file, per file"
    )
    max_queue: int = Field(
        default=1000, ge=1, description="Queued jobs beyond which POST /jobs is 503"
    )
    sweep_max_points: int = Field(
        default=256, ge=1, description="Points beyond which POST /sweeps is refused (422)"
    )
    sweep_max_hours: float = Field(
        default=24.0,
        gt=0,
        description="Estimated measuring time (points x duration x repeats) beyond which "
        "POST /sweeps is refused (422)",
    )
    default_duration_s: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_DURATION_S),
        description="Run length per device type when a job gives neither niter nor duration_s (JSON)",
    )
    worker_poll_interval_s: float = Field(
        default=0.2, gt=0, description="How often an idle worker looks for a queued job"
    )
    run_lock_path: Path = Field(
        default_factory=default_lock_path,
        description=(
            "The host's run lock file: ovbench processes naming the same file run one benchmark "
            "at a time between them, whatever their data dirs (default /run/lock/ovbench/run.lock, "
            "else /tmp/ovbench/run.lock)"
        ),
    )
    cancel_grace_s: float = Field(
        default=6.0, gt=0, description="How long shutdown waits for the worker before killing it"
    )
    heartbeat_timeout_s: float = Field(
        default=10.0, gt=0, description="Worker heartbeat age beyond which /readyz fails"
    )
    api_nice: int = Field(
        # Niceness decides when the API runs, not how much CPU polling costs (that is the
        # read cache's job). Measured with bench/api_load.py, 32 clients each polling every
        # 0.5 s while ResNet-50 ran on both cores: nice 0 p99 24 ms, 2 p99 30 ms, 5 p99 42-56
        # ms, at the same CPU cost; under back-to-back abuse the API got 25% of the CPU at
        # nice 0 and 13% at 5. 2 keeps polls fast and still lets the benchmark win.
        default=2,
        ge=0,
        le=19,
        description="Niceness added to the API threads (the worker keeps 0)",
    )
    api_cpu_share_while_running: float = Field(
        default=0.03,
        ge=0,
        le=1,
        description=(
            "While a job runs, the API process may use at most this share of all CPUs; "
            "requests beyond it wait (they are not refused). 0: no limit"
        ),
    )
    # --- trust in the figures (README: Results you can trust) ---
    stability: StabilityRules = Field(
        default_factory=StabilityRules,
        description="Steady state and verdict thresholds, e.g. OVBENCH_STABILITY__CV_REPEATS_MAX=0.05",
    )
    guard: HostGuardRules = Field(
        default_factory=HostGuardRules,
        description="The host guard before each run, e.g. OVBENCH_GUARD__WAIT_S=30",
    )
    service_cpus: str = Field(
        default="",
        description="CPUs for the API and the control threads, e.g. 0 or 0-1; benchmarks get "
        "the rest (unset: everything shares every CPU). README: Isolation",
    )
    run_cpus: str = Field(
        default="",
        description="Internal: the CPUs serve left for benchmarks, handed to its worker",
    )
    # --- access and input limits (README: Reliability and security) ---
    api_tokens: str = Field(
        default="",
        repr=False,
        exclude=True,  # never in model_dump: the worker's command line (`ps`) must not show it
        description="Bearer tokens, comma-separated; when set (or a file is), every route but /healthz needs one",
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="A file of bearer tokens, one a line (# comments and blanks ignored)",
    )
    extensions_dir: Path | None = Field(
        default=None,
        description="The only directory jobs may name extension libraries (-l) and GPU configs (-c) in (unset: refused)",
    )
    cors_origins: str = Field(
        default="", description="Origins allowed by CORS, comma-separated (unset: CORS off)"
    )
    max_model_files: int = Field(
        default=8, ge=1, le=1000, description="Most files in one model upload"
    )
    max_dataset_files: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Most files (images, .npy) in one dataset"
    )
    # --- reliability (README: Reliability and security) ---
    job_allowance_s: float = Field(
        default=60.0,
        gt=0,
        description="Wall-time allowance per job for reading, compiling and the first inference",
    )
    niter_budget_s: float = Field(
        default=1.0,
        gt=0,
        description="Wall-time budget per iteration for jobs bounded by niter (added to the allowance)",
    )
    run_kill_grace_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a cancelled run may take to stop before its worker is killed",
    )
    max_data_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Quota on the data dir in bytes; an upload that would pass it is 507 (unset: none)",
    )
    retention_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="How often unreferenced files are swept from the data dir (also at start-up), "
        "and the final webhook deliveries of deleted jobs and sweeps removed",
    )
    retention_grace_s: float = Field(
        default=600.0,
        ge=0,
        description="Unreferenced files younger than this survive a periodic sweep (in-flight uploads)",
    )
    # --- fleet mode (README: Fleet; docs/fleet.md) ---
    broker_url: str | None = Field(
        default=None,
        repr=False,
        exclude=True,  # may hold a password: never on a command line
        description=(
            "AMQP URL of RabbitMQ, e.g. amqp://user:password@host:5672//; with a PostgreSQL "
            "database_url this is fleet mode: jobs run on agents, no local worker"
        ),
    )
    agent_tokens: str = Field(
        default="",
        repr=False,
        exclude=True,
        description="Fleet mode: each agent's host name and token, as name=token, comma-separated",
    )
    host_start_deadline_s: float = Field(
        default=120.0,
        gt=0,
        description=(
            "Fleet mode: a queued job whose host is offline fails host_unavailable once it has "
            "waited this long"
        ),
    )
    sweep_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="Fleet mode: how often the sweeper republishes and fails what is stuck",
    )
    publish_grace_s: float = Field(
        default=2.0,
        gt=0,
        description="Fleet mode: a queued job never handed to the broker is published by the sweeper after this",
    )
    republish_after_s: float = Field(
        default=15.0,
        gt=0,
        description="Fleet mode: a queued job whose host is idle this long after its publish is published again",
    )
    webhook_allow: str = Field(
        default="",
        description="Webhooks: the hosts a callback_url may name, comma-separated host names or "
        "host:port (empty: none, and a callback_url is refused with 422)",
    )
    webhook_secret: str = Field(
        default="",
        repr=False,
        exclude=True,  # off the worker's command line: only the API process signs
        description="Webhooks: HMAC-SHA256 key of X-Ovbench-Signature (empty: deliveries are "
        "sent unsigned)",
    )
    webhook_retry_for_s: float = Field(
        default=86400.0,
        gt=0,
        description="Webhooks: how long after the job's end a delivery is retried before it "
        "is given up (state failed)",
    )
    webhook_first_retry_s: float = Field(
        default=1.0, gt=0, description="Webhooks: the first retry's delay; it doubles per attempt"
    )
    webhook_max_retry_s: float = Field(
        default=600.0, gt=0, description="Webhooks: the longest delay between two attempts"
    )
    webhook_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Webhooks: one attempt's timeout (connect and read)"
    )
    webhook_poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="Webhooks: how often the sender looks for due deliveries (a delivery goes "
        "out within about this long of the end, or of its retry time)",
    )
    fault: str = Field(
        default="", description="Tests only: fault points to arm, comma-separated (app/faults.py)"
    )

    def env_help(self) -> list[tuple[str, str, Any]]:
        """(env var, description, current value) for every setting, for `serve --help`."""
        rows: list[tuple[str, str, Any]] = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if name == "api_tokens" and value:
                value = "(set, hidden)"
            if name in ("database_url", "broker_url") and value:
                value = _without_password(value)
            if name in ("agent_tokens", "webhook_secret") and value:
                value = "(set, hidden)"
            if isinstance(value, BaseModel):  # nested: one variable per field, NAME__FIELD
                for sub, sub_field in type(value).model_fields.items():
                    env = f"{ENV_PREFIX}{name.upper()}__{sub.upper()}"
                    rows.append((env, sub_field.description or "", getattr(value, sub)))
                continue
            rows.append((ENV_PREFIX + name.upper(), field.description or "", value))
        return rows

    @property
    def db_path(self) -> Path:
        return self.data_dir / "ovbench.db"

    def api_token_list(self) -> list[str]:
        """The configured bearer tokens (`api_tokens` plus the file's lines); [] = no auth.

        Reads `api_tokens_file` (an unreadable or empty file is an error: fail closed).
        """
        tokens = [t.strip() for t in self.api_tokens.split(",") if t.strip()]
        if self.api_tokens_file is not None:
            lines = self.api_tokens_file.read_text(encoding="utf-8").splitlines()
            from_file = [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
            if not from_file:
                raise ValueError(
                    f"{ENV_PREFIX}API_TOKENS_FILE {self.api_tokens_file} has no tokens"
                )
            tokens += from_file
        return tokens

    @property
    def fleet(self) -> bool:
        """Fleet mode: jobs go through the broker to agents (README: Fleet)."""
        return bool(self.broker_url)

    def agent_token_map(self) -> dict[str, str]:
        """{token: host name} from `agent_tokens` (ValueError naming a malformed entry)."""
        tokens: dict[str, str] = {}
        for entry in (e.strip() for e in self.agent_tokens.split(",")):
            if not entry:
                continue
            name, sep, token = entry.partition("=")
            name, token = name.strip(), token.strip()
            if not sep or not HOST_NAME_RE.fullmatch(name) or not token:
                raise ValueError(
                    f"{ENV_PREFIX}AGENT_TOKENS: {name or entry[:20]!r} is not name=token with a "
                    "host name of letters, digits, '.', '_' or '-' (at most 64)"
                )
            if token in tokens:
                raise ValueError(f"{ENV_PREFIX}AGENT_TOKENS: two hosts share one token")
            tokens[token] = name
        return tokens

    def webhook_allow_list(self) -> list[str]:
        """The allowed callback hosts (`host` or `host:port`), lower-cased."""
        return [h.strip().lower() for h in self.webhook_allow.split(",") if h.strip()]

    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def check_extensions_dir(self) -> None:
        """ValueError when the extensions dir overlaps the data dir (uploads must stay unnamable)."""
        if self.extensions_dir is None:
            return
        ext, data = self.extensions_dir.resolve(), self.data_dir.resolve()
        if ext == data or ext.is_relative_to(data) or data.is_relative_to(ext):
            raise ValueError(
                f"{ENV_PREFIX}EXTENSIONS_DIR {ext} overlaps the data dir {data}: uploaded files "
                "must never be loadable as native code; use a separate directory"
            )

    def extension_file(self, name: str) -> Path:
        """The file `name` inside `extensions_dir`, symlinks and `..` resolved.

        ForbiddenError (403) when no directory is configured or the path leaves it;
        ValidationError (422) when no such regular file exists inside it.
        """
        from app.errors import ForbiddenError, ValidationError

        if self.extensions_dir is None:
            raise ForbiddenError(
                "Extension libraries and GPU configs are disabled: the administrator has not "
                f"set {ENV_PREFIX}EXTENSIONS_DIR",
                code="extensions_disabled",
            )
        self.check_extensions_dir()
        root = self.extensions_dir.resolve()
        if not name or "\x00" in name:
            raise ValidationError(
                "An extension file name must be non-empty text", code="invalid_extension"
            )
        try:
            path = (root / name).resolve()
            inside = path.is_relative_to(root) and path != root
            exists = inside and path.is_file()
        except (OSError, ValueError):
            inside = exists = False
        if not inside:
            raise ForbiddenError(
                f"{name!r} is outside the extensions directory; name a file inside it",
                code="extension_outside_dir",
                details={"name": name},
            )
        if not exists:
            raise ValidationError(
                f"No file {name!r} in the extensions directory",
                code="extension_not_found",
                details={"name": name},
            )
        return path


def _without_password(url: str) -> str:
    """`url` with its password (if any) shown as ***, for help and logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{location}"


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment (`OVBENCH_*`), with explicit overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
