"""Fleet mode at scale on one machine: simulated agents and short jobs through the real API,
PostgreSQL and RabbitMQ.

Starts PostgreSQL 15 and RabbitMQ (tests/servers.py, 127.0.0.1, temporary directories), one
`ovbench serve` in fleet mode (or `--replicas N` sharing one database and one data dir) with
the production timings (heartbeat timeout 10 s, sweeps every 1 s), and `--agents` (100)
`ovbench agent` processes with OVBENCH_AGENT_SIMULATE=true (a job sleeps 1 ms per iteration,
no OpenVINO, no run process), each its own host name (sim-000...), cache dir and run lock.
Once GET /hosts shows every agent idle, `--submitters` client threads submit `--jobs` (1,000)
jobs of `--niter` (20) iterations as fast as the API takes them, while one client polls
GET /jobs/{id} of random jobs and GET /hosts; the agents' heartbeats (one per agent per
second) and their claim, progress and finish calls are load too.

Prints: agent start-up time and memory, the idle cost of the heartbeats, wall time, jobs
dispatched per second (jobs started / span of their `started_at`), submit-to-start median and
p99 (`started_at - created_at` from the API's JSON), client-side API latency per request kind,
the most PostgreSQL connections the database had (pg_stat_activity, sampled every 0.5 s),
the rows written and connections opened (PostgreSQL's statistics), and the checks: every job
succeeded, was claimed once (the API logs one "running on host" line per claim) and reported
once (one "succeeded" line in the agents' logs), no two jobs of one host overlap (stored start
and end times), and the broker's queues end empty; also how many jobs were routed to a host
whose previous job had not finished (they waited behind it).

Every server and agent is stopped at the end, also on an error or Ctrl-C; each phase has a
deadline. Traffic stays on 127.0.0.1. 100 agents take about 8 GiB and 70-110 s to start on
2 cores; the whole run, 3-4 minutes (docs/fleet.md has the figures).

    .venv/bin/python bench/fleet_sim.py [--agents 100] [--jobs 1000] [--replicas 1]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.factories import write_tiny_model
from tests.fleet.conftest import AgentProcess, Api, Fleet
from tests.servers import (
    PostgresServer,
    RabbitMQServer,
    postgres_server,
    process_tree,
    rabbitmq_server,
)

# Production timings (app/settings.py defaults), not the tests' short ones.
API_TIMINGS = {
    "OVBENCH_HEARTBEAT_TIMEOUT_S": "10",
    "OVBENCH_SWEEP_INTERVAL_S": "1",
    "OVBENCH_HOST_START_DEADLINE_S": "120",
    "OVBENCH_PUBLISH_GRACE_S": "2",
    "OVBENCH_REPUBLISH_AFTER_S": "15",
}
SIMULATE = {"OVBENCH_AGENT_SIMULATE": "true"}
AGENT_START_DEADLINE_S = 300.0
HOSTS_IDLE_DEADLINE_S = 60.0
MIN_AVAILABLE_BYTES = 2 * 1024**3  # stop starting agents below this much free memory
IDLE_WINDOW_S = 5.0
SAMPLE_INTERVAL_S = 0.5
POLL_PAUSE_S = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Interrupted(Exception):
    """SIGTERM: unwind like Ctrl-C so that everything started is stopped."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"signal {signum}")


# ------------------------------------------------------------------ process accounting
def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            # utime, stime, and cutime, cstime: the children it reaped (PostgreSQL's backends)
            total += sum(int(f) for f in fields[11:15])
    return total / CLK_TCK


def _rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _mem_available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _groups(fleet: Fleet) -> dict[str, list[int]]:
    """Live pids of each part of the system."""
    return {
        "API": process_tree([a.process.pid for a in fleet.apis if a.process is not None]),
        "PostgreSQL": fleet.postgres.pids(),
        "RabbitMQ": fleet.rabbitmq.pids(),
        "agents": process_tree([a.process.pid for a in fleet.agents if a.process is not None]),
    }


def _cpu_snapshot(fleet: Fleet) -> dict[str, float]:
    return {name: _cpu_s(pids) for name, pids in _groups(fleet).items()}


def _cores(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    return {name: (after[name] - before[name]) / wall_s for name in before}


def _cpu_line(cores: dict[str, float]) -> str:
    parts = [f"{name} {used:.2f}" for name, used in cores.items()]
    return "CPU cores used: " + ", ".join(parts) + f" (of {os.cpu_count()})"


# ------------------------------------------------------------------------ measurements
def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Latencies:
    """Client-side request latencies (ms) and non-2xx answers, per request kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, Counter[str]] = defaultdict(Counter)

    def timed(self, kind: str, client: httpx.Client, method: str, url: str, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            response = client.request(method, url, **kw)
        except httpx.TransportError as exc:
            with self._lock:
                self.errors[kind][type(exc).__name__] += 1
            return None
        took_ms = (time.perf_counter() - started) * 1000
        with self._lock:
            self.ms[kind].append(took_ms)
            if response.status_code >= 300:
                self.errors[kind][str(response.status_code)] += 1
        return response

    def lines(self) -> list[str]:
        out = []
        for kind, values in sorted(self.ms.items()):
            errors = ", ".join(f"{k}: {n}" for k, n in sorted(self.errors[kind].items()))
            out.append(
                f"  {kind:<15} n={len(values):>5}  p50 {_pct(values, 50):7.1f} ms  "
                f"p99 {_pct(values, 99):7.1f} ms  max {max(values):7.1f} ms"
                f"  non-2xx/transport errors: {errors or 'none'}"
            )
        return out


class PgConnections(threading.Thread):
    """Samples `count(*)` of pg_stat_activity for the fleet's database every 0.5 s."""

    def __init__(self, postgres: PostgresServer, database: str) -> None:
        super().__init__(name="pg-sampler", daemon=True)
        self.postgres = postgres
        self.database = database
        self.samples: list[int] = []
        self.stop = threading.Event()

    def _count(self, conn: Any) -> int:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
        ).fetchone()
        return int(row[0]) if row else 0

    def count(self) -> int:
        with self.postgres.connect() as conn:  # to the `postgres` database: not counted
            return self._count(conn)

    def run(self) -> None:
        with self.postgres.connect() as conn:
            while not self.stop.wait(SAMPLE_INTERVAL_S):
                self.samples.append(self._count(conn))


def _pg_writes(pg: PostgresServer, database: str) -> dict[str, int]:
    """Cumulative row writes to `jobs` and `hosts`, and commits, from PostgreSQL's statistics
    (each backend reports them at most once a second: a snapshot lags by about that)."""
    with pg.connect(database) as conn:
        counters = {"commits": 0}
        for table, inserted, updated in conn.execute(
            "SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_user_tables "
            "WHERE relname IN ('jobs', 'hosts')"
        ):
            counters[f"{table} inserts"], counters[f"{table} updates"] = inserted, updated
        row = conn.execute(
            "SELECT xact_commit, sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        counters["commits"], counters["sessions"] = (int(row[0]), int(row[1])) if row else (0, 0)
    return counters


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after.get(key, 0) - before.get(key, 0) for key in after}


# ------------------------------------------------------------------------------ phases
def start_agents(fleet: Fleet, names: list[str], parallel: int) -> tuple[float, str]:
    """Start one agent per name, at most `parallel` booting at once; (seconds, note)."""
    started = time.monotonic()
    deadline = started + AGENT_START_DEADLINE_S
    pending, booting = list(names), list[AgentProcess]()
    note = ""
    while pending or booting:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(fleet.agents) - len(booting)} of {len(names)} agents ready after "
                f"{AGENT_START_DEADLINE_S:g} s"
            )
        while pending and len(booting) < parallel:
            if _mem_available_bytes() < MIN_AVAILABLE_BYTES:
                note = (
                    f"stopped at {len(fleet.agents)} agents: less than "
                    f"{MIN_AVAILABLE_BYTES / 1024**3:g} GiB of memory left"
                )
                pending = []
                break
            name = pending.pop(0)
            api = fleet.apis[len(fleet.agents) % len(fleet.apis)]
            agent = AgentProcess(fleet, name, api, SIMULATE)
            fleet.agents.append(agent)
            booting.append(agent.start(wait=False))
        for agent in list(booting):
            if not agent.alive():
                raise RuntimeError(f"agent {agent.name} exited:\n{agent.log()[-3000:]}")
            if " ready." in agent.log():
                booting.remove(agent)
        time.sleep(0.2)
    return time.monotonic() - started, note


def wait_hosts_idle(api: Api, names: list[str]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < HOSTS_IDLE_DEADLINE_S:
        hosts = api.hosts()
        if all(hosts.get(n, {}).get("state") == "idle" for n in names):
            return time.monotonic() - started
        time.sleep(0.5)
    states = Counter(api.hosts().get(n, {}).get("state", "missing") for n in names)
    raise TimeoutError(f"hosts not all idle after {HOSTS_IDLE_DEADLINE_S:g} s: {dict(states)}")


def run_load(
    fleet: Fleet, model_id: str, args: argparse.Namespace, latencies: Latencies
) -> tuple[list[str], float, float]:
    """Submit the jobs and poll until every one has finished; (ids, submit s, total s)."""
    headers = dict(fleet.apis[0].client.headers)
    ids: list[str] = []
    ids_lock = threading.Lock()
    counter = itertools.count()
    stop = threading.Event()
    deadline = time.monotonic() + args.run_timeout_s
    body = {"model_id": model_id, "device": "CPU", "niter": args.niter}

    def submitter(index: int) -> None:
        api = fleet.apis[index % len(fleet.apis)]
        with httpx.Client(base_url=api.url, headers=headers, timeout=60) as client:
            while next(counter) < args.jobs:
                while time.monotonic() < deadline and not stop.is_set():
                    response = latencies.timed("POST /jobs", client, "POST", "/jobs", json=body)
                    if response is not None and response.status_code == 202:
                        with ids_lock:
                            ids.append(response.json()["id"])
                        break
                    time.sleep(0.1)  # refused (queue full, no live host): try again

    def poller() -> None:
        api = fleet.apis[0]
        with httpx.Client(base_url=api.url, headers=headers, timeout=60) as client:
            for turn in itertools.count():
                if stop.wait(POLL_PAUSE_S):
                    return
                if turn % 2 == 0:
                    latencies.timed("GET /hosts", client, "GET", "/hosts")
                else:
                    with ids_lock:
                        job_id = random.choice(ids) if ids else None
                    if job_id is not None:
                        latencies.timed("GET /jobs/{id}", client, "GET", f"/jobs/{job_id}")

    started = time.monotonic()
    submitters = [
        threading.Thread(target=submitter, args=(i,), name=f"submit-{i}")
        for i in range(args.submitters)
    ]
    polling = threading.Thread(target=poller, name="poller", daemon=True)
    polling.start()
    try:
        for thread in submitters:
            thread.start()
        for thread in submitters:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        submit_s = time.monotonic() - started
        if len(ids) < args.jobs:
            raise TimeoutError(f"only {len(ids)} of {args.jobs} jobs accepted in time")
        database = fleet.database_url.rsplit("/", 1)[1]
        with fleet.postgres.connect(database) as conn:
            while True:
                row = conn.execute(
                    "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
                ).fetchone()
                if row is not None and row[0] == 0:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{row[0] if row else '?'} jobs unfinished at the deadline")
                time.sleep(0.1)
        return ids, submit_s, time.monotonic() - started
    finally:
        stop.set()
        polling.join(timeout=10)


def check_jobs(fleet: Fleet, jobs: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """The report's check lines, and whether every check passed."""
    lines, ok = [], True
    statuses = Counter(j["status"] for j in jobs)
    ok &= statuses == Counter({"succeeded": len(jobs)})
    lines.append(f"  statuses: {dict(statuses)}")

    ids = {j["id"] for j in jobs}
    claims: Counter[str] = Counter()
    for api in fleet.apis:
        claims.update(re.findall(r"job (\w+) running on host ", api.log()))
    reported: Counter[str] = Counter()
    dropped = 0
    for agent in fleet.agents:
        log = agent.log()
        reported.update(re.findall(r"job (\w+): succeeded", log))
        dropped += len(re.findall(r"job \w+: not run", log))
    once = all(claims[i] == 1 for i in ids) and all(reported[i] == 1 for i in ids)
    ok &= once and set(claims) <= ids
    lines.append(
        f"  claimed once (API log): {sum(claims[i] == 1 for i in ids)}/{len(ids)}; reported "
        f"once (agent logs): {sum(reported[i] == 1 for i in ids)}/{len(ids)}; duplicate "
        f"deliveries dropped by a failed claim ('not run'): {dropped}"
    )

    per_host: dict[str, list[tuple[datetime, datetime, datetime]]] = defaultdict(list)
    missing_times = 0
    for j in jobs:
        if j["started_at"] is None or j["finished_at"] is None:
            missing_times += 1
            continue
        start, end, created = (
            datetime.fromisoformat(j[k]) for k in ("started_at", "finished_at", "created_at")
        )
        per_host[j["host"]].append((start, end, created))
    overlaps = behind = 0
    for runs in per_host.values():
        runs.sort()
        overlaps += sum(1 for a, b in itertools.pairwise(runs) if a[1] > b[0])
        # Submitted while the host's previous job had not finished: it waited behind it.
        behind += sum(1 for a, b in itertools.pairwise(runs) if b[2] < a[1])
    ok &= overlaps == 0 and missing_times == 0
    counts = sorted(len(r) for r in per_host.values())
    lines.append(
        f"  overlapping runs on one host (finished_at > next started_at): {overlaps}; jobs "
        f"without start/end times: {missing_times}"
    )
    lines.append(
        f"  hosts used: {len(per_host)} of {len(fleet.agents)}; jobs per host min {counts[0]}, "
        f"median {statistics.median(counts):g}, max {counts[-1]}; jobs routed to a host whose "
        f"previous job was still queued or running: {behind}"
    )
    listed = fleet.rabbitmq.ctl("list_queues", "--quiet", "name", "messages")
    left = sum(
        int(parts[1])
        for parts in (line.split() for line in listed.stdout.splitlines())
        if len(parts) == 2 and parts[1].isdigit()
    )
    ok &= listed.returncode == 0 and left == 0
    lines.append(f"  messages left in RabbitMQ queues: {left}")
    return lines, ok


def report_timing(jobs: list[dict[str, Any]]) -> list[str]:
    created = [datetime.fromisoformat(j["created_at"]) for j in jobs]
    started = sorted(datetime.fromisoformat(j["started_at"]) for j in jobs)
    finished = [datetime.fromisoformat(j["finished_at"]) for j in jobs]
    waits_ms = [
        (datetime.fromisoformat(j["started_at"]) - c).total_seconds() * 1000
        for j, c in zip(jobs, created, strict=True)
    ]
    runs_ms = [
        (f - datetime.fromisoformat(j["started_at"])).total_seconds() * 1000
        for j, f in zip(jobs, finished, strict=True)
    ]
    start_span_s = (started[-1] - started[0]).total_seconds()
    submit_span_s = (max(created) - min(created)).total_seconds()
    whole_s = (max(finished) - min(created)).total_seconds()
    return [
        f"  submissions accepted: {len(jobs) / submit_span_s:.1f} jobs/s "
        f"({len(jobs)} over {submit_span_s:.2f} s of created_at)",
        f"  dispatched (started): {(len(jobs) - 1) / start_span_s:.1f} jobs/s "
        f"(n-1 over the span of started_at, {start_span_s:.2f} s)",
        f"  completed: {len(jobs) / whole_s:.1f} jobs/s (first created_at to last "
        f"finished_at, {whole_s:.2f} s)",
        f"  submit-to-start (started_at - created_at): median {statistics.median(waits_ms):.0f}"
        f" ms, p99 {_pct(waits_ms, 99):.0f} ms, min {min(waits_ms):.0f} ms, "
        f"max {max(waits_ms):.0f} ms",
        f"  claim-to-finish per job (started_at to finished_at; {jobs[0]['params']['niter']}"
        f" ms of simulated run): median {statistics.median(runs_ms):.0f} ms, "
        f"p99 {_pct(runs_ms, 99):.0f} ms",
    ]


# -------------------------------------------------------------------------------- main
def simulate(pg: PostgresServer, mq: RabbitMQServer, base: Path, args: argparse.Namespace) -> bool:
    database = pg.create_database()
    fleet = Fleet(base, pg.url(database), mq.url, mq, pg, "/")
    names = [f"sim-{i:03d}" for i in range(args.agents)]
    for name in names:
        fleet.tokens[name] = secrets.token_hex(16)
    try:
        wall = time.monotonic()
        for _ in range(args.replicas):
            fleet.start_api(extra_env=API_TIMINGS)
        replicas = "one API" if args.replicas == 1 else f"{args.replicas} API replicas"
        print(
            f"PostgreSQL 15 (max_connections {_show(pg, 'max_connections')}), RabbitMQ, "
            f"{replicas} (one database, one data dir)"
        )
        model_id = fleet.apis[0].upload_model(write_tiny_model(base / "model"))
        mem_before = _mem_available_bytes()
        boot_s, note = start_agents(fleet, names, args.start_parallel)
        names = [a.name for a in fleet.agents]
        idle_s = wait_hosts_idle(fleet.apis[0], names)
        agent_pids = [a.process.pid for a in fleet.agents if a.process is not None]
        rss = [_rss_bytes(process_tree([pid])) for pid in agent_pids]
        print(
            f"{len(names)} agents ready in {boot_s:.1f} s ({args.start_parallel} booting at "
            f"once), all idle in GET /hosts {idle_s:.1f} s later{'; ' + note if note else ''}"
        )
        print(
            f"agent memory: RSS median {statistics.median(rss) / 1024**2:.0f} MiB, total "
            f"{sum(rss) / 1024**3:.2f} GiB; MemAvailable fell by "
            f"{(mem_before - _mem_available_bytes()) / 1024**3:.2f} GiB; RabbitMQ RSS "
            f"{_rss_bytes(mq.pids()) / 1024**2:.0f} MiB with {_broker_connections(mq)} "
            f"connections, PostgreSQL RSS {_rss_bytes(pg.pids()) / 1024**2:.0f} MiB"
        )

        sampler = PgConnections(pg, database)
        writes0, cpu0, t0 = _pg_writes(pg, database), _cpu_snapshot(fleet), time.monotonic()
        time.sleep(IDLE_WINDOW_S)
        idle_s = time.monotonic() - t0
        idle = _cores(cpu0, _cpu_snapshot(fleet), idle_s)
        idle_writes = _delta(writes0, _pg_writes(pg, database))
        print(
            f"idle {IDLE_WINDOW_S:g} s ({len(names)} agents heartbeating every 1 s): "
            f"{_cpu_line(idle)}; API {idle['API'] * 1000 / len(names):.1f} CPU-ms per "
            f"heartbeat; PostgreSQL: {idle_writes.get('hosts updates', 0) / idle_s:.0f} host "
            f"updates/s, {idle_writes['commits'] / idle_s:.0f} commits/s, "
            f"{sampler.count()} connections open, {idle_writes['sessions'] - 1} opened"
        )

        latencies = Latencies()
        writes0, tw0 = _pg_writes(pg, database), time.monotonic()
        sampler.start()
        cpu0, t0 = _cpu_snapshot(fleet), time.monotonic()
        try:
            ids, submit_s, run_s = run_load(fleet, model_id, args, latencies)
        finally:
            sampler.stop.set()
            sampler.join(timeout=5)
        run_wall_s = time.monotonic() - t0
        busy = _cores(cpu0, _cpu_snapshot(fleet), run_wall_s)
        time.sleep(1.5)  # every backend has reported its statistics
        run_writes = _delta(writes0, _pg_writes(pg, database))
        writes_s = time.monotonic() - tw0
        per_job_ms = (busy["API"] - idle["API"]) * run_wall_s * 1000 / args.jobs
        print(
            f"\nrun: {args.jobs} jobs of niter {args.niter} ({args.niter} ms simulated each) "
            f"from {args.submitters} submitting threads: all accepted in {submit_s:.1f} s, all "
            f"finished {run_s:.1f} s after the first submission"
        )
        print(
            f"  {_cpu_line(busy)}; API {per_job_ms:.0f} CPU-ms per job beyond the heartbeats "
            "(submit, publish, claim, progress, finish, and the polling client's share)"
        )
        client = fleet.apis[0].client
        jobs = [client.get(f"/jobs/{job_id}").json() for job_id in ids]
        done = [j for j in jobs if j.get("started_at") and j.get("finished_at")]
        if done:
            for line in report_timing(done):
                print(line)
        print(
            f"  PostgreSQL over the run's {writes_s:.0f} s: jobs "
            f"{run_writes.get('jobs inserts', 0)} inserts, {run_writes.get('jobs updates', 0)} "
            f"updates ({run_writes.get('jobs updates', 0) / args.jobs:.1f} per job); hosts "
            f"{run_writes.get('hosts updates', 0)} updates (heartbeats at 1/s/agent: about "
            f"{len(names) * writes_s:.0f}, plus one at each claim and finish); "
            f"{run_writes['commits']} commits ({run_writes['commits'] / writes_s:.0f}/s); "
            f"{run_writes['sessions'] - 1} connections opened"
        )
        print("API latency, client side, during the run (plus the agents' own calls):")
        for line in latencies.lines():
            print(line)
        print(
            f"PostgreSQL connections to the database: max {max(sampler.samples, default=0)}, "
            f"median {statistics.median(sampler.samples or [0]):g} over "
            f"{len(sampler.samples)} samples ({args.replicas} replica(s))"
        )
        print("checks:")
        lines, ok = check_jobs(fleet, jobs)
        for line in lines:
            print(line)
        print(f"{'PASS' if ok else 'FAIL'}: every job ran exactly once, none overlapped on a host")
        print(f"total wall time (APIs up to all checked): {time.monotonic() - wall:.1f} s")
        return ok
    finally:
        stopped = time.monotonic()
        _stop_all(fleet)
        print(
            f"stopped {len(fleet.agents)} agents and the API in {time.monotonic() - stopped:.1f} s"
        )


def _broker_connections(mq: RabbitMQServer) -> str:
    listed = mq.ctl("list_connections", "--quiet", "--no-table-headers", "name")
    if listed.returncode != 0:
        return "?"
    return str(sum(1 for line in listed.stdout.splitlines() if line.strip()))


def _show(pg: PostgresServer, setting: str) -> str:
    with pg.connect() as conn:
        row = conn.execute(f"SHOW {setting}").fetchone()
    return str(row[0]) if row else "?"


def _stop_all(fleet: Fleet) -> None:
    """SIGTERM every agent at once (not one by one: each waits for its warm shutdown), then the
    APIs; whatever is left after the grace gets SIGKILL (Fleet.close)."""
    for agent in fleet.agents:
        if agent.alive():
            agent.signal(signal.SIGTERM)
    grace = time.monotonic() + 40
    for agent in fleet.agents:
        if agent.process is not None:
            with contextlib.suppress(Exception):
                agent.process.wait(timeout=max(0.1, grace - time.monotonic()))
    fleet.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--niter", type=int, default=20, help="iterations (= ms) per job")
    parser.add_argument("--replicas", type=int, default=1, help="API replicas")
    parser.add_argument("--submitters", type=int, default=4, help="submitting threads")
    parser.add_argument("--start-parallel", type=int, default=8, help="agents booting at once")
    parser.add_argument("--run-timeout-s", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    base = Path(tempfile.mkdtemp(prefix="ovbench-fleet-sim-"))
    ok = False
    try:
        with postgres_server() as pg, rabbitmq_server() as mq:
            ok = simulate(pg, mq, base, args)
    except (KeyboardInterrupt, Interrupted):
        print("interrupted: agents, API and servers stopped", file=sys.stderr)
        return 130
    finally:
        if ok and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"logs kept in {base}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
