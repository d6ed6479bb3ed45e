"""`ovbench agent` (also `python -m app.agent`): options, then the agent's Celery worker."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pydantic

from app.agent.settings import AgentSettings

LOG_FORMAT = "%(asctime)s %(levelname)s [agent %(process)d] %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ovbench agent",
        description=(
            "Run the jobs a fleet API routes to this host (README: Fleet). Every option may "
            "come from the environment instead: OVBENCH_AGENT_API, OVBENCH_AGENT_TOKEN, "
            "OVBENCH_AGENT_NAME, OVBENCH_BROKER_URL, OVBENCH_AGENT_LABELS, "
            "OVBENCH_AGENT_CACHE_DIR, OVBENCH_AGENT_CACHE_MAX_BYTES, OVBENCH_RUN_LOCK_PATH."
        ),
    )
    parser.add_argument("--api", help="The API's URL, e.g. http://api-host:8000")
    parser.add_argument("--token", help="This host's agent token (the API's OVBENCH_AGENT_TOKENS)")
    parser.add_argument("--name", help="This host's name, as in OVBENCH_AGENT_TOKENS")
    parser.add_argument(
        "--broker", dest="broker_url", help="RabbitMQ: amqp://user:pass@host:5672//"
    )
    parser.add_argument("--labels", help="Labels jobs can ask for: k=v,k2=v2")
    parser.add_argument("--cache-dir", type=Path, help="Where job files are cached")
    parser.add_argument("--cache-max-bytes", type=int, help="The cache's size cap")
    parser.add_argument("--run-lock-path", type=Path, help="The host's run lock file")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per heartbeat
    given = {
        key: value for key, value in vars(args).items() if key != "log_level" and value is not None
    }
    try:
        settings = AgentSettings(**given)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "settings"
            option = "--broker" if field == "broker_url" else "--" + field.replace("_", "-")
            print(
                f"ovbench agent: {option}: {error['msg']} (or set its environment variable; "
                "see ovbench agent --help)",
                file=sys.stderr,
            )
        return 2
    from app.agent.worker import run_agent

    return run_agent(settings, args.log_level.upper())


if __name__ == "__main__":
    sys.exit(main())
