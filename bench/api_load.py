"""Does HTTP traffic disturb measurements? API latency under load, and the job's throughput with and without it.

For each pair: a ResNet-50 async job (-nireq 2 -nstreams 2 -hint none, 10 s) runs once with
no request to the API (the script reads the job's end from the store's file) and once while
32 concurrent clients poll `GET /jobs/{id}` and `GET /jobs?limit=20` over keep-alive connections, each pausing 0.5 s
between requests (progress changes twice a second; `--interval-s 0` polls back to back, a
stress case no poller needs). The clients stand in for remote ones but share
the 2 cores with the benchmark, so they are a minimal HTTP/1.1 client on asyncio streams.
Pairs run in A B B A order (quiet first, then loaded first) so that a drift of the machine's
speed does not favour one side.

This shared 2-core machine's throughput varies by 10% and more from one 10 s run to the next,
more than the effect measured, so beside the throughput ratio the script accounts for the
CPU that polling costs: the API process's and the load generator's CPU time during the
loaded run, less the same during the quiet one, as a share of all cores over the run. That
is the measurement's loss if every CPU-second the polling takes comes out of the benchmark,
and it does not depend on the machine's noise. `steal` is the hypervisor's share of the run.
Prints per pair the two throughputs and the perturbation, the API's p50/p99 latency and
requests/s and the CPU accounting, then medians.
Targets: API p99 < 50 ms; median throughput perturbation < 3%.

`--sse`: beside each pair's quiet and polled runs, a third run of the same job while 32
clients follow it with server-sent events (`GET /jobs/{id}/events`) instead of polling, in
A B C / C B A order. It prints that run's throughput perturbation against the quiet run, the
API's CPU share of the host (and that share less the quiet run's: what the streams cost
beyond the API's own baseline), and the event lag: when the worker's progress commit happened
(this script watches the store's WAL file with inotify and reads the job's progress right
after each write: the commit's time within a fraction of a millisecond) to when each client
received the event carrying that progress. Targets: API CPU < 0.3% of the host, lag p99 <
100 ms.

    .venv/bin/python bench/api_load.py [--pairs 5] [--clients 32] [--duration-s 10] [--interval-s 0.5] [--sse]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import sqlite3
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _service import Service, async_job, sample_model

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of every thread of process `pid` so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that just ended
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS_PER_S


def _host_jiffies() -> tuple[int, int]:
    """(all, steal) jiffies of every CPU so far, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:9]]
    return sum(values), values[7]


class _CpuMeter:
    """CPU the API process and this load generator use between `start` and `stop`."""

    def __init__(self, api_pid: int) -> None:
        self.api_pid = api_pid

    def start(self) -> None:
        self._wall = time.perf_counter()
        self._api = _process_cpu_s(self.api_pid)
        self._client = _process_cpu_s(os.getpid())
        self._host = _host_jiffies()

    def stop(self) -> dict[str, float]:
        wall_s = time.perf_counter() - self._wall
        host_all, host_steal = _host_jiffies()
        return {
            "wall_s": wall_s,
            "api_cpu_s": _process_cpu_s(self.api_pid) - self._api,
            "client_cpu_s": _process_cpu_s(os.getpid()) - self._client,
            "steal": (host_steal - self._host[1]) / max(1, host_all - self._host[0]),
        }


def _percentile(sorted_values: list[float], percent: float) -> float:
    rank = max(1, -(-len(sorted_values) * percent // 100))
    return sorted_values[int(rank) - 1]


class _Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a client that costs the shared
    CPU far less per request than an HTTP library would, so that what is measured is the
    service, not the load generator."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def get(self, path: str) -> int:
        assert self.reader is not None and self.writer is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def _poller(
    connection: _Connection,
    job_id: str,
    stop: asyncio.Event,
    latencies_ms: list[float],
    interval_s: float,
) -> None:
    paths = [f"/jobs/{job_id}", "/jobs?limit=20"]
    turn = 0
    while not stop.is_set():
        started = time.perf_counter()
        status = await connection.get(paths[turn % 2])
        latencies_ms.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"GET {paths[turn % 2]} gave {status}")
        turn += 1
        if interval_s:
            await asyncio.sleep(interval_s)


async def _loaded_run(
    svc: Service, body: dict[str, Any], clients: int, interval_s: float, meter: _CpuMeter
) -> tuple[float, list[float], float, dict[str, float]]:
    # Clients and their connections are made before the job starts: only polling is timed.
    pool = [_Connection(svc.port) for _ in range(clients)]
    await asyncio.gather(*(connection.open() for connection in pool))
    await asyncio.gather(*(connection.get("/healthz") for connection in pool))
    job_id = svc.submit(body)
    latencies_ms: list[float] = []
    stop = asyncio.Event()
    while svc.client.get(f"/jobs/{job_id}").json()["status"] == "queued":
        await asyncio.sleep(0.05)
    started = time.perf_counter()
    meter.start()
    tasks = [
        asyncio.create_task(_poller(connection, job_id, stop, latencies_ms, interval_s))
        for connection in pool
    ]
    while True:
        job = await asyncio.to_thread(lambda: svc.client.get(f"/jobs/{job_id}").json())
        if job["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.5)
    cpu = meter.stop()
    stop.set()
    await asyncio.gather(*tasks)
    elapsed_s = time.perf_counter() - started
    await asyncio.gather(*(connection.close() for connection in pool))
    if job["status"] != "succeeded":
        raise RuntimeError(f"loaded job ended {job['status']}: {job.get('error')}")
    return (
        float(job["result"]["throughput_fps"]),
        sorted(latencies_ms),
        len(latencies_ms) / elapsed_s,
        cpu,
    )


IN_MODIFY = 0x2


class _CommitWatch:
    """When each progress value of a job was committed: a thread woken by inotify on every
    write to the store's WAL file reads the job's progress and notes the first time it saw
    each `progress_iterations` (time.monotonic)."""

    def __init__(self, data_dir: Path, job_id: str) -> None:
        self.db = data_dir / "ovbench.db"
        self.job_id = job_id
        self.committed_s: dict[int, float] = {}
        self._libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK)
        wal = str(self.db) + "-wal"
        if self._fd < 0 or self._libc.inotify_add_watch(self._fd, wal.encode(), IN_MODIFY) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {wal}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watch", daemon=True)

    def __enter__(self) -> _CommitWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._fd)

    def _run(self) -> None:
        import select

        connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        last: int | None = None
        try:
            while not self._stop.is_set():
                if not poller.poll(100):
                    continue
                try:
                    os.read(self._fd, 65536)
                except BlockingIOError:
                    continue
                # The WAL write comes before the wal-index update that makes the commit
                # visible: read again for up to 20 ms until the progress moves.
                deadline = time.monotonic() + 0.02
                while True:
                    now = time.monotonic()
                    row = connection.execute(
                        "SELECT progress_iterations FROM jobs WHERE id = ?", (self.job_id,)
                    ).fetchone()
                    iterations = None if row is None else int(row[0])
                    if iterations != last or now > deadline:
                        break
                    time.sleep(0.0005)
                if iterations is not None and iterations != last:
                    self.committed_s.setdefault(iterations, now)
                    last = iterations
        finally:
            connection.close()


async def _follow(
    port: int, job_id: str, arrivals: list[tuple[int, float]], ready: asyncio.Event
) -> str:
    """One SSE client of GET /jobs/{id}/events on asyncio streams: (iterations, arrival time)
    of every running event; the job's final status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if int(head.split(b" ", 2)[1]) != 200 or b"chunked" not in head.lower():
        raise RuntimeError(f"GET /jobs/{job_id}/events: {head!r}")
    ready.set()
    status = ""
    try:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            arrived = time.monotonic()
            if size == 0:
                return status
            for line in chunk.split(b"\n"):
                if line.startswith(b'data: {"id"'):
                    job = json.loads(line[6:])
                    status = job["status"]
                    if status == "running":
                        arrivals.append((job["progress"]["iterations"], arrived))
    finally:
        writer.close()


async def _sse_run(
    svc: Service, body: dict[str, Any], clients: int, meter: _CpuMeter
) -> tuple[float, list[float], dict[str, float]]:
    """The job followed by `clients` SSE streams: (throughput, lags in ms, CPU)."""
    job_id = svc.submit(body)
    arrivals: list[tuple[int, float]] = []
    with _CommitWatch(svc.data_dir, job_id) as watch:
        readies = [asyncio.Event() for _ in range(clients)]
        tasks = [asyncio.create_task(_follow(svc.port, job_id, arrivals, r)) for r in readies]
        await asyncio.gather(*(ready.wait() for ready in readies))
        while svc.client.get(f"/jobs/{job_id}").json()["status"] == "queued":
            await asyncio.sleep(0.05)
        meter.start()
        statuses = await asyncio.gather(*tasks)
        cpu = meter.stop()
    if set(statuses) != {"succeeded"}:
        raise RuntimeError(f"SSE job ended {statuses}")
    job = svc.client.get(f"/jobs/{job_id}").json()
    lags_ms = sorted(
        1000 * (arrived - watch.committed_s[iterations])
        for iterations, arrived in arrivals
        if iterations > 0 and iterations in watch.committed_s
    )
    return float(job["result"]["throughput_fps"]), lags_ms, cpu


def _store_status(svc: Service, job_id: str) -> str:
    """The job's status read from the store's file (no request to the API)."""
    with sqlite3.connect(f"file:{svc.data_dir / 'ovbench.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return str(row[0])


def _quiet_run(
    svc: Service, body: dict[str, Any], meter: _CpuMeter
) -> tuple[float, dict[str, float]]:
    """The job with no request to the API while it runs (its end is read from the store's
    file twice a second): the API's own baseline, and the throughput to compare with."""
    job_id = svc.submit(body)
    while _store_status(svc, job_id) == "queued":
        time.sleep(0.05)
    meter.start()
    while _store_status(svc, job_id) in ("queued", "running"):
        time.sleep(0.5)
    cpu = meter.stop()
    job = svc.client.get(f"/jobs/{job_id}").json()
    return float(job["result"]["throughput_fps"]), cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=10)
    parser.add_argument(
        "--interval-s",
        type=float,
        default=0.5,
        help=(
            "Each client's pause between requests (default 0.5: progress changes twice a "
            "second; 0 = back to back, a stress case no poller needs)"
        ),
    )
    parser.add_argument(
        "--api-nice", type=int, help="OVBENCH_API_NICE for the service (default: its setting)"
    )
    parser.add_argument(
        "--client-nice",
        type=int,
        default=0,
        help="nice for this load generator, which stands in for remote clients but shares the CPU",
    )
    parser.add_argument(
        "--sse",
        action="store_true",
        help="Also run the job followed by the clients as server-sent events (A B C / C B A)",
    )
    args = parser.parse_args()
    xml = sample_model("resnet50")
    cores = os.cpu_count() or 1
    print(
        f"{args.clients} clients, {args.interval_s:g} s between each client's requests, "
        f"load generator at nice {args.client_nice}, {cores} cores"
    )
    body = async_job(args.duration_s)
    perturbations, p50s, p99s, rates, costs = [], [], [], [], []
    poll_shares: list[float] = []
    sse_perturbations: list[float] = []
    sse_shares: list[float] = []
    sse_costs: list[float] = []  # the API's share with SSE less its share in the quiet run
    sse_lags_ms: list[float] = []
    sse_lines: list[str] = []
    env = {} if args.api_nice is None else {"OVBENCH_API_NICE": str(args.api_nice)}
    with Service(env=env) as svc:
        os.nice(args.client_nice)  # after starting the service: the service keeps its own priority
        body["model_id"] = svc.upload_model(xml)
        assert svc.proc is not None
        meter = _CpuMeter(svc.proc.pid)
        print(
            f"{'pair':>4} {'quiet fps':>10} {'loaded fps':>11} {'perturb':>8} "
            f"{'api p50 ms':>11} {'api p99 ms':>11} {'req/s':>6} "
            f"{'api cpu ms/s':>13} {'client cpu ms/s':>16} {'cpu cost':>9} {'steal q/l':>10}"
        )
        for pair in range(1, args.pairs + 1):
            loaded_first = pair % 2 == 0  # A B, B A, ...
            if args.sse and loaded_first:
                sse = asyncio.run(_sse_run(svc, body, args.clients, meter))
            if loaded_first:
                loaded, latencies, rate, loaded_cpu = asyncio.run(
                    _loaded_run(svc, body, args.clients, args.interval_s, meter)
                )
            quiet, quiet_cpu = _quiet_run(svc, body, meter)
            if not loaded_first:
                loaded, latencies, rate, loaded_cpu = asyncio.run(
                    _loaded_run(svc, body, args.clients, args.interval_s, meter)
                )
            if args.sse and not loaded_first:
                sse = asyncio.run(_sse_run(svc, body, args.clients, meter))
            poll_shares.append(loaded_cpu["api_cpu_s"] / loaded_cpu["wall_s"] / cores)
            if args.sse:
                sse_fps, lags, sse_cpu = sse
                share = sse_cpu["api_cpu_s"] / sse_cpu["wall_s"] / cores
                sse_perturbations.append(1 - sse_fps / quiet)
                sse_shares.append(share)
                sse_costs.append(share - quiet_cpu["api_cpu_s"] / quiet_cpu["wall_s"] / cores)
                sse_lags_ms += lags
                sse_lines.append(
                    f"{pair:>4} {quiet:>10.2f} {sse_fps:>8.2f} {1 - sse_fps / quiet:>8.1%} "
                    f"{share:>15.3%} {poll_shares[-1]:>16.3%} "
                    f"{quiet_cpu['api_cpu_s'] / quiet_cpu['wall_s'] / cores:>17.3%} {len(lags):>7} "
                    f"{_percentile(lags, 50) if lags else float('nan'):>12.1f} "
                    f"{_percentile(lags, 99) if lags else float('nan'):>12.1f} "
                    f"{max(lags, default=float('nan')):>12.1f}"
                )
            perturbation = 1 - loaded / quiet
            p50, p99 = _percentile(latencies, 50), _percentile(latencies, 99)
            api_ms_s = 1000 * loaded_cpu["api_cpu_s"] / loaded_cpu["wall_s"]
            client_ms_s = 1000 * loaded_cpu["client_cpu_s"] / loaded_cpu["wall_s"]
            quiet_ms_s = (
                1000 * (quiet_cpu["api_cpu_s"] + quiet_cpu["client_cpu_s"]) / quiet_cpu["wall_s"]
            )
            cost = (api_ms_s + client_ms_s - quiet_ms_s) / (1000 * cores)
            perturbations.append(perturbation)
            p50s.append(p50)
            p99s.append(p99)
            rates.append(rate)
            costs.append(cost)
            steal = f"{quiet_cpu['steal']:.0%}/{loaded_cpu['steal']:.0%}"
            print(
                f"{pair:>4} {quiet:>10.2f} {loaded:>11.2f} {perturbation:>8.1%} "
                f"{p50:>11.2f} {p99:>11.2f} {rate:>6.0f} "
                f"{api_ms_s:>13.1f} {client_ms_s:>16.1f} {cost:>9.2%} {steal:>10}",
                flush=True,
            )
    med_perturb, med_p99 = statistics.median(perturbations), statistics.median(p99s)
    if args.sse:
        print(
            f"\nserver-sent events: {args.clients} clients on GET /jobs/{{id}}/events\n"
            f"{'pair':>4} {'quiet fps':>10} {'sse fps':>8} {'perturb':>8} "
            f"{'api cpu (sse)':>15} {'api cpu (poll)':>16} {'api cpu (quiet)':>17} {'events':>7} "
            f"{'lag p50 ms':>12} {'lag p99 ms':>12} {'lag max ms':>12}"
        )
        print("\n".join(sse_lines))
        lags = sorted(sse_lags_ms)
        print(
            f"median: SSE perturbation {statistics.median(sse_perturbations):.1%}; API CPU "
            f"{statistics.median(sse_shares):.3%} of the host with SSE, "
            f"{statistics.median(sse_costs):.3%} more than with no client (target < 0.3%), vs "
            f"{statistics.median(poll_shares):.3%} polling every {args.interval_s:g} s; event "
            f"lag over {len(lags)} events: median {_percentile(lags, 50):.1f} ms, p99 "
            f"{_percentile(lags, 99):.1f} ms (target < 100 ms), max {lags[-1]:.1f} ms"
        )
    print(
        f"median: perturbation {med_perturb:.1%} (target < 3%) {'PASS' if med_perturb < 0.03 else 'FAIL'}; "
        f"API p50 {statistics.median(p50s):.2f} ms, p99 {med_p99:.2f} ms (target < 50 ms) "
        f"{'PASS' if med_p99 < 50 else 'FAIL'}; {statistics.median(rates):.0f} requests/s; "
        f"CPU cost of the polling {statistics.median(costs):.2%} of {cores} cores"
    )
    return 0 if med_perturb < 0.03 and med_p99 < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
