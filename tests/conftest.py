"""Shared fixtures: generated sample models (once per session), a folder of known images, and
real PostgreSQL and RabbitMQ servers (tests/servers.py), started on first use and stopped at
the end of the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.samples import write_sample_models
from tests.factories import write_known_images, write_tiny_model
from tests.servers import (
    INSTALL_HINT,
    PostgresServer,
    RabbitMQServer,
    missing_packages,
    postgres_server,
    rabbitmq_server,
)

IN_CI = os.environ.get("CI", "").lower() == "true"
# The host guard samples the host for a second before each run (and waits while it is busy):
# the services and workers the tests start run without it, and the tests that are about it
# (tests/engine/test_host_guard.py, the guard's end-to-end test) set it themselves.
os.environ.setdefault("OVBENCH_GUARD__SAMPLE_S", "0")


@pytest.fixture(scope="session")
def sample_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet50, mobilenet_v2 and tiny_cnn as `<dir>/<name>.xml` (+ .bin). Read-only: shared."""
    directory = tmp_path_factory.mktemp("sample_models")
    write_sample_models(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CNN's xml ("input" [1,3,64,64] -> "logits" [1,10]). Read-only: shared.

    Written on its own, so tests that only need it never pay for ResNet-50.
    """
    return write_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    """A fresh folder with `factories.KNOWN_IMAGES` (solid png, bmp, jpg) and a gradient png."""
    return write_known_images(tmp_path / "images")


def require_server_package(package: str) -> None:
    """Skip (fail under CI=true, where they must run) when the server's package is missing."""
    if package not in missing_packages():
        return
    reason = f"{package} not installed; {INSTALL_HINT}"
    if IN_CI:
        pytest.fail(
            f"CI=true, so the tests with real servers must run, but {reason}", pytrace=False
        )
    pytest.skip(f"real servers not available: {reason}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL 15 for the session (127.0.0.1, ephemeral port, temporary directory)."""
    require_server_package("postgresql")
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL: its SQLAlchemy URL; dropped after."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQServer]:
    """One RabbitMQ node for the session (127.0.0.1, ephemeral ports, temporary directory)."""
    require_server_package("rabbitmq-server")
    with rabbitmq_server() as server:
        yield server
