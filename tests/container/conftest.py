"""Fixtures of tests/container: the Docker engine, and the ovbench image, built once a session."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.container.engine import (
    BASE_IMAGE,
    ROOT,
    Engine,
    build_image,
    probe_engine,
    refresh_wheelhouse,
    remove_image,
)


@pytest.fixture(scope="session")
def engine() -> Engine:
    return probe_engine()


@pytest.fixture(scope="session")
def image(engine: Engine) -> Iterator[str]:
    """The ovbench image, built with no network from a wheelhouse of this tree.

    OVBENCH_TEST_IMAGE names an image to use instead (built and removed by whoever set it).
    """
    if os.environ.get("OVBENCH_TEST_IMAGE"):
        yield os.environ["OVBENCH_TEST_IMAGE"]
        return
    tag = f"ovbench-test:{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    refresh_wheelhouse()
    wheels_s = time.monotonic() - started
    try:
        build_s = build_image(tag, ROOT, {"BASE_IMAGE": BASE_IMAGE})
        print(f"wheelhouse {wheels_s:.1f} s, image build {build_s:.1f} s")
        yield tag
    finally:
        remove_image(tag)
