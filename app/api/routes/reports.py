"""`GET /jobs/{job_id}/report`: a job's result as a file (benchmark_app's reports, a CSV row,
the result JSON)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import StoreDep, error_responses
from app.engine.report_formats import ReportLayout, ReportType
from app.services.reports import ReportFormat, job_report

router = APIRouter(prefix="/jobs", tags=["jobs"])

REPORT_DESCRIPTION = """The job's result as a file to save (`Content-Disposition: attachment`).

- `format=json`: the result JSON (`JobRead.result`), numbers at full precision.
- `format=csv`: one header and one row, units in the column names (`throughput_fps`,
  `latency_median_ms`, `latency_p99_ms`, `compile_ms` ...), numbers at full precision,
  empty cells where the result has nothing; the same columns as `GET /jobs?format=csv`
  without its `id`, `status` and `created_at`.
- `format=benchmark_app`: the file benchmark_app's `-report_type` writes, so that scrapers
  written for it read this job unchanged: same file name, section titles, field names, `;`
  separator and value formatting (times with 2 decimals, counters with 3, strings in JSON).
  `layout` is benchmark_app's `-json_stats`: `csv` (default) or `json`. `report_type` picks
  the file: absent or `no_counters`, the statistics report (`benchmark_report.csv|json`;
  benchmark_app writes the same one for every report type); `average_counters` or
  `detailed_counters`, the per-layer counters file (`benchmark_<report_type>_report.csv|json`),
  which needs a job run with `perf_counters` (409 `job_has_no_perf_counters` otherwise).
  As benchmark_app, the detailed report has one block per infer request (each request's
  last inference) and the average one the mean over them; a job stored before ovbench kept
  each request's counters has their average only, which its detailed report gives as one
  block. "Command line parameters" lists the benchmark_app
  command equivalent to the job (`-m <model file as uploaded> -d -api`, its limits,
  `-nireq` for async, the other options it was given that benchmark_app takes,
  `-report_type`); `topology` is the model's name.

A job cancelled while it ran keeps the figures of the part that ran (the csv row's
`result_status` says `cancelled`). 404 for an unknown job; 409 `job_has_no_result` for a job
without a result (queued, running, failed, or cancelled before it had one); 422 for
`report_type` or `layout` without `format=benchmark_app`."""

_FILE_CONTENT: dict[str, Any] = {
    "text/csv": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object"}},
}


@router.get(
    "/{job_id}/report",
    response_class=Response,
    responses={
        200: {"description": "The report file", "content": _FILE_CONTENT},
        **error_responses(404, 409, 422),
    },
    summary="A job's result as a file: benchmark_app's report, a CSV row, or the result JSON",
    description=REPORT_DESCRIPTION,
)
async def read_job_report(
    job_id: str,
    store: StoreDep,
    report_format: Annotated[
        ReportFormat,
        Query(alias="format", description="json, csv (one flat row) or benchmark_app"),
    ] = "json",
    report_type: Annotated[
        ReportType | None,
        Query(description="benchmark_app's -report_type (format=benchmark_app only)"),
    ] = None,
    layout: Annotated[
        ReportLayout | None,
        Query(description="csv, or json as with benchmark_app's -json_stats (default csv)"),
    ] = None,
) -> Response:
    report = await run_in_threadpool(job_report, store, job_id, report_format, report_type, layout)
    return Response(
        report.text,
        media_type=report.media_type,
        headers={"Content-Disposition": f'attachment; filename="{report.filename}"'},
    )
