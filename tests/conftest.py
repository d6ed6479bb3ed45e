"""Shared fixtures: generated sample models (once per session) and a folder of known images."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.samples import write_sample_models
from tests.factories import write_known_images, write_tiny_model


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
