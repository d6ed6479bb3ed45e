"""`python -m app.worker`: the worker process, as started by the supervisor.

SIGTERM stops it gracefully (a running job is cancelled and recorded as such); SIGINT is
ignored, because Ctrl-C reaches the whole process group and the serve process decides.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from types import FrameType

from app import cpu_split
from app.faults import configure_faults
from app.settings import Settings
from app.worker.run_lock import RunLockError
from app.worker.worker import Worker

logger = logging.getLogger("app.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__)
    parser.add_argument("--settings-json", help="Settings as JSON (default: from OVBENCH_* env)")
    parser.add_argument("--burst", action="store_true", help="Exit when the queue is empty")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s [worker %(process)d] %(name)s: %(message)s",
    )
    settings = Settings(**json.loads(args.settings_json)) if args.settings_json else Settings()
    configure_faults(settings.fault)
    try:
        worker = Worker(settings)
    except (RunLockError, ValueError) as exc:
        logger.error("%s", exc)
        return 1
    cpu_split.pin_run(worker.cpus)  # this thread runs the benchmarks

    def _stop(signum: int, frame: FrameType | None) -> None:
        logger.info("worker %d: signal %d, stopping", worker.pid, signum)
        worker.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker.run(burst=args.burst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
