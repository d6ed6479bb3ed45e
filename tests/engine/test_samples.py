"""The generated sample models are the real topologies, run on CPU, and are written byte-for-byte
the same every time; plus a quick check of each factory in tests/factories.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest
from PIL import Image

from app.engine.samples import (
    SAMPLE_IMAGE_SIZE,
    SAMPLE_IMAGES,
    SAMPLE_MODELS,
    VAD_STATE_UNITS,
    write_sample_images,
    write_sample_models,
)
from tests.factories import (
    GRADIENT_IMAGE,
    JPEG_TOLERANCE,
    KNOWN_IMAGE_SIZE,
    KNOWN_IMAGES,
    gradient_rgb,
    rgb_array,
    write_broken_copies,
    write_dynamic_model,
    write_gradient_image,
    write_identity_model,
    write_nhwc_identity_model,
    write_nhwc_model,
    write_onnx_model,
    write_solid_image,
    write_tiny_model,
    write_two_input_model,
)


@pytest.fixture(scope="module")
def core() -> ov.Core:
    return ov.Core()


def _ops_of(model: ov.Model, type_name: str) -> list[ov.Node]:
    return [op for op in model.get_ordered_ops() if op.get_type_name() == type_name]


def _parameter_count(model: ov.Model) -> int:
    return sum(int(np.prod(op.get_output_shape(0))) for op in _ops_of(model, "Constant"))


def _op_named(model: ov.Model, name: str) -> ov.Node:
    (op,) = [op for op in model.get_ordered_ops() if op.get_friendly_name() == name]
    return op


# --- sample models ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "input_shape", "output_shape"),
    [
        ("resnet50", [1, 3, 224, 224], [1, 1000]),
        ("mobilenet_v2", [1, 3, 224, 224], [1, 1000]),
        ("tiny_cnn", [1, 3, 64, 64], [1, 10]),
    ],
)
def test_sample_model_io(
    sample_models_dir: Path,
    core: ov.Core,
    name: str,
    input_shape: list[int],
    output_shape: list[int],
) -> None:
    model = core.read_model(sample_models_dir / f"{name}.xml")
    assert len(model.inputs) == 1
    assert len(model.outputs) == 1
    assert model.input().any_name == "input"
    assert model.input().get_node().get_friendly_name() == "input"
    assert model.input().get_element_type() == ov.Type.f32
    assert list(model.input().shape) == input_shape
    # No layout: the engine has to guess NCHW, as benchmark_app does.
    assert model.input().get_node().get_layout().empty
    assert model.output().any_name == "logits"
    assert list(model.output().shape) == output_shape


def test_resnet50_is_resnet50_v1_5(sample_models_dir: Path, core: ov.Core) -> None:
    model = core.read_model(sample_models_dir / "resnet50.xml")
    assert _parameter_count(model) == pytest.approx(25.5e6, rel=0.01)
    # Stem + 16 bottlenecks x 3 + 4 projection shortcuts.
    assert len(_ops_of(model, "Convolution")) == 53
    assert len(_ops_of(model, "MaxPool")) == 1
    for stage in (2, 3, 4):
        # v1.5: the stride sits on the 3x3 conv, not on the first 1x1.
        assert _op_named(model, f"layer{stage}.0.conv1").get_attributes()["strides"] == [1, 1]
        assert _op_named(model, f"layer{stage}.0.conv2").get_attributes()["strides"] == [2, 2]
        assert _op_named(model, f"layer{stage}.0.downsample").get_attributes()["strides"] == [2, 2]
    assert _op_named(model, "layer1.0.conv2").get_attributes()["strides"] == [1, 1]


def test_mobilenet_v2_is_mobilenet_v2(sample_models_dir: Path, core: ov.Core) -> None:
    model = core.read_model(sample_models_dir / "mobilenet_v2.xml")
    assert _parameter_count(model) == pytest.approx(3.5e6, rel=0.01)
    depthwise = _ops_of(model, "GroupConvolution")
    assert len(depthwise) == 17  # one per inverted residual block
    for op in depthwise:
        groups, out_per_group, in_per_group, *_ = op.input(1).get_shape()
        assert (out_per_group, in_per_group) == (1, 1)
        assert groups == op.get_output_shape(0)[1]
    clamps = _ops_of(model, "Clamp")
    assert clamps
    assert all(op.get_attributes() == {"min": 0.0, "max": 6.0} for op in clamps)
    residual_adds = [op for op in _ops_of(model, "Add") if op.get_friendly_name().endswith(".add")]
    assert len(residual_adds) == 10


# Static shapes for the dynamic sample: a batch of 4, so that its one probability per row varies.
_STATIC_SHAPES = {"vad_dynamic": {"input": [4, 512], "state": [2, 4, VAD_STATE_UNITS]}}


@pytest.mark.parametrize("name", list(SAMPLE_MODELS))
def test_sample_model_gives_finite_varied_outputs(
    sample_models_dir: Path, core: ov.Core, name: str
) -> None:
    compiled = core.compile_model(sample_models_dir / f"{name}.xml", "CPU")
    shapes = _STATIC_SHAPES.get(name) or {p.any_name: list(p.shape) for p in compiled.inputs}
    rng = np.random.default_rng(7)
    # Unit-scale noise, and what the model takes in use: 0..255 images, -1..1 audio.
    high = 1.0 if name == "vad_dynamic" else 255.0
    low = -high if name == "vad_dynamic" else 0.0
    feeds = [
        {n: rng.standard_normal(shape).astype(np.float32) for n, shape in shapes.items()},
        {n: rng.uniform(low, high, shape).astype(np.float32) for n, shape in shapes.items()},
    ]
    outputs = [compiled(feed)[0] for feed in feeds]
    for logits in outputs:
        assert np.isfinite(logits).all()
        assert logits.std() > 1e-3 * np.abs(logits).max()  # not constant
        assert np.abs(logits).max() > 1e-3  # neither zero nor denormal-sized
    assert not np.allclose(outputs[0], outputs[1])


def test_vad_dynamic_has_the_dynamic_shapes_of_a_speech_model(
    sample_models_dir: Path, core: ov.Core
) -> None:
    model = core.read_model(sample_models_dir / "vad_dynamic.xml")
    shapes = {p.any_name: p.get_partial_shape().to_string() for p in model.inputs}
    assert shapes == {"input": "[?,?]", "state": f"[2,?,{VAD_STATE_UNITS}]"}
    outputs = {p.any_name: p.get_partial_shape().to_string() for p in model.outputs}
    assert outputs == {"prob": "[?,1]", "state_out": f"[2,?,{VAD_STATE_UNITS}]"}


def test_write_sample_models_is_byte_deterministic(sample_models_dir: Path, tmp_path: Path) -> None:
    # Reverse order: OpenVINO's automatic node names would differ after other builds.
    written = write_sample_models(tmp_path, reversed(list(SAMPLE_MODELS)))
    assert set(written) == set(SAMPLE_MODELS)
    for name, xml_path in written.items():
        assert xml_path == tmp_path / f"{name}.xml"
        for suffix in (".xml", ".bin"):
            expected = (sample_models_dir / name).with_suffix(suffix).read_bytes()
            assert xml_path.with_suffix(suffix).read_bytes() == expected, (name, suffix)


def test_write_sample_models_subset_and_unknown_name(tmp_path: Path) -> None:
    assert write_sample_models(tmp_path / "a", ["tiny_cnn"]) == {
        "tiny_cnn": tmp_path / "a" / "tiny_cnn.xml"
    }
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["tiny_cnn.bin", "tiny_cnn.xml"]
    with pytest.raises(KeyError, match="nope"):
        write_sample_models(tmp_path / "b", ["tiny_cnn", "nope"])
    assert not (tmp_path / "b").exists()


# --- sample images ------------------------------------------------------------------------


def test_sample_images_have_the_pixels_they_claim(tmp_path: Path) -> None:
    written = write_sample_images(tmp_path)
    assert set(written) == {"red.png", "grey.png", "gradient.png"} == set(SAMPLE_IMAGES)
    width, height = SAMPLE_IMAGE_SIZE
    pixels = {}
    for name, path in written.items():
        assert path == tmp_path / name
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (width, height))
            pixels[name] = np.asarray(image)
    assert (pixels["red.png"] == [255, 0, 0]).all()
    assert (pixels["grey.png"] == [128, 128, 128]).all()
    gradient = pixels["gradient.png"]
    assert gradient[0, 0].tolist() == [0, 0, 64]
    assert gradient[height - 1, width - 1].tolist() == [255, 255, 64]
    assert (np.diff(gradient[0, :, 0].astype(int)) >= 0).all()  # red grows with x
    assert (np.diff(gradient[:, 0, 1].astype(int)) >= 0).all()  # green grows with y


def test_sample_images_are_byte_deterministic(tmp_path: Path) -> None:
    first = write_sample_images(tmp_path / "a")
    second = write_sample_images(tmp_path / "b")
    for name in SAMPLE_IMAGES:
        assert first[name].read_bytes() == second[name].read_bytes(), name


# --- factories ----------------------------------------------------------------------------


def test_tiny_model_fixture(tiny_model: Path, core: ov.Core) -> None:
    assert tiny_model.name == "tiny_cnn.xml"
    assert tiny_model.with_suffix(".bin").is_file()
    assert write_tiny_model(tiny_model.parent / "again").read_bytes() == tiny_model.read_bytes()
    logits = core.compile_model(tiny_model, "CPU")(np.ones((1, 3, 64, 64), np.float32))[0]
    assert logits.shape == (1, 10)


@pytest.mark.parametrize(
    ("shape", "element_type"),
    [((1, 3, 4, 4), ov.Type.f32), ((1, 4, 4, 3), ov.Type.f32), ((1, 3, 4, 4), ov.Type.u8)],
)
def test_identity_model_returns_its_input(
    tmp_path: Path, core: ov.Core, shape: tuple[int, ...], element_type: ov.Type
) -> None:
    path = write_identity_model(tmp_path, shape, element_type)
    compiled = core.compile_model(path, "CPU")
    assert compiled.input().any_name == "input"
    assert compiled.input().get_element_type() == element_type
    x = np.arange(np.prod(shape)).reshape(shape).astype(element_type.to_dtype())
    y = compiled(x)[compiled.output("output")]
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)


def test_nhwc_models(tmp_path: Path, core: ov.Core) -> None:
    assert list(core.read_model(write_nhwc_identity_model(tmp_path)).input().shape) == [1, 4, 4, 3]
    model = core.read_model(write_nhwc_model(tmp_path))
    assert list(model.input().shape) == [1, 32, 32, 3]
    assert model.input().get_node().get_layout().empty
    out = core.compile_model(model, "CPU")(np.ones((1, 32, 32, 3), np.float32))[0]
    assert out.shape == (1, 4)


def test_two_input_model(tmp_path: Path, core: ov.Core) -> None:
    compiled = core.compile_model(write_two_input_model(tmp_path), "CPU")
    assert [i.any_name for i in compiled.inputs] == ["image", "scale"]
    assert {o.any_name for o in compiled.outputs} == {"out_a", "out_b"}
    image = np.random.default_rng(0).uniform(0, 255, (1, 3, 32, 32)).astype(np.float32)
    scale = np.array([[1.0, -2.0, 0.5, 3.0]], np.float32)
    first = compiled({"image": image, "scale": scale})
    np.testing.assert_array_equal(first[compiled.output("out_b")], 2 * scale)
    doubled = compiled({"image": image, "scale": 2 * scale})
    np.testing.assert_allclose(
        doubled[compiled.output("out_a")], 2 * first[compiled.output("out_a")], rtol=1e-5
    )


def test_dynamic_model_runs_for_any_batch_and_size(tmp_path: Path, core: ov.Core) -> None:
    model = core.read_model(write_dynamic_model(tmp_path))
    assert model.input().any_name == "input"
    assert str(model.input().partial_shape) == "[?,3,?,?]"
    compiled = core.compile_model(model, "CPU")
    for shape in [(1, 3, 16, 16), (2, 3, 20, 24)]:
        out = compiled(np.ones(shape, np.float32))[0]
        assert out.shape == (shape[0], 4)
    model.reshape({"input": [3, 3, 8, 12]})
    assert list(core.compile_model(model, "CPU").output().shape) == [3, 4]


def test_onnx_model_reads_and_runs(tmp_path: Path, core: ov.Core) -> None:
    path = write_onnx_model(tmp_path)
    assert path.suffix == ".onnx"
    model = core.read_model(path)
    assert model.input().any_name == "input"
    assert list(model.input().shape) == [1, 3, 32, 32]
    out = core.compile_model(model, "CPU")(np.ones((1, 3, 32, 32), np.float32))[0]
    assert out.shape == (1, 4)
    assert np.isfinite(out).all()
    assert (out >= 0).all()  # ReLU then mean
    assert out.max() > 0


def test_broken_copies(tiny_model: Path, tmp_path: Path, core: ov.Core) -> None:
    broken = write_broken_copies(tiny_model, tmp_path)
    for key in ["missing_bin", "truncated_bin", "malformed_xml", "empty_xml", "garbage_onnx"]:
        with pytest.raises(RuntimeError):
            core.read_model(broken[key])
    assert not broken["missing_bin"].with_suffix(".bin").exists()
    assert broken["unknown_ext"].suffix == ".foo"
    # OpenVINO sniffs content, not suffixes: only the engine's own check can refuse this one.
    assert core.read_model(broken["unknown_ext"]).input().any_name == "input"


def test_images_have_the_pixels_they_claim(images_dir: Path, tmp_path: Path) -> None:
    width, height = KNOWN_IMAGE_SIZE
    for name, rgb in KNOWN_IMAGES.items():
        with Image.open(images_dir / name) as image:
            assert image.size == (width, height)
            pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
        expected = np.broadcast_to(np.array(rgb, np.int16), (height, width, 3))
        tolerance = JPEG_TOLERANCE if name.endswith(".jpg") else 0
        assert np.abs(pixels - expected).max() <= tolerance, name
    with Image.open(images_dir / GRADIENT_IMAGE) as image:
        gradient = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(gradient, rgb_array(width, height, gradient_rgb(width, height)))
    assert len(np.unique(gradient.reshape(-1, 3), axis=0)) == width * height

    bmp = write_gradient_image(tmp_path / "g.bmp", 5, 3)
    with Image.open(bmp) as image:
        np.testing.assert_array_equal(np.asarray(image), rgb_array(5, 3, gradient_rgb(5, 3)))
    with Image.open(write_solid_image(tmp_path / "s.png", (1, 2, 3), (2, 7))) as image:
        assert image.size == (2, 7)
        assert image.getpixel((1, 6)) == (1, 2, 3)
