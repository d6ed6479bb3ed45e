"""A sweep of MobileNetV2 on the CPU through a real service: the table, the best point, what
the sweep machinery costs, and `search` against `grid`.

The grid: nireq 1,2,4 x nstreams 1,2 x batch 1,2 (12 points), async, `-t 5` each.
1. `grid`, no constraint: every point, the best by throughput.
2. `grid` with `latency_p99_ms` at the median p99 of sweep 1 (so it excludes part of the
   grid): the best point under it.
3. `search` with the same constraint: the points it ran and skipped (with the reasons), its
   best point against sweep 2's, and its wall time.
Per sweep it prints the wall time (submission to end) against the points' measured time,
with the setup (reading, compiling, first inference) and the rest of each job (the host
guard's sample before the run, the outputs check, storing the result) apart, and the sweep
machinery's own share: the wall time not spent inside any point's job (queueing, claiming,
deciding the next point), as a share of the measured time (target under 10%).

    .venv/bin/python bench/sweep_mobilenet.py [--duration-s 5] [--rounds 1] [--guard-sample-s S]

`--rounds N` repeats sweeps 2 and 3 N times, alternating which runs first (grid, search,
search, grid, ...), and prints the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from _service import Service, sample_model

from app.engine.sweep import PointFigures, PointState, SweepConstraints, decide
from app.engine.sweep_summary import summarize

GRID = {"nireq": [1, 2, 4], "nstreams": [1, 2], "batch": [1, 2]}


def _run_sweep(svc: Service, body: dict[str, Any]) -> dict[str, Any]:
    response = svc.client.post("/sweeps", json=body)
    if response.status_code != 202:
        raise RuntimeError(f"POST /sweeps gave {response.status_code}: {response.text}")
    sweep = response.json()
    print(
        f"  submitted {sweep['id']}: {sweep['estimate']['points']} points, estimated "
        f"{sweep['estimate']['measured_s']:.0f} s measured ({sweep['estimate']['note']})"
    )
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        sweep = svc.client.get(f"/sweeps/{sweep['id']}").json()
        if sweep["status"] in ("succeeded", "failed", "cancelled"):
            return dict(sweep)
        time.sleep(1.0)
    raise TimeoutError("sweep not finished in an hour")


def _table(sweep: dict[str, Any]) -> None:
    print(
        f"  {'#':>2} {'point':<28} {'status':<9} {'FPS':>8} {'median ms':>10} {'p99 ms':>9} "
        f"{'verdict':<9} {'meets':<5} {'pareto':<6} skip reason"
    )
    for p in sweep["points"]:
        fps = f"{p['throughput_fps']:.1f}" if p["throughput_fps"] is not None else "-"
        med = f"{p['latency_median_ms']:.3f}" if p["latency_median_ms"] is not None else "-"
        p99 = f"{p['latency_p99_ms']:.3f}" if p["latency_p99_ms"] is not None else "-"
        meets = {True: "yes", False: "no", None: "-"}[p["meets_constraints"]]
        print(
            f"  {p['index']:>2} {p['label']:<28} {p['status']:<9} {fps:>8} {med:>10} {p99:>9} "
            f"{(p['verdict'] or '-'):<9} {meets:<5} {'*' if p['pareto'] else '':<6} "
            f"{p['skip_reason'] or ''}"
        )
    print(f"  {sweep['summary']['message']}")
    for note in sweep["summary"]["notes"]:
        print(f"  note: {note}")


def _timing(sweep: dict[str, Any]) -> dict[str, float]:
    t = sweep["timing"]
    wall, jobs, measured, setup = t["wall_s"], t["jobs_s"], t["measured_s"], t["setup_s"]
    machinery = wall - jobs
    rest = jobs - measured - setup
    ran = sum(1 for p in sweep["points"] if p["status"] == "succeeded")
    print(
        f"  wall {wall:.1f} s for {ran} points: measured {measured:.1f} s, setup (read, "
        f"compile, first inference) {setup:.1f} s, rest of the jobs (host guard sample, outputs "
        f"check, storing) {rest:.1f} s, sweep machinery (outside any job) {machinery:.2f} s = "
        f"{machinery / measured * 100:.1f}% of measured (target < 10%); everything but the "
        f"measured loops and setup: {(wall - measured - setup) / measured * 100:.1f}% of measured"
    )
    return {"wall": wall, "machinery_pct": machinery / measured * 100, "ran": ran}


def _best(sweep: dict[str, Any]) -> int | None:
    best: int | None = sweep["summary"]["best"]
    return best


def _replay_search(grid_sweep: dict[str, Any], bound_ms: float) -> tuple[int, int | None]:
    """The search rules replayed on a grid sweep's own figures (no new runs): the points
    search would have run, and the best it would have found. Tells the rules' misses from
    the run-to-run noise between two sweeps."""
    constraints = SweepConstraints(latency_p99_ms=bound_ms)
    states = [PointState(p["index"], p["values"]) for p in grid_sweep["points"]]
    rows = {p["index"]: p for p in grid_sweep["points"]}
    while any(s.status == "pending" for s in states):
        decision = decide(states, "search", constraints, grid_sweep["min_gain"])
        for index, reason in decision.skip.items():
            states[index].status, states[index].skip_reason = "skipped", reason
        for index in decision.queue:
            row = rows[index]
            states[index].status = "succeeded"
            states[index].figures = PointFigures(
                throughput_fps=row["throughput_fps"],
                latency_median_ms=row["latency_median_ms"],
                latency_p90_ms=row["latency_p90_ms"],
                latency_p95_ms=row["latency_p95_ms"],
                latency_p99_ms=row["latency_p99_ms"],
                verdict=row["verdict"],
                measured_s=row["measured_s"],
                setup_s=row["setup_s"],
                nstreams=row["nstreams_used"],
                nireq=row["nireq_used"],
                batch_size=1,
            )
    ran = sum(1 for s in states if s.status == "succeeded")
    return ran, summarize(states, "throughput_fps", constraints).best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration-s", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--guard-sample-s",
        type=float,
        help="OVBENCH_GUARD__SAMPLE_S for the service (default: the service's, 1 s; 0: no host "
        "guard before each point)",
    )
    args = parser.parse_args()
    env = (
        {} if args.guard_sample_s is None else {"OVBENCH_GUARD__SAMPLE_S": str(args.guard_sample_s)}
    )
    with Service(env=env) as svc:
        model_id = svc.upload_model(sample_model("mobilenet_v2"))
        base = {"model_id": model_id, "api": "async", "duration_s": args.duration_s}
        print("sweep 1: grid, no constraint")
        free = _run_sweep(svc, {**base, "grid": GRID})
        _table(free)
        _timing(free)
        p99s = [p["latency_p99_ms"] for p in free["points"] if p["latency_p99_ms"] is not None]
        bound = round(statistics.median(p99s), 3)
        constrained = {**base, "grid": GRID, "constraints": {"latency_p99_ms": bound}}
        results: dict[str, list[dict[str, Any]]] = {"grid": [], "search": []}
        for round_ in range(args.rounds):
            order = ("grid", "search") if round_ % 2 == 0 else ("search", "grid")
            for strategy in order:
                print(f"sweep: {strategy}, latency_p99_ms <= {bound} (round {round_ + 1})")
                sweep = _run_sweep(svc, {**constrained, "strategy": strategy})
                _table(sweep)
                results[strategy].append({"sweep": sweep, **_timing(sweep)})
        print("summary")
        same = 0
        for grid_run, search_run in zip(results["grid"], results["search"], strict=True):
            g, s = grid_run["sweep"], search_run["sweep"]
            gb, sb = _best(g), _best(s)
            if gb == sb:
                same += 1
            g_fps = {p["index"]: p["throughput_fps"] for p in g["points"]}
            gap = (
                f"; grid measured search's best at {g_fps[sb]:.1f} FPS against its own best's "
                f"{g_fps[gb]:.1f} ({(g_fps[sb] / g_fps[gb] - 1) * 100:+.1f}%)"
                if gb is not None and sb is not None and gb != sb and g_fps.get(sb)
                else ""
            )
            print(
                f"  grid best #{gb}, search best #{sb}: {'same' if gb == sb else 'different'}"
                f"{gap}; points run: grid {grid_run['ran']}, search {search_run['ran']}; wall "
                f"grid {grid_run['wall']:.1f} s, search {search_run['wall']:.1f} s"
            )
        grids = [r["sweep"] for r in results["grid"]]
        for g in grids:
            ran, best = _replay_search(g, bound)
            print(
                f"  search replayed on grid sweep {g['id'][:8]}'s own figures: {ran} of "
                f"{len(g['points'])} points run, best #{best} (the grid's: #{_best(g)}): "
                f"{'same' if best == _best(g) else 'different'}"
            )
        if len(grids) > 1:
            bests = [_best(g) for g in grids]
            print(
                f"  the noise floor: the same grid, run {len(grids)} times, chose {bests} "
                f"({len(set(bests))} different best points)"
            )
        for strategy in ("grid", "search"):
            runs = results[strategy]
            print(
                f"  {strategy}: median points run {statistics.median(r['ran'] for r in runs):g} "
                f"of {len(runs[0]['sweep']['points'])}, median wall "
                f"{statistics.median(r['wall'] for r in runs):.1f} s, median machinery "
                f"{statistics.median(r['machinery_pct'] for r in runs):.2f}% of measured"
            )
        print(f"  same best point in {same} of {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
