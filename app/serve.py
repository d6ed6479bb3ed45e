"""`ovbench serve`: the API under uvicorn (one process) plus one supervised worker process;
in fleet mode (`OVBENCH_BROKER_URL` with a PostgreSQL `OVBENCH_DATABASE_URL`), the API with
the fleet dispatcher's publisher and sweeper and no worker (`_serve_fleet`; README: Fleet).

Start-up order: bind and listen on the port (a taken port fails here, at once, naming the
port and how to pick another), lock the data dir, open the host's run lock (a lock file
that cannot be opened fails here, naming it and OVBENCH_RUN_LOCK_PATH), lock the database
when it is PostgreSQL (OVBENCH_DATABASE_URL: one serve per database, as per data dir) and
migrate it, sweep staging leftovers and unreferenced files, mark jobs left `running` by a
dead process as failed ("interrupted"), start the worker (from a thread at normal priority)
and the periodic retention sweep, lower the API's own priority, then hand the socket to
uvicorn and log "ovbench serving on http://HOST:PORT" once it serves. Ctrl-C or SIGTERM
stops accepting connections, lets in-flight requests finish (up to GRACEFUL_HTTP_SHUTDOWN_S)
while the worker is stopped in parallel (it cancels its running job, recorded as
`cancelled`), and exits 0 within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

from app import cpu_split
from app.faults import configure_faults
from app.settings import ENV_PREFIX, Settings, get_settings
from app.worker.run_lock import RunLock, RunLockError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.dispatch import Dispatcher
    from app.store import Store

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s [serve %(process)d] %(name)s: %(message)s"
GRACEFUL_HTTP_SHUTDOWN_S = 5
TICK_S = 1.0  # the HTTP server's housekeeping tick (uvicorn's is 0.1 s)
LISTEN_BACKLOG = 2048  # uvicorn's default


def _parser(defaults: Settings) -> argparse.ArgumentParser:
    env_lines = "\n".join(
        f"  {env:<34} {desc} (now: {value})" for env, desc, value in defaults.env_help()
    )
    parser = argparse.ArgumentParser(
        prog="ovbench serve",
        description="Start the REST service and its worker process.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings (environment variables; the options above override them):\n" + env_lines,
    )
    parser.add_argument(
        "--host", default=defaults.host, help=f"Address to bind (default {defaults.host})"
    )
    parser.add_argument(
        "--port", type=int, default=defaults.port, help=f"Port (default {defaults.port})"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=defaults.data_dir,
        help=f"Database and uploaded files (default {defaults.data_dir})",
    )
    parser.add_argument("--log-level", default="INFO", help="Python log level (default INFO)")
    parser.add_argument("--access-log", action="store_true", help="Log every HTTP request")
    return parser


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) and listening (OSError when it cannot be).

    Bound before anything else starts, so a taken port fails at once and leaves no worker;
    connections made before uvicorn serves wait in the backlog.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restart may bind over connections left in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _listen_error(host: str, port: int, exc: OSError) -> str:
    """What went wrong binding `host:port`, and how to pick another port."""
    another = f"pick another port with --port N, {ENV_PREFIX}PORT=N or make serve PORT=N"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {_url(host, port)}: port {port} is already in use (another "
            f"ovbench serve or another program); stop it, or {another}"
        )
    return (
        f"cannot listen on {_url(host, port)}: {exc.strerror or exc}; check the address "
        f"(--host, {ENV_PREFIX}HOST) or {another}"
    )


def _lower_api_priority(increment: int) -> None:
    """Lower the calling thread's priority (Linux: per thread), so HTTP yields to the worker.

    Threads started later from this thread (uvicorn's, the request thread pool) inherit it;
    the supervisor thread, started earlier, keeps normal priority, and so do the worker
    processes it starts.
    """
    if increment <= 0:
        return
    try:
        os.nice(increment)
    except OSError as exc:
        logger.warning("could not lower the API's priority: %s", exc)


def _lock_data_dir(data_dir: Path) -> IO[bytes] | None:
    """An exclusive lock on the data dir for this process's lifetime (None: already held).

    Start-up marks `running` jobs as interrupted, which is only right if no other serve
    process (and so no other worker) uses the same store.
    """
    handle = (data_dir / "serve.lock").open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _open_store(settings: Settings) -> Store:
    from app.store import Store

    return Store(
        settings.data_dir,
        database_url=settings.database_url,
        max_data_bytes=settings.max_data_bytes,
    )


def _retention_loop(store: Store, settings: Settings, stop: threading.Event) -> None:
    """Every `retention_interval_s` until `stop` is set: sweep unreferenced files, and remove
    the final webhook deliveries of deleted jobs and sweeps (pending at the delete)."""
    while not stop.wait(settings.retention_interval_s):
        try:
            store.catalog.sweep_unreferenced(grace_s=settings.retention_grace_s)
        except Exception:
            logger.exception("retention sweep failed")
        try:
            store.deliveries.remove_orphaned()
        except Exception:
            logger.exception("retention of deliveries failed")


def _start_retention(store: Store, settings: Settings) -> threading.Event:
    """The periodic retention sweep in a thread; set the event to stop it."""
    stop = threading.Event()
    threading.Thread(
        target=_retention_loop, args=(store, settings, stop), name="retention-sweep", daemon=True
    ).start()
    return stop


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fail_interrupted_jobs(store: Store, probe: RunLock) -> list[str]:
    """Mark jobs left `running` by a dead process `failed` ("interrupted"); closes `probe`.

    When another process holds the host's run lock (a worker outside this service, of
    another serve or a stray one, is running a job on this host), a job whose worker pid is
    alive may really be running: leave it.
    """
    message = "The service stopped while this job was running (its process died); submit it again"
    try:
        busy = probe.held_elsewhere()
    finally:
        probe.close()
    if not busy:
        return store.jobs.fail_running("interrupted", message)
    logger.warning(
        "another process holds %s: a benchmark is running outside this service", probe.path
    )
    return [
        job.id
        for job in store.jobs.running()
        if not _pid_alive(job.worker_pid)
        and store.jobs.finish_failed(job.id, "interrupted", message)
    ]


def main(argv: list[str]) -> int:
    defaults = get_settings()
    args = _parser(defaults).parse_args(argv)
    settings = defaults.model_copy(
        update={"host": args.host, "port": args.port, "data_dir": args.data_dir}
    )
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    configure_faults(settings.fault)
    try:
        cpus = cpu_split.split(settings.service_cpus)
    except ValueError as exc:
        logger.error("%s", exc)
        return 1
    if cpus is not None:  # before any thread starts: they all inherit it
        cpu_split.pin_service(cpus)
        settings = settings.model_copy(update={"run_cpus": cpu_split.cpu_list(cpus.run)})
        logger.info("CPU split: %s", cpu_split.describe(cpus))

    try:
        sock = _listen(settings.host, settings.port)  # before the heavy imports: refuse fast
    except OSError as exc:
        logger.error("%s", _listen_error(settings.host, settings.port, exc))
        return 1
    # The port really bound (--port 0 picks one).
    settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    url = _url(settings.host, settings.port)

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.fleet:
        return _serve_fleet(settings, sock, url, args)
    lock = _lock_data_dir(settings.data_dir)
    if lock is None:
        logger.error(
            "another ovbench serve is using %s; stop it or pick another --data-dir",
            settings.data_dir,
        )
        sock.close()
        return 1
    try:
        run_lock = RunLock(settings.run_lock_path)  # opened now: a bad path fails at once
    except RunLockError as exc:
        logger.error("%s", exc)
        lock.close()
        sock.close()
        return 1

    from app.api import create_app
    from app.dispatch import LocalDispatcher

    store = _open_store(settings)
    if not store.lock_database():  # PostgreSQL: one serve per database, as per data dir
        logger.error(
            "another ovbench serve is using the database %s; stop it or point "
            "%sDATABASE_URL at another database",
            store.engine.url,
            ENV_PREFIX,
        )
        store.close()
        run_lock.close()
        lock.close()
        sock.close()
        return 1
    store.migrate()
    if settings.database_url:
        logger.info("database %s", store.engine.url)  # the password shown as ***
    store.blobs.clean_tmp()
    store.catalog.sweep_unreferenced(grace_s=0)  # nothing is in flight yet
    interrupted = _fail_interrupted_jobs(store, run_lock)
    store.workers.clear()  # a heartbeat left by a dead worker must not make /readyz pass
    if interrupted:
        logger.warning("%d job(s) left running by a dead process marked failed", len(interrupted))
    dispatcher = LocalDispatcher(settings, store)
    app = create_app(settings, store, dispatcher)
    dispatcher.start()
    stop_retention = _start_retention(store, settings)
    app.state.webhooks.start()
    _lower_api_priority(settings.api_nice)

    _run_uvicorn(app, dispatcher, settings, sock, url, args)
    app.state.webhooks.stop()
    stop_retention.set()
    store.close()
    sock.close()
    lock.close()
    logger.info("stopped")
    return 0


def _run_uvicorn(
    app: FastAPI,
    dispatcher: Dispatcher,
    settings: Settings,
    sock: socket.socket,
    url: str,
    args: argparse.Namespace,
) -> None:
    """Serve `app` on `sock` until SIGINT/SIGTERM, then stop the dispatcher (its worker)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=None,
        lifespan="off",
        access_log=args.access_log,
        log_level=args.log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_HTTP_SHUTDOWN_S,
    )

    class _Server(uvicorn.Server):
        loop: asyncio.AbstractEventLoop | None = None
        exit_asked: asyncio.Event | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().startup(sockets=sockets)
            if self.started:  # accepting requests now, not before
                logger.info("ovbench serving on %s (data dir %s)", url, settings.data_dir)

        async def main_loop(self) -> None:
            """uvicorn's loop at one tick a second, not ten (every wake-up of an idle
            process costs CPU the benchmark could use; its per-second work is all a tick
            does besides checking for an exit), and woken at once by a signal."""
            self.exit_asked = asyncio.Event()
            counter = 0
            while not await self.on_tick(counter):
                counter = (counter + 10) % 864000  # on_tick's once-a-second work, every tick
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.exit_asked.wait(), TICK_S)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Stop the worker while uvicorn drains in-flight requests, not after.
            if not self.should_exit:
                threading.Thread(target=dispatcher.stop, name="stop-worker", daemon=True).start()
                if self.loop is not None:  # end the event streams now: they never drain
                    app.state.event_hub.close_threadsafe(self.loop)
            super().handle_exit(sig, frame)
            if self.loop is not None and self.exit_asked is not None:
                self.loop.call_soon_threadsafe(self.exit_asked.set)

    server = _Server(config)

    received: list[int] = []

    def _note_signal(signum: int, frame: FrameType | None) -> None:
        # uvicorn captures SIGINT/SIGTERM while serving and re-raises them when it returns;
        # this handler makes that re-raise harmless so the worker is stopped below.
        received.append(signum)

    signal.signal(signal.SIGINT, _note_signal)
    signal.signal(signal.SIGTERM, _note_signal)
    try:
        server.run(sockets=[sock])
    finally:
        logger.info("stopping the %s", "dispatcher" if settings.fleet else "worker")
        dispatcher.stop()


def _serve_fleet(
    settings: Settings, sock: socket.socket, url: str, args: argparse.Namespace
) -> int:
    """Fleet mode: the API and the dispatcher's publisher and sweeper; no local worker.

    Any number of these may share one PostgreSQL database (and one data dir, on a shared
    volume, so that every replica serves every uploaded file): no data-dir or database lock,
    and nothing is marked interrupted at start-up (agents run the jobs; the sweeper judges).
    """
    from sqlalchemy.engine import make_url

    from app.api import create_app
    from app.dispatch.fleet import FleetDispatcher

    problem = None
    if (
        not settings.database_url
        or make_url(settings.database_url).get_backend_name() != "postgresql"
    ):
        problem = (
            f"fleet mode ({ENV_PREFIX}BROKER_URL is set) needs PostgreSQL: set "
            f"{ENV_PREFIX}DATABASE_URL=postgresql+psycopg://user:password@host/db"
        )
    else:
        try:
            if not settings.agent_token_map():
                problem = (
                    f"fleet mode needs agent tokens: set {ENV_PREFIX}AGENT_TOKENS=host1=token1,"
                    "host2=token2 (one per device host; `ovbench agent --token` uses it)"
                )
        except ValueError as exc:
            problem = str(exc)
    if problem:
        logger.error("%s", problem)
        sock.close()
        return 1
    store = _open_store(settings)
    store.migrate()
    from kombu.utils.url import maybe_sanitize_url

    logger.info(
        "fleet mode: database %s, broker %s",
        store.engine.url,  # passwords shown as ***
        maybe_sanitize_url(settings.broker_url),
    )
    # Other replicas may be mid-upload: leave files younger than the grace.
    store.catalog.sweep_unreferenced(grace_s=settings.retention_grace_s)
    dispatcher = FleetDispatcher(settings, store)
    app = create_app(settings, store, dispatcher)
    dispatcher.start()
    stop_retention = _start_retention(store, settings)
    app.state.webhooks.start()  # every replica: claims are leases in the database
    _run_uvicorn(app, dispatcher, settings, sock, url, args)
    app.state.webhooks.stop()
    stop_retention.set()
    store.close()
    sock.close()
    logger.info("stopped")
    return 0
