"""`ovbench serve`: the API under uvicorn (one process) plus one supervised worker process.

Start-up order: migrate the database, clean staging leftovers, mark jobs left `running`
by a dead process as failed ("interrupted"), start the worker (from a thread at normal
priority), lower the API's own priority, then serve HTTP. Ctrl-C or SIGTERM stops uvicorn
and then the worker (which cancels its running job), all within 10 s.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
from pathlib import Path
from types import FrameType
from typing import IO

from app.settings import Settings, get_settings

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s [serve %(process)d] %(name)s: %(message)s"
GRACEFUL_HTTP_SHUTDOWN_S = 2


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


def main(argv: list[str]) -> int:
    defaults = get_settings()
    args = _parser(defaults).parse_args(argv)
    settings = defaults.model_copy(
        update={"host": args.host, "port": args.port, "data_dir": args.data_dir}
    )
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    import uvicorn

    from app.api import create_app
    from app.store import Store
    from app.worker.supervisor import Supervisor

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_data_dir(settings.data_dir)
    if lock is None:
        logger.error(
            "another ovbench serve is using %s; stop it or pick another --data-dir",
            settings.data_dir,
        )
        return 1
    store = Store(settings.data_dir)
    store.migrate()
    store.blobs.clean_tmp()
    interrupted = store.fail_running_jobs(
        "interrupted",
        "The service stopped while this job was running (its process died); submit it again",
    )
    store.clear_worker()  # a heartbeat left by a dead worker must not make /readyz pass
    if interrupted:
        logger.warning("%d job(s) left running by a dead process marked failed", len(interrupted))
    app = create_app(settings, store)

    supervisor = Supervisor(settings, store)
    supervisor.start()
    _lower_api_priority(settings.api_nice)

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
    server = uvicorn.Server(config)

    received: list[int] = []

    def _note_signal(signum: int, frame: FrameType | None) -> None:
        # uvicorn captures SIGINT/SIGTERM while serving and re-raises them when it returns;
        # this handler makes that re-raise harmless so the worker is stopped below.
        received.append(signum)

    signal.signal(signal.SIGINT, _note_signal)
    signal.signal(signal.SIGTERM, _note_signal)
    logger.info(
        "ovbench serving on http://%s:%d (data dir %s)",
        settings.host,
        settings.port,
        settings.data_dir,
    )
    try:
        server.run()
    finally:
        logger.info("stopping the worker")
        supervisor.stop()
        store.close()
        lock.close()
        logger.info("stopped")
    return 0
