"""The agent's work, apart from the broker: register, heartbeat, and run one job end to end.

`Agent.handle(job_id)` is what a broker message triggers (worker.py): under the host's run
lock it claims the job through the API (a 409 means a duplicate message or a job cancelled
meanwhile: nothing to do), fetches the job's files into the cache, runs the job in its own
process (run_one.py) while exchanging progress and cancel with the API every
`progress_interval_s`, and stores the outcome through the API. It returns only when the
outcome is stored (or the API said the job is no longer this host's), so the message is
acked after the fact.

The run process is killed (SIGKILL) when a cancel does not stop it within `run_kill_grace_s`
(the job ends `cancelled`) or it passes its wall-time budget (`failed`, `timeout`), as the
local supervisor does. When it dies on its own, the job ends `failed` with `worker_lost`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from app import cpu_split
from app.agent.cache import BlobCache, CacheTooSmall
from app.agent.client import AgentStopping, ApiClient, ApiRefused
from app.agent.run_one import MARK
from app.agent.settings import AgentSettings
from app.engine.defaults import resolve_options
from app.settings import Settings
from app.worker.outcome import Outcome
from app.worker.run_lock import RunLock
from app.worker.supervisor import describe_exit, wall_time_budget_s

logger = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = "Cancelled: the agent shut down while the job was running"
CANCEL_MESSAGE = "Cancelled on request"
LOCK_POLL_S = 0.2


def agent_version() -> str:
    from app.engine.runner import ovbench_version

    return ovbench_version()


class Agent:
    def __init__(self, settings: AgentSettings, engine_settings: Settings | None = None) -> None:
        self.settings = settings
        self.engine_settings = engine_settings or Settings()
        # OVBENCH_SERVICE_CPUS: this process on the service CPUs, each run process on the rest.
        self.cpus = cpu_split.split(self.engine_settings.service_cpus)
        cpu_split.pin_service(self.cpus)
        self.name = settings.name
        self.stop_event = threading.Event()
        self.client = ApiClient(settings.api, settings.token, self.stop_event)
        self.cache = BlobCache(settings.cache_dir / settings.name, settings.cache_max_bytes)
        self.run_lock = RunLock(settings.run_lock_path)
        self.current_job_id: str | None = None
        self.draining = False
        self.heartbeat_interval_s = 1.0
        self.jobs_run = 0
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="heartbeat", daemon=True
        )

    # ------------------------------------------------------------ liveness
    def devices(self) -> list[dict[str, Any]]:
        if self.settings.simulate:
            return [{"name": "CPU", "full_name": "simulated CPU", "properties": {}}]
        from app.engine.devices import list_devices

        return [d.model_dump() for d in list_devices()]

    def register(self) -> None:
        from app.engine.runner import host_facts

        reply = self.client.call(
            "POST",
            "/agent/register",
            {
                "devices": self.devices(),
                "labels": self.settings.label_map(),
                "facts": host_facts(),
                "agent_version": agent_version(),
            },
        )
        self.heartbeat_interval_s = float(reply["heartbeat_interval_s"])
        lost = reply.get("lost_job_ids") or []
        logger.info(
            "agent %s registered with %s%s",
            self.name,
            self.settings.api,
            f"; {len(lost)} job(s) a previous agent left running marked worker_lost"
            if lost
            else "",
        )

    def start(self) -> None:
        """Register (retrying until the API answers) and start heartbeating."""
        self.register()
        self._heartbeat.start()

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        self.stop_event.set()
        if self._heartbeat.is_alive():
            self._heartbeat.join(timeout=5)
        self.client.close()
        self.run_lock.close()

    def _heartbeat_loop(self) -> None:
        failing_since: float | None = None
        while not self.stop_event.wait(self.heartbeat_interval_s):
            try:
                reply = self.client.call(
                    "POST", "/agent/heartbeat", {"current_job_id": self.current_job_id}, retry=False
                )
                self.draining = bool(reply["draining"])
            except ApiRefused as exc:
                if exc.code == "host_not_registered":
                    with contextlib.suppress(Exception):
                        self.register()
                else:
                    logger.warning("heartbeat refused: %s", exc)
                continue
            except Exception as exc:  # the API is away: the next beat tries again
                if failing_since is None:
                    failing_since = time.monotonic()
                    logger.warning("heartbeat failed (%s); retrying every beat", exc)
                continue
            if failing_since is not None:
                logger.info("heartbeat works again after %.1f s", time.monotonic() - failing_since)
                failing_since = None

    # ------------------------------------------------------------------ jobs
    def handle(self, job_id: str) -> None:
        """Run job `job_id` if it is still this host's to run (module docstring)."""
        try:
            self._handle(job_id)
        except AgentStopping:
            logger.info("job %s: the agent stopped before it could finish", job_id)

    def _handle(self, job_id: str) -> None:
        while not self.run_lock.try_acquire():  # another ovbench process runs a benchmark here
            if self.stop_event.wait(LOCK_POLL_S):
                raise AgentStopping("stopping while waiting for the run lock")
        try:
            try:
                job = self.client.call(
                    "POST", f"/agent/jobs/{job_id}/claim", {"claim_token": uuid.uuid4().hex}
                )
            except ApiRefused as exc:
                logger.info("job %s: not run (%s)", job_id, exc.message)
                return
            self.current_job_id = job_id
            try:
                outcome = self._run(job)
            except AgentStopping:
                raise
            except Exception as exc:  # a bug here must still end the job, not leave it running
                logger.exception("job %s: the agent failed to run it", job_id)
                outcome = Outcome(
                    "failed",
                    error_code="internal_error",
                    error_message=f"Unexpected error in the agent of host {self.name}: "
                    f"{type(exc).__name__}: {exc}",
                )
            finally:
                self.cache.drop_job_dir(job_id)
            self._report(job_id, outcome)
            self.jobs_run += 1
        finally:
            self.current_job_id = None
            self.run_lock.release()

    def _report(self, job_id: str, outcome: Outcome) -> None:
        if outcome.result is not None:
            outcome.result.setdefault("host", {})["name"] = self.name
        try:
            self.client.call(
                "POST",
                f"/agent/jobs/{job_id}/finish",
                {
                    "status": outcome.status,
                    "result": outcome.result,
                    "error_code": outcome.error_code,
                    "error_message": outcome.error_message,
                },
            )
            logger.info("job %s: %s%s", job_id, outcome.status, _why(outcome))
        except ApiRefused as exc:
            logger.warning(
                "job %s: outcome %s%s not stored: %s",
                *(job_id, outcome.status, _why(outcome), exc.message),
            )

    def _fetch(self, sha256: str, size: int, dest: Path) -> None:
        self.client.download(sha256, size, dest)

    def _run(self, job: dict[str, Any]) -> Outcome:
        job_id = str(job["id"])
        if self.settings.simulate:
            return self._simulate(job)
        files = [
            (f["sha256"], int(f["size_bytes"])) for f in job["model_files"] + job["dataset_files"]
        ]
        try:
            self.cache.ensure(files, self._fetch)
            root = self.cache.job_dir(
                job_id,
                {f["name"]: f["sha256"] for f in job["model_files"]},
                {f["name"]: f["sha256"] for f in job["dataset_files"]},
            )
        except (ApiRefused, httpx.HTTPError, ValueError, OSError, CacheTooSmall) as exc:
            return Outcome(
                "failed",
                error_code="files_unavailable",
                error_message=f"The agent of host {self.name} could not get the job's files: {exc}",
            )
        run = {
            "job_id": job_id,
            "params": job["params"],
            "model_path": str(root / "model" / job["model_files"][0]["name"]),
            "input_paths": [str(root / "inputs")] if job["dataset_files"] else [],
            "shown_names": {f["name"]: f["original_name"] for f in job["model_files"]},
            "service_cpus": cpu_split.cpu_list(self.cpus.service) if self.cpus else "",
            "run_cpus": cpu_split.cpu_list(self.cpus.run) if self.cpus else "",
        }
        return self._run_process(
            job_id, run, wall_time_budget_s(job["params"], self.engine_settings)
        )

    def _run_process(self, job_id: str, run: dict[str, Any], budget_s: float) -> Outcome:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.agent.run_one"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(run) + "\n")
        process.stdin.close()
        lines: queue.Queue[dict[str, Any]] = queue.Queue()
        reader = threading.Thread(
            target=_read_marked, args=(process.stdout, lines), name=f"run-{job_id[:8]}", daemon=True
        )
        reader.start()
        started = time.monotonic()
        cancelled_at: float | None = None
        outcome: Outcome | None = None
        latest: dict[str, Any] | None = None
        killed: Outcome | None = None
        while True:
            deadline = time.monotonic() + self.settings.progress_interval_s
            while outcome is None and (left := deadline - time.monotonic()) > 0:
                try:
                    message = lines.get(timeout=left)
                except queue.Empty:
                    break
                if "progress" in message:
                    latest = message["progress"]
                elif "outcome" in message:
                    outcome = Outcome(**message["outcome"])
                elif "eof" in message:
                    break
            if outcome is not None or process.poll() is not None:
                break
            cancel = self._exchange_progress(job_id, latest)
            latest = None
            now = time.monotonic()
            if (cancel or self.stop_event.is_set()) and cancelled_at is None:
                logger.info("job %s: cancelling the run", job_id)
                cancelled_at = now
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
            if (
                cancelled_at is not None
                and now - cancelled_at > self.engine_settings.run_kill_grace_s
            ):
                killed = Outcome(
                    "cancelled",
                    error_code="cancelled",
                    error_message=(
                        f"Cancelled; the run did not stop within "
                        f"{self.engine_settings.run_kill_grace_s:g} s (stuck in a device call), so "
                        "its process was killed"
                    ),
                )
            elif now - started > budget_s:
                killed = Outcome(
                    "failed",
                    error_code="timeout",
                    error_message=(
                        f"The run took longer than its wall-time budget of {budget_s:g} s (its "
                        "duration or niter estimate plus OVBENCH_JOB_ALLOWANCE_S), so its process "
                        "was killed"
                    ),
                )
            if killed is not None:
                process.kill()
                break
        process.wait()
        reader.join(timeout=5)
        while outcome is None and not lines.empty():
            message = lines.get_nowait()
            if "outcome" in message:
                outcome = Outcome(**message["outcome"])
        if killed is not None:
            return killed
        if outcome is None:
            return Outcome(
                "failed",
                error_code="worker_lost",
                error_message=(
                    f"The run process on host {self.name} {describe_exit(process.returncode)} "
                    "before it finished (a plugin crash, or out of memory); it is not rerun"
                ),
            )
        if outcome.status == "cancelled":
            outcome.error_message = SHUTDOWN_MESSAGE if self.stop_event.is_set() else CANCEL_MESSAGE
        return outcome

    def _exchange_progress(self, job_id: str, progress: dict[str, Any] | None) -> bool:
        """Send the latest progress (if any); True when the job's cancel was requested."""
        try:
            reply = self.client.call(
                "POST", f"/agent/jobs/{job_id}/progress", progress or {}, retry=False
            )
        except ApiRefused as exc:
            logger.warning("job %s: progress refused (%s); cancelling", job_id, exc.message)
            return True  # no longer this host's job
        except Exception as exc:
            logger.debug("job %s: progress not sent: %s", job_id, exc)
            return False
        return bool(reply["cancel_requested"]) or reply.get("status") != "running"

    def _simulate(self, job: dict[str, Any]) -> Outcome:
        """Sleep the job's planned duration (niter jobs: 1 ms per iteration), no OpenVINO."""
        options = resolve_options(job["params"], self.engine_settings.default_duration_s)
        duration_s = float(options.duration_s or (options.niter or 0) / 1000)
        started = time.monotonic()
        job_id = str(job["id"])
        while (elapsed := time.monotonic() - started) < duration_s:
            progress = {
                "fraction": min(1.0, elapsed / duration_s),
                "iterations": 0,
                "elapsed_s": elapsed,
            }
            if self._exchange_progress(job_id, progress) or self.stop_event.is_set():
                return Outcome("cancelled", error_code="cancelled", error_message=CANCEL_MESSAGE)
            time.sleep(min(self.settings.progress_interval_s, max(0.0, duration_s - elapsed)))
        elapsed = time.monotonic() - started
        return Outcome("succeeded", result=self._simulated_result(options, duration_s, elapsed))

    def _simulated_result(
        self, options: Any, duration_s: float, elapsed_s: float
    ) -> dict[str, Any]:
        """A BenchmarkResult that says it is simulated (no inference ran): the API's
        wire model reads it as any other result."""
        from datetime import UTC, datetime

        from app.engine.spec import BenchmarkResult, EffectiveConfig, ModelDescription

        result = BenchmarkResult(
            status="completed",
            api=options.api,
            device=options.device,
            device_full_name="simulated (OVBENCH_AGENT_SIMULATE)",
            openvino_version="none (simulated)",
            ovbench_version="simulated",
            started_at=datetime.now(UTC).isoformat(),
            throughput_fps=0.0,
            latency_ms=None,
            iterations=0,
            duration_ms=elapsed_s * 1000,
            first_inference_ms=0.0,
            read_model_ms=0.0,
            reshape_ms=None,
            compile_ms=0.0,
            limits={"niter": options.niter, "duration_s": duration_s},
            config=EffectiveConfig(
                hint=None,
                nstreams=None,
                nireq=1,
                nthreads=None,
                pin=None,
                inference_precision=None,
                batch_size=1,
                requested={},
                properties={},
            ),
            model=ModelDescription(
                name="simulated", format="none", files=[], inputs=[], outputs=[]
            ),
            inputs=[],
            timeline=[],
            warnings=["Simulated run (OVBENCH_AGENT_SIMULATE): it slept, no inference ran"],
            host={"name": self.name, "pid": os.getpid()},
        )
        return result.model_dump(mode="json")


def _why(outcome: Outcome) -> str:
    return f" [{outcome.error_code}] {outcome.error_message}" if outcome.error_code else ""


def _read_marked(stream: Any, lines: queue.Queue[dict[str, Any]]) -> None:
    """The run process's `@ovbench` lines as dicts, then {"eof": True}."""
    try:
        for line in stream:
            if line.startswith(MARK):
                try:
                    lines.put(json.loads(line[len(MARK) :]))
                except ValueError:
                    logger.warning("unreadable line from the run process: %r", line[:200])
            elif line.strip():
                sys.stderr.write(line)
    finally:
        lines.put({"eof": True})
