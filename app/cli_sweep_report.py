"""`ovbench sweep`'s text: a point's line, the table, the best point and the timing, the
same for a sweep run here and one run by a server (`--server`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from app.engine.sweep_summary import PointRead, SweepSummary

_NOTE_WIDTH = 72


def _ms(value: float | None) -> str:
    """Latencies with four decimals, as `ovbench run` prints them: 0.0267, not 0.03."""
    return "-" if value is None else f"{value:.4f}"


def _fps(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def figures_line(
    throughput_fps: float | None,
    median_ms: float | None,
    p99_ms: float | None,
    verdict: str | None,
    broken: Sequence[str],
) -> str:
    """`812.3 FPS, median 1.2345 ms, p99 2.3456 ms, verdict stable; breaks ...`"""
    text = (
        f"{_fps(throughput_fps)} FPS, median {_ms(median_ms)} ms, "
        f"p99 {_ms(p99_ms)} ms, verdict {verdict or '-'}"
    )
    return text + (f"; breaks {'; '.join(broken)}" if broken else "")


def _shorten(text: str, width: int = _NOTE_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Sequence[PointRead], axes: Sequence[str]) -> list[str]:
    """The points as fixed-width lines: numbers right-aligned, text left-aligned."""
    header = ["#", *axes, "status", "throughput FPS", "median ms", "p99 ms", "verdict"]
    header += ["meets", "pareto", "note"]
    right = {0, *range(1, len(axes) + 1), len(axes) + 2, len(axes) + 3, len(axes) + 4}
    cells = [header]
    for row in rows:
        meets = {True: "yes", False: "no", None: "-"}[row.meets_constraints]
        note = row.error or row.skip_reason or "; ".join(row.violations)
        cells.append(
            [
                str(row.index),
                *(str(row.values[axis]) for axis in axes),
                row.status,
                _fps(row.throughput_fps),
                _ms(row.latency_median_ms),
                _ms(row.latency_p99_ms),
                row.verdict or "-",
                meets,
                "*" if row.pareto else "",
                _shorten(note),
            ]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return [
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in cells
    ]


def print_text(
    rows: Sequence[PointRead],
    axes: Sequence[str],
    summary: SweepSummary,
    timing_s: tuple[float, float, float],
    interrupted: bool,
) -> None:
    """The table, the best point (or the closest), the Pareto front, the notes and the
    timing: (wall, measured, setup) seconds."""
    for line in table(rows, axes):
        print(line)
    if summary.best is not None:
        print(f"[ INFO ] {summary.message}")
    elif summary.closest is not None:
        print(f"[ WARNING ] {summary.message}")
    elif not interrupted:  # interrupted: the points were cancelled, not failed
        print(f"[ ERROR ] {summary.message}", file=sys.stderr)
    if summary.pareto:
        front = ", ".join(f"#{index}" for index in summary.pareto)
        print(f"[ INFO ] Pareto front (throughput against {summary.pareto_metric}): {front}")
    for note in summary.notes:
        print(f"[ INFO ] {note}")
    wall_time_s, measured_s, setup_s = timing_s
    print(
        f"[ INFO ] Sweep wall time: {wall_time_s:.2f} s "
        f"(measured {measured_s:.2f} s, setup {setup_s:.2f} s)"
    )
