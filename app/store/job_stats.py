"""Job figures for /metrics: counts by status, run-time histogram, newest result per model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.store.tables import JobRow, ModelRow


@dataclass(frozen=True)
class LastResult:
    model_id: str
    model_name: str
    device: str
    api: str
    throughput_fps: float
    latency_median_ms: float | None


class JobStats:
    """Read-only aggregates over the jobs table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.session = sessions

    def count_by_status(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(JobRow.status, func.count()).group_by(JobRow.status)).all()
        return {status: count for status, count in rows}

    def run_durations(self, buckets: Sequence[float]) -> tuple[list[int], int, float]:
        """Cumulative counts per bucket upper bound, total count and sum of job run seconds."""
        with self.session() as s:
            count, total = s.execute(
                select(
                    func.count(JobRow.run_duration_s),
                    func.coalesce(func.sum(JobRow.run_duration_s), 0.0),
                )
            ).one()
            cumulative = [
                s.scalar(
                    select(func.count()).select_from(JobRow).where(JobRow.run_duration_s <= bound)
                )
                or 0
                for bound in buckets
            ]
        return cumulative, int(count or 0), float(total or 0.0)

    def last_results(self) -> list[LastResult]:
        """The newest succeeded job per (model, device, api)."""
        with self.session() as s:
            rows = s.execute(
                select(
                    JobRow.model_id,
                    ModelRow.name,
                    JobRow.device,
                    JobRow.api,
                    JobRow.throughput_fps,
                    JobRow.latency_median_ms,
                    JobRow.finished_at,
                )
                .join(ModelRow, ModelRow.id == JobRow.model_id)
                .where(JobRow.status == "succeeded", JobRow.throughput_fps.is_not(None))
                .order_by(JobRow.finished_at)
            ).all()
        latest: dict[tuple[str, str, str], LastResult] = {}
        for model_id, name, device, api, fps, latency, _finished in rows:
            latest[(model_id, device, api)] = LastResult(
                model_id, name, device, api, float(fps or 0.0), latency
            )
        return list(latest.values())
