"""Sample models built in code with OpenVINO's graph API: nothing is downloaded.

Three real topologies for demos, the CLI's `make-models` and the tests, and one model with
dynamic shapes to try `-shape` and `-data_shape` on:

- `resnet50`: ResNet-50 v1.5, [1,3,224,224] -> [1,1000] logits, about 25.5M parameters.
- `mobilenet_v2`: MobileNetV2 (width 1.0), [1,3,224,224] -> [1,1000] logits, about 3.5M parameters.
- `tiny_cnn`: two small convolutions, [1,3,64,64] -> [1,10] logits; infers in microseconds.
- `vad_dynamic`: shaped like a voice-activity detector: audio "input" [?,?] (batch, samples)
  and a recurrent "state" [2,?,128] (layers, batch, units) -> "prob" [?,1] and "state_out"
  [2,?,128]. Nothing in it is static but the state's layers and units, so it runs only once
  its shapes are given.

The weights are pseudo-random but deterministic (a fixed seed per model) and He-scaled, with
BatchNorm folded into each convolution's weights and bias as a converted IR would have it. The
residual branches are damped so activations stay finite and non-degenerate through the whole
network for both unit-scale and 0..255 inputs: the timings are those of the real topology, the
predictions are meaningless.

Every node gets an explicit friendly name, so `write_sample_models` writes the same bytes for
the same model in every run (OpenVINO's automatic names come from a process-wide counter).
No layout is set on the inputs: consumers have to guess NCHW, as benchmark_app does.

`write_sample_images` writes a few small PNGs to feed them (`SAMPLE_IMAGES`: solid red, solid
grey and a gradient, 224 x 224), drawn with numpy and saved with Pillow: the same bytes every
run, nothing downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset16 as ops  # opset17's module only carries the ops new in 17
from PIL import Image

__all__ = [
    "SAMPLE_IMAGES",
    "SAMPLE_IMAGE_SIZE",
    "SAMPLE_MODELS",
    "build_mobilenet_v2",
    "build_resnet50",
    "build_tiny_cnn",
    "build_vad_dynamic",
    "named_parameter",
    "named_result",
    "write_sample_images",
    "write_sample_models",
]

INPUT_NAME = "input"
OUTPUT_NAME = "logits"

_RESNET50_SEED = 50
_MOBILENET_V2_SEED = 2
_TINY_CNN_SEED = 10
_VAD_DYNAMIC_SEED = 16
VAD_STATE_UNITS = 128

# Scale of a residual branch's last convolution (a small folded BN gamma, as in
# "zero-init residual" training): keeps the variance from doubling at every block.
_RESIDUAL_GAIN = 0.25


class _GraphBuilder:
    """Creates named nodes with deterministic He-scaled weights, one model at a time."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def _constant(self, array: np.ndarray, name: str) -> ov.Node:
        return ops.constant(np.ascontiguousarray(array, dtype=np.float32), name=name)

    def _axes(self, values: list[int], name: str) -> ov.Node:
        return ops.constant(np.array(values, dtype=np.int64), name=name)

    def _weights(self, shape: tuple[int, ...], fan_in: int, gain: float) -> np.ndarray:
        std = gain * np.sqrt(2.0 / fan_in)
        return (self._rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    def _bias(self, channels: int, name: str) -> ov.Node:
        bias = self._rng.normal(0.0, 0.01, size=(1, channels, 1, 1)).astype(np.float32)
        return self._constant(bias, f"{name}/bias")

    def conv(
        self,
        x: ov.Output,
        in_channels: int,
        out_channels: int,
        kernel: int,
        name: str,
        stride: int = 1,
        gain: float = 1.0,
    ) -> ov.Output:
        """Convolution + folded-BN bias, padded to keep ceil(H / stride)."""
        weights = self._weights(
            (out_channels, in_channels, kernel, kernel), in_channels * kernel * kernel, gain
        )
        return self._padded(ops.convolution, x, weights, out_channels, stride, name)

    def depthwise_conv(
        self, x: ov.Output, channels: int, kernel: int, name: str, stride: int = 1
    ) -> ov.Output:
        """Depthwise convolution as a GroupConvolution with one channel per group."""
        weights = self._weights((channels, 1, 1, kernel, kernel), kernel * kernel, 1.0)
        return self._padded(ops.group_convolution, x, weights, channels, stride, name)

    def _padded(
        self,
        op: Callable[..., ov.Node],
        x: ov.Output,
        weights: np.ndarray,
        out_channels: int,
        stride: int,
        name: str,
    ) -> ov.Output:
        """`op` (a convolution) with `weights`, padded to keep ceil(H / stride), plus bias."""
        pad = weights.shape[-1] // 2
        conv = op(
            x,
            self._constant(weights, f"{name}/weights"),
            strides=[stride, stride],
            pads_begin=[pad, pad],
            pads_end=[pad, pad],
            dilations=[1, 1],
            name=name,
        )
        return ops.add(conv, self._bias(out_channels, name), name=f"{name}/add").output(0)

    def relu(self, x: ov.Output, name: str) -> ov.Output:
        return ops.relu(x, name=name).output(0)

    def relu6(self, x: ov.Output, name: str) -> ov.Output:
        return ops.clamp(x, 0.0, 6.0, name=name).output(0)

    def add(self, a: ov.Output, b: ov.Output, name: str) -> ov.Output:
        return ops.add(a, b, name=name).output(0)

    def max_pool(self, x: ov.Output, kernel: int, stride: int, pad: int, name: str) -> ov.Output:
        pool = ops.max_pool(
            x,
            strides=[stride, stride],
            dilations=[1, 1],
            pads_begin=[pad, pad],
            pads_end=[pad, pad],
            kernel_shape=[kernel, kernel],
            name=name,
        )
        return pool.output(0)

    def global_avg_pool(self, x: ov.Output, name: str) -> ov.Output:
        """Mean over H and W: [N,C,H,W] -> [N,C]."""
        return ops.reduce_mean(x, self._axes([2, 3], f"{name}/axes"), name=name).output(0)

    def fully_connected(
        self, x: ov.Output, in_features: int, out_features: int, name: str
    ) -> ov.Output:
        """MatMul with [out, in] weights (transpose_b, as converted IRs store it) + bias."""
        weights = self._rng.standard_normal((out_features, in_features), dtype=np.float32)
        weights *= np.float32(np.sqrt(1.0 / in_features))
        bias = self._rng.normal(0.0, 0.01, size=(1, out_features)).astype(np.float32)
        matmul = ops.matmul(
            x,
            self._constant(weights, f"{name}/weights"),
            transpose_a=False,
            transpose_b=True,
            name=f"{name}/matmul",
        )
        return ops.add(matmul, self._constant(bias, f"{name}/bias"), name=name).output(0)


def named_parameter(
    name: str, shape: list[int] | ov.PartialShape, element_type: ov.Type = ov.Type.f32
) -> ov.Node:
    """A model input whose node and tensor are both called `name`."""
    param = ops.parameter(shape, element_type, name=name)
    param.output(0).get_tensor().set_names({name})
    return param


def named_result(x: ov.Output, name: str) -> ov.Node:
    """A model output whose producing node and tensor are both called `name`."""
    x.get_node().set_friendly_name(name)
    x.get_tensor().set_names({name})
    return ops.result(x, name=f"{name}/sink_port_0")


def _image_input(shape: list[int]) -> ov.Node:
    return named_parameter(INPUT_NAME, shape)


def _make_model(param: ov.Node, logits: ov.Output, model_name: str) -> ov.Model:
    return ov.Model([named_result(logits, OUTPUT_NAME)], [param], model_name)


def _bottleneck(
    g: _GraphBuilder,
    x: ov.Output,
    in_channels: int,
    width: int,
    stride: int,
    name: str,
) -> ov.Output:
    """ResNet v1.5 bottleneck: 1x1 -> 3x3 (carries the stride) -> 1x1 (4 * width)."""
    out_channels = 4 * width
    y = g.relu(g.conv(x, in_channels, width, 1, f"{name}.conv1"), f"{name}.relu1")
    y = g.relu(g.conv(y, width, width, 3, f"{name}.conv2", stride=stride), f"{name}.relu2")
    y = g.conv(y, width, out_channels, 1, f"{name}.conv3", gain=_RESIDUAL_GAIN)
    if stride != 1 or in_channels != out_channels:
        shortcut = g.conv(x, in_channels, out_channels, 1, f"{name}.downsample", stride=stride)
    else:
        shortcut = x
    return g.relu(g.add(y, shortcut, f"{name}.add"), f"{name}.relu3")


def build_resnet50() -> ov.Model:
    """ResNet-50 v1.5: input "input" f32 [1,3,224,224], output "logits" f32 [1,1000]."""
    g = _GraphBuilder(_RESNET50_SEED)
    param = _image_input([1, 3, 224, 224])
    x = g.relu(g.conv(param.output(0), 3, 64, 7, "conv1", stride=2), "relu1")
    x = g.max_pool(x, kernel=3, stride=2, pad=1, name="maxpool")
    channels = 64
    for stage, (width, blocks, first_stride) in enumerate(
        [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1
    ):
        for block in range(blocks):
            stride = first_stride if block == 0 else 1
            x = _bottleneck(g, x, channels, width, stride, f"layer{stage}.{block}")
            channels = 4 * width
    x = g.global_avg_pool(x, "avgpool")
    logits = g.fully_connected(x, channels, 1000, "fc")
    return _make_model(param, logits, "resnet50")


# MobileNetV2's table: expansion t, output channels c, repeats n, first stride s.
_MOBILENET_V2_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def _inverted_residual(
    g: _GraphBuilder,
    x: ov.Output,
    in_channels: int,
    out_channels: int,
    stride: int,
    expansion: int,
    name: str,
) -> ov.Output:
    """Expand 1x1 + ReLU6, depthwise 3x3 + ReLU6, linear 1x1 projection, residual if shapes match."""
    hidden = in_channels * expansion
    use_residual = stride == 1 and in_channels == out_channels
    y = x
    if expansion != 1:
        y = g.relu6(g.conv(y, in_channels, hidden, 1, f"{name}.expand"), f"{name}.expand_relu6")
    y = g.relu6(g.depthwise_conv(y, hidden, 3, f"{name}.dw", stride=stride), f"{name}.dw_relu6")
    # A linear bottleneck: no ReLU follows, so a gain of 1/sqrt(2) keeps the variance.
    gain = _RESIDUAL_GAIN if use_residual else float(np.sqrt(0.5))
    y = g.conv(y, hidden, out_channels, 1, f"{name}.project", gain=gain)
    return g.add(y, x, f"{name}.add") if use_residual else y


def build_mobilenet_v2() -> ov.Model:
    """MobileNetV2 1.0: input "input" f32 [1,3,224,224], output "logits" f32 [1,1000]."""
    g = _GraphBuilder(_MOBILENET_V2_SEED)
    param = _image_input([1, 3, 224, 224])
    x = g.relu6(g.conv(param.output(0), 3, 32, 3, "features.0", stride=2), "features.0.relu6")
    channels = 32
    index = 1
    for expansion, out_channels, repeats, first_stride in _MOBILENET_V2_SETTINGS:
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            x = _inverted_residual(
                g, x, channels, out_channels, stride, expansion, f"features.{index}"
            )
            channels = out_channels
            index += 1
    x = g.relu6(g.conv(x, channels, 1280, 1, f"features.{index}"), f"features.{index}.relu6")
    x = g.global_avg_pool(x, "avgpool")
    logits = g.fully_connected(x, 1280, 1000, "classifier")
    return _make_model(param, logits, "mobilenet_v2")


def build_tiny_cnn() -> ov.Model:
    """A tiny CNN for fast tests: input "input" f32 [1,3,64,64], output "logits" f32 [1,10]."""
    g = _GraphBuilder(_TINY_CNN_SEED)
    param = _image_input([1, 3, 64, 64])
    x = g.relu(g.conv(param.output(0), 3, 8, 3, "conv1", stride=2), "relu1")
    x = g.relu(g.conv(x, 8, 16, 3, "conv2", stride=2), "relu2")
    x = g.max_pool(x, kernel=2, stride=2, pad=0, name="pool")
    x = g.global_avg_pool(x, "avgpool")
    logits = g.fully_connected(x, 16, 10, "fc")
    return _make_model(param, logits, "tiny_cnn")


def build_vad_dynamic() -> ov.Model:
    """Dynamic shapes, as speech models have them: "input" f32 [?,?] and "state" f32
    [2,?,128] -> "prob" f32 [?,1] and "state_out" f32 [2,?,128]."""
    g = _GraphBuilder(_VAD_DYNAMIC_SEED)
    units = VAD_STATE_UNITS
    audio = named_parameter(INPUT_NAME, [-1, -1])
    state = named_parameter("state", [2, -1, units])
    axis_samples = ops.constant(np.array([1], dtype=np.int64), name="axis_samples")
    energy = ops.reduce_mean(ops.abs(audio, name="abs"), axis_samples, True, name="energy")
    axis_layers = ops.constant(np.array([0], dtype=np.int64), name="axis_layers")
    hidden = ops.reduce_mean(state, axis_layers, False, name="hidden")  # [?, units]
    mixed = ops.add(g.fully_connected(hidden.output(0), units, units, "recur"), energy, name="mix")
    new_hidden = ops.tanh(mixed, name="new_hidden")
    logit = g.fully_connected(new_hidden.output(0), units, 1, "classifier")
    prob = ops.sigmoid(logit, name="prob").output(0)
    layer = ops.unsqueeze(new_hidden, axis_layers)
    layer.set_friendly_name("layer")  # unsqueeze takes no name: keep the bytes deterministic
    state_out = ops.concat([layer, layer], 0, name="state_out").output(0)
    results = [named_result(prob, "prob"), named_result(state_out, "state_out")]
    return ov.Model(results, [audio, state], "vad_dynamic")


SAMPLE_MODELS: dict[str, Callable[[], ov.Model]] = {
    "resnet50": build_resnet50,
    "mobilenet_v2": build_mobilenet_v2,
    "tiny_cnn": build_tiny_cnn,
    "vad_dynamic": build_vad_dynamic,
}


def write_sample_models(out_dir: Path, names: Iterable[str] | None = None) -> dict[str, Path]:
    """Write `<out_dir>/<name>.xml` (+ `.bin`, f32 weights) for each name; return the xml paths.

    `names` defaults to every entry of `SAMPLE_MODELS`; an unknown name raises `KeyError`
    before anything is written.
    """
    selected = list(SAMPLE_MODELS) if names is None else list(names)
    unknown = [name for name in selected if name not in SAMPLE_MODELS]
    if unknown:
        raise KeyError(f"unknown sample model(s) {unknown}; known: {sorted(SAMPLE_MODELS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in selected:
        xml_path = out_dir / f"{name}.xml"
        ov.save_model(SAMPLE_MODELS[name](), xml_path, compress_to_fp16=False)
        paths[name] = xml_path
    return paths


SAMPLE_IMAGE_SIZE = (224, 224)  # (width, height): ResNet-50's and MobileNetV2's input


def _solid(rgb: tuple[int, int, int]) -> Callable[[int, int], np.ndarray]:
    def pixels(width: int, height: int) -> np.ndarray:
        return np.broadcast_to(np.array(rgb, dtype=np.uint8), (height, width, 3))

    return pixels


def _gradient(width: int, height: int) -> np.ndarray:
    """Red grows with x, green with y, blue is 64."""
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = (np.arange(width) * 255 // max(width - 1, 1))[np.newaxis, :]
    pixels[..., 1] = (np.arange(height) * 255 // max(height - 1, 1))[:, np.newaxis]
    pixels[..., 2] = 64
    return pixels


# File name -> (width, height) -> uint8 RGB pixels [height, width, 3].
SAMPLE_IMAGES: dict[str, Callable[[int, int], np.ndarray]] = {
    "red.png": _solid((255, 0, 0)),
    "grey.png": _solid((128, 128, 128)),
    "gradient.png": _gradient,
}


def write_sample_images(out_dir: Path) -> dict[str, Path]:
    """Write every entry of `SAMPLE_IMAGES` (RGB PNG, `SAMPLE_IMAGE_SIZE`) into `out_dir`.

    Returns file name -> path. The bytes are the same in every run.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, pixels in SAMPLE_IMAGES.items():
        path = out_dir / name
        Image.fromarray(np.ascontiguousarray(pixels(*SAMPLE_IMAGE_SIZE))).save(path)
        paths[name] = path
    return paths
