"""Factories for tests: tiny models, images and broken files, written into a given directory.

Plain functions, not fixtures: each one writes files and returns their paths, so a test (or a
fixture in conftest.py) picks exactly what it needs. Models are built with OpenVINO's graph
API and saved as IR (.xml + .bin, f32 weights) except `write_onnx_model`. No model sets a
layout on its inputs: the engine has to guess it, as benchmark_app does.

Images: use PNG or BMP when a test compares exact pixel values; JPEG is lossy (a solid colour
comes back within a few levels, see `JPEG_TOLERANCE`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import openvino as ov
import openvino.opset16 as ops
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from app.engine.samples import build_tiny_cnn, named_parameter, named_result

RGB = tuple[int, int, int]

# Known images written by `write_known_images`: file name -> solid RGB colour. Non-square
# (width 8, height 6) so that a swapped H and W shows up.
KNOWN_IMAGES: dict[str, RGB] = {
    "red.png": (255, 0, 0),
    "green.bmp": (0, 255, 0),
    "blue.jpg": (0, 0, 255),
    "grey.png": (128, 128, 128),
}
KNOWN_IMAGE_SIZE = (8, 6)  # (width, height)
GRADIENT_IMAGE = "gradient.png"
# Largest per-channel difference a solid colour shows after a JPEG round trip.
JPEG_TOLERANCE = 4

_SEED = 1234


# --- models -------------------------------------------------------------------------------


def _save(model: ov.Model, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, path, compress_to_fp16=False)
    return path


def _conv_relu_pool(x: ov.Output, in_channels: int, out_channels: int, name: str) -> ov.Output:
    """3x3 conv (same padding) + ReLU + mean over H, W: [N,C,H,W] -> [N,out_channels]."""
    rng = np.random.default_rng(_SEED)
    weights = rng.standard_normal((out_channels, in_channels, 3, 3), dtype=np.float32)
    weights *= np.float32(np.sqrt(2.0 / (in_channels * 9)))
    conv = ops.convolution(
        x,
        ops.constant(weights, name=f"{name}/weights"),
        strides=[1, 1],
        pads_begin=[1, 1],
        pads_end=[1, 1],
        dilations=[1, 1],
        name=f"{name}/conv",
    )
    relu = ops.relu(conv, name=f"{name}/relu")
    axes = ops.constant(np.array([2, 3], dtype=np.int64), name=f"{name}/axes")
    return ops.reduce_mean(relu, axes, name=f"{name}/pool").output(0)


def write_tiny_model(directory: Path) -> Path:
    """`samples.build_tiny_cnn` as `<directory>/tiny_cnn.xml`: "input" [1,3,64,64] -> "logits" [1,10]."""
    return _save(build_tiny_cnn(), Path(directory) / "tiny_cnn.xml")


def write_nhwc_model(directory: Path) -> Path:
    """An NHWC image model: "input" f32 [1,32,32,3] -> transpose, conv, pool -> "output" [1,4].

    The layout is guessable as NHWC (last dim 3 <= 4 < dim 1) but not set on the model.
    """
    param = named_parameter("input", [1, 32, 32, 3])
    order = ops.constant(np.array([0, 3, 1, 2], dtype=np.int64), name="to_nchw/order")
    nchw = ops.transpose(param, order, name="to_nchw")
    out = _conv_relu_pool(nchw.output(0), 3, 4, "features")
    model = ov.Model([named_result(out, "output")], [param], "nhwc_model")
    return _save(model, Path(directory) / "nhwc_model.xml")


def write_two_input_model(directory: Path) -> Path:
    """Two inputs, two outputs: an image and a non-image vector.

    Inputs: "image" f32 [1,3,32,32], "scale" f32 [1,4].
    Outputs: "out_a" [1,4] = GAP(ReLU(conv(image))) * scale; "out_b" [1,4] = 2 * scale exactly,
    so a test can read back the very "scale" tensor the engine fed.
    """
    image = named_parameter("image", [1, 3, 32, 32])
    scale = named_parameter("scale", [1, 4])
    features = _conv_relu_pool(image.output(0), 3, 4, "features")
    out_a = ops.multiply(features, scale, name="out_a")
    two = ops.constant(np.array([[2.0]], dtype=np.float32), name="two")
    out_b = ops.multiply(scale, two, name="out_b")
    model = ov.Model(
        [named_result(out_a.output(0), "out_a"), named_result(out_b.output(0), "out_b")],
        [image, scale],
        "two_input_model",
    )
    return _save(model, Path(directory) / "two_input_model.xml")


def write_dynamic_model(directory: Path) -> Path:
    """A dynamic model: "input" f32 [?,3,?,?] -> conv, ReLU, global mean -> "output" [?,4]."""
    param = named_parameter("input", [-1, 3, -1, -1])
    out = _conv_relu_pool(param.output(0), 3, 4, "features")
    model = ov.Model([named_result(out, "output")], [param], "dynamic_model")
    return _save(model, Path(directory) / "dynamic_model.xml")


def write_identity_model(
    directory: Path,
    shape: tuple[int, ...] = (1, 3, 4, 4),
    element_type: ov.Type = ov.Type.f32,
) -> Path:
    """An identity model: "output" == "input" exactly (a Multiply by 1 of the same type).

    Lets a test check the very tensor the engine fed (BGR vs RGB, NCHW vs NHWC, scaling).
    The file name carries shape and type, so variants can share a directory:
    `identity_1x3x4x4_f32.xml`. For NHWC use `shape=(1, 4, 4, 3)` or `write_nhwc_identity_model`.
    """
    param = named_parameter("input", list(shape), element_type)
    one = ops.constant(np.ones((), dtype=element_type.to_dtype()), name="one")
    out = ops.multiply(param, one, name="identity")
    model = ov.Model([named_result(out.output(0), "output")], [param], "identity_model")
    name = f"identity_{'x'.join(str(d) for d in shape)}_{element_type.get_type_name()}.xml"
    return _save(model, Path(directory) / name)


def write_nhwc_identity_model(directory: Path, element_type: ov.Type = ov.Type.f32) -> Path:
    """`write_identity_model` with the NHWC shape [1,4,4,3]."""
    return write_identity_model(directory, (1, 4, 4, 3), element_type)


def write_onnx_model(directory: Path) -> Path:
    """A real ONNX file: "input" f32 [1,3,32,32] -> Conv, Relu, GlobalAveragePool, Flatten -> "output" [1,4].

    Opset 17, IR version 8 (readable by OpenVINO's ONNX frontend).
    """
    rng = np.random.default_rng(_SEED)
    weights = (rng.standard_normal((4, 3, 3, 3)) * np.sqrt(2.0 / 27)).astype(np.float32)
    bias = np.zeros(4, dtype=np.float32)
    nodes = [
        helper.make_node(
            "Conv", ["input", "W", "B"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["output"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_onnx",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
        producer_name="ovbench-tests",
    )
    onnx.checker.check_model(model)
    path = Path(directory) / "tiny.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_broken_copies(src_xml: Path, directory: Path) -> dict[str, Path]:
    """Broken variants of a valid IR (`src_xml` + its .bin) for error-path tests.

    Keys: "missing_bin" (xml without its .bin), "truncated_bin" (.bin cut in half),
    "malformed_xml" (garbage xml, valid .bin beside it), "empty_xml" (0 bytes),
    "garbage_onnx" (random bytes named .onnx): `ov.Core().read_model` raises RuntimeError on
    each. "unknown_ext" is the valid IR renamed `model.foo` (+ `model.bin`), which
    `read_model` ACCEPTS (it sniffs content): only a suffix check rejects it.
    """
    src_xml = Path(src_xml)
    src_bin = src_xml.with_suffix(".bin")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    missing_bin = directory / "missing_bin.xml"
    shutil.copyfile(src_xml, missing_bin)
    paths["missing_bin"] = missing_bin

    truncated = directory / "truncated_bin.xml"
    shutil.copyfile(src_xml, truncated)
    weights = src_bin.read_bytes()
    truncated.with_suffix(".bin").write_bytes(weights[: len(weights) // 2])
    paths["truncated_bin"] = truncated

    malformed = directory / "malformed_xml.xml"
    malformed.write_text('<?xml version="1.0"?>\n<net name="broken" version="11">\n<layers><layer')
    shutil.copyfile(src_bin, malformed.with_suffix(".bin"))
    paths["malformed_xml"] = malformed

    empty = directory / "empty_xml.xml"
    empty.write_bytes(b"")
    paths["empty_xml"] = empty

    garbage = directory / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(_SEED).bytes(1024))
    paths["garbage_onnx"] = garbage

    # OpenVINO picks a frontend by content, not by suffix: with its .bin beside it, this file
    # reads fine, so only the engine's own suffix check can turn it away.
    unknown = directory / "model.foo"
    shutil.copyfile(src_xml, unknown)
    shutil.copyfile(src_bin, unknown.with_suffix(".bin"))
    paths["unknown_ext"] = unknown
    return paths


# --- images -------------------------------------------------------------------------------


def rgb_array(width: int, height: int, rgb_fn: Callable[[int, int], RGB]) -> np.ndarray:
    """The uint8 [height, width, 3] RGB pixels `rgb_fn(x, y)` describes."""
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            pixels[y, x] = rgb_fn(x, y)
    return pixels


def write_image(path: Path, width: int, height: int, rgb_fn: Callable[[int, int], RGB]) -> Path:
    """Write an RGB image whose pixel (x, y) is `rgb_fn(x, y)`; the suffix picks the format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(rgb_array(width, height, rgb_fn), mode="RGB")
    if path.suffix.lower() in {".jpg", ".jpeg"}:
        # Best-effort fidelity: no chroma subsampling, high quality. Still lossy.
        image.save(path, quality=95, subsampling=0)
    else:
        image.save(path)
    return path


def write_solid_image(path: Path, rgb: RGB, size: tuple[int, int] = KNOWN_IMAGE_SIZE) -> Path:
    """A solid-colour image of `size` = (width, height)."""
    return write_image(path, size[0], size[1], lambda _x, _y: rgb)


def gradient_rgb(width: int, height: int) -> Callable[[int, int], RGB]:
    """Red grows with x, green with y, blue is 64: every pixel of the image is distinct."""

    def rgb_fn(x: int, y: int) -> RGB:
        return (x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), 64)

    return rgb_fn


def write_gradient_image(path: Path, width: int = 8, height: int = 6) -> Path:
    """An image with `gradient_rgb` pixels; compute the expected ones with `rgb_array`."""
    return write_image(path, width, height, gradient_rgb(width, height))


def write_known_images(directory: Path) -> Path:
    """Write `KNOWN_IMAGES` (solid, `KNOWN_IMAGE_SIZE`) and `GRADIENT_IMAGE` into `directory`."""
    directory = Path(directory)
    for name, rgb in KNOWN_IMAGES.items():
        write_solid_image(directory / name, rgb)
    write_gradient_image(directory / GRADIENT_IMAGE, *KNOWN_IMAGE_SIZE)
    return directory
