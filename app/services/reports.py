"""What `GET /jobs/{id}/report` and `GET /jobs?format=csv` mean: a job's result as a file.

The conversion itself is the engine's (`engine.report_formats`, shared with `ovbench run
--report-type`); here: which job, whether it has a result (409 `job_has_no_result` when it
has none yet, or never will), whether it has the counters a report type needs (409
`job_has_no_perf_counters`), and the table of a page of jobs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import TypeAdapter

from app.engine import report_formats
from app.engine.report_formats import FLAT_COLUMNS, Cell, ReportLayout, ReportType
from app.engine.spec import BenchmarkResult
from app.errors import ConflictError, NotFoundError, ValidationError
from app.store import Store
from app.store.tables import JobRow

ReportFormat = Literal["json", "csv", "benchmark_app"]
# The list's own columns, before the result's.
JOB_COLUMNS = ("id", "status", "created_at")
TABLE_COLUMNS = (*JOB_COLUMNS, *FLAT_COLUMNS)
_TIMESTAMP = TypeAdapter(datetime)  # as the JSON views write it: 2026-01-02T03:04:05.678Z


@dataclass(frozen=True)
class Report:
    """A file to answer with: its name (Content-Disposition), media type and text."""

    filename: str
    media_type: str
    text: str


def _no_result(row: JobRow) -> ConflictError:
    job_id = row.id
    if row.status in ("queued", "running"):
        what = (
            f"Job {job_id} is {row.status}: it has no result yet. Poll GET /jobs/{job_id} until "
            "its status is succeeded, then ask for the report again."
        )
    elif row.status == "failed":
        what = (
            f"Job {job_id} failed ({row.error_code}: {row.error_message}), so it has no "
            f"result. Fix what the error says and submit it again (POST /jobs, or POST "
            f"/jobs/{job_id}/rerun)."
        )
    else:
        what = (
            f"Job {job_id} was cancelled before it had a result. Run it again "
            f"(POST /jobs/{job_id}/rerun)."
        )
    return ConflictError(
        what, code="job_has_no_result", details={"job_id": job_id, "status": row.status}
    )


def _result(row: JobRow) -> BenchmarkResult:
    if row.result is None:
        raise _no_result(row)
    return BenchmarkResult.model_validate(row.result)


def _counters_report(
    row: JobRow, result: BenchmarkResult, report_type: ReportType, layout: ReportLayout
) -> Report:
    if not result.perf_counters:
        reason = (
            "ran without perf_counters"
            if result.perf_counters is None
            else "ran with perf_counters, but the device reported no per-layer counters"
        )
        raise ConflictError(
            f"Job {row.id} {reason}: report_type={report_type} needs them. Submit the job "
            'again with "perf_counters": true (POST /jobs), or ask for report_type=no_counters.',
            code="job_has_no_perf_counters",
            details={"job_id": row.id, "report_type": report_type},
        )
    file = report_formats.counters_report(result, report_type, layout)
    return Report(file.name, file.media_type, file.text)


def _uploaded_model_name(store: Store, row: JobRow) -> str | None:
    """The model file's name as uploaded (`tiny_cnn.xml`; stored as `model.xml`)."""
    try:
        files = store.catalog.get_model(row.model_id).files
    except NotFoundError:
        return None
    return str(files[0].get("original_name") or files[0]["name"]) if files else None


def job_report(
    store: Store,
    job_id: str,
    report_format: ReportFormat,
    report_type: ReportType | None = None,
    layout: ReportLayout | None = None,
) -> Report:
    """The job's result as `report_format` (404 unknown job, 409 no result / no counters)."""
    if report_format != "benchmark_app" and (report_type is not None or layout is not None):
        raise ValidationError(
            "report_type and layout choose among benchmark_app's files: use them with "
            "format=benchmark_app",
            details={"format": report_format},
        )
    row = store.jobs.get(job_id)  # 404 job_not_found
    if report_format == "json":
        if row.result is None:
            raise _no_result(row)
        return Report(f"{job_id}.json", "application/json", json.dumps(row.result))
    result = _result(row)
    if report_format == "csv":
        text = report_formats.csv_table(FLAT_COLUMNS, [report_formats.flat_row(result)])
        return Report(f"{job_id}.csv", "text/csv", text)
    layout = layout or "csv"
    if report_type in report_formats.COUNTER_REPORT_TYPES:
        return _counters_report(row, result, report_type, layout)
    command_line = report_formats.equivalent_command_line(
        result, report_type or "no_counters", layout
    )
    uploaded = _uploaded_model_name(store, row)
    if uploaded is not None:  # -m as the client named the file, not as it is stored
        command_line = [(k, uploaded if k == "-m" else v) for k, v in command_line]
    file = report_formats.statistics_report(result, command_line, layout)
    return Report(file.name, file.media_type, file.text)


def jobs_table(store: Store, job_ids: Sequence[str]) -> str:
    """One CSV row per job, in the given order: the job's id, status and created_at, then
    its result's `FLAT_COLUMNS` (empty cells for a job without a result). A job deleted
    meanwhile is left out."""
    rows = {row.id: row for row in store.jobs.get_many(job_ids)}
    table: list[dict[str, Cell]] = []
    for row in (rows[job_id] for job_id in job_ids if job_id in rows):
        figures: dict[str, Cell] = dict.fromkeys(FLAT_COLUMNS)
        if row.result is not None:
            figures = report_formats.flat_row(BenchmarkResult.model_validate(row.result))
        created_at: str = _TIMESTAMP.dump_python(row.created_at, mode="json")
        table.append({"id": row.id, "status": row.status, "created_at": created_at, **figures})
    return report_formats.csv_table(TABLE_COLUMNS, table)
