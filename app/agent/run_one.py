"""`python -m app.agent.run_one`: one job's run in a process of its own, started by the agent.

Reads the run (job id, params, model path, input paths, original file names) as one JSON
object on stdin; writes `@ovbench {"progress": ...}` lines while it runs (at most every
PROGRESS_EVERY_S) and one `@ovbench {"outcome": ...}` line at the end, on stdout (other lines,
such as a plugin's prints, are not the agent's business). SIGTERM cancels the run (the
partial result comes back as `cancelled`); when the agent dies, the run is cancelled and the
process exits within a few seconds. Engine settings (default durations) come from the
`OVBENCH_*` environment, as the local worker's do.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from app import cpu_split
from app.engine.spec import Progress
from app.settings import Settings
from app.worker.outcome import job_provenance, run_to_outcome

MARK = "@ovbench "
PROGRESS_EVERY_S = 0.2
ORPHAN_EXIT_S = 3.0

logger = logging.getLogger("app.agent.run_one")


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    from app.worker.worker import spec_from_params  # OpenVINO: here, not in the agent

    logging.basicConfig(
        level="INFO", format="%(asctime)s %(levelname)s [run %(process)d] %(name)s: %(message)s"
    )
    run = json.loads(sys.stdin.readline())
    cpus = cpu_split.handed_down(run.get("service_cpus", ""), run.get("run_cpus", ""))
    cpu_split.pin_run(cpus)  # this thread runs the benchmark
    cancel = threading.Event()
    parent = os.getppid()

    def _cancel(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    signal.signal(signal.SIGTERM, _cancel)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _watch_parent() -> None:
        cpu_split.pin_service(cpus)
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                logger.warning("the agent is gone: cancelling the run")
                cancel.set()
                time.sleep(ORPHAN_EXIT_S)
                os._exit(1)

    threading.Thread(target=_watch_parent, name="watch-agent", daemon=True).start()
    last = [0.0]

    def on_progress(progress: Progress) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            emit({"progress": progress.model_dump()})

    settings = Settings()
    outcome = run_to_outcome(
        lambda: spec_from_params(
            run["params"],
            model_path=Path(run["model_path"]),
            input_paths=list(run["input_paths"]),
            shown_names=dict(run["shown_names"]),
            settings=settings,
        ),
        on_progress,
        cancel,
        str(run["job_id"]),
        job_provenance(run["params"], settings.default_duration_s),
    )
    emit({"outcome": asdict(outcome)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
