"""Models for the engine's message tests: dynamic shapes that are not images, and ONNX and
TFLite files that OpenVINO reads but cannot convert.

Plain functions like `tests/factories.py`: each writes a file into `directory` and returns
its path. IR models are built with OpenVINO's graph API; the ONNX files with `onnx.helper`;
the TFLite files are FlatBuffers written with the `tflite` package's generated builders.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import onnx
import openvino as ov
import openvino.opset16 as ops
import tflite
from onnx import TensorProto, helper, numpy_helper

from app.engine.samples import named_parameter, named_result


def _save(model: ov.Model, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, path, compress_to_fp16=False)
    return path


def write_sequence_state_model(directory: Path) -> Path:
    """The issue's model: "input" f32 [?,?] and "state" f32 [2,?,128] (no image anywhere).

    Outputs: "total" = sum of "input" over its last axis, "next_state" = 2 * "state": any
    static shape of the right rank runs.
    """
    tokens = named_parameter("input", ov.PartialShape([-1, -1]))
    state = named_parameter("state", ov.PartialShape([2, -1, 128]))
    axis = ops.constant(np.array([1], dtype=np.int64))
    total = ops.reduce_sum(tokens, axis, keep_dims=True)
    two = ops.constant(np.array(2.0, dtype=np.float32))
    doubled = ops.multiply(state, two)
    model = ov.Model(
        [named_result(total.output(0), "total"), named_result(doubled.output(0), "next_state")],
        [tokens, state],
        "sequence_state",
    )
    return _save(model, Path(directory) / "sequence_state.xml")


def write_partial_model(directory: Path, shape: str, name: str = "input") -> Path:
    """One input of the given partial shape (e.g. "[?,576]", "[1..10,?]"), output 2 * input."""
    param = named_parameter(name, ov.PartialShape(shape))
    two = ops.constant(np.array(2.0, dtype=np.float32))
    out = ops.multiply(param, two)
    model = ov.Model([named_result(out.output(0), "output")], [param], "partial")
    dims = shape.strip("[]").replace("..", "to").replace("?", "x").replace(",", "_")
    stem = f"partial_{dims}"
    return _save(model, Path(directory) / f"{stem}.xml")


def write_vector_model(directory: Path) -> Path:
    """The issue's `-b` case: "input" f32 [?,576] -> MatMul [576,10] -> "output" [?,10]."""
    param = named_parameter("input", ov.PartialShape([-1, 576]))
    weights = np.random.default_rng(7).standard_normal((576, 10)).astype(np.float32)
    out = ops.matmul(param, ops.constant(weights), False, False)
    model = ov.Model([named_result(out.output(0), "output")], [param], "vector")
    return _save(model, Path(directory) / "vector.xml")


# --- files OpenVINO reads but cannot convert -------------------------------------------------


def _save_onnx(graph: onnx.GraphProto, path: Path, domains: tuple[str, ...] = ()) -> Path:
    opsets = [helper.make_opsetid("", 17), *(helper.make_opsetid(d, 1) for d in domains)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_onnx_unknown_rank_conv(directory: Path, name: str = "unknown_rank.onnx") -> Path:
    """A Conv whose data input has no shape at all (unknown rank): OpenVINO's ONNX frontend
    fails it with "The input data tensor's rank has to be known (static)"."""
    weights = numpy_helper.from_array(np.ones((4, 3, 3, 3), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3])],
        "unknown_rank",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[weights],
    )
    return _save_onnx(graph, Path(directory) / name)


def write_onnx_custom_op(directory: Path, name: str = "custom_op.onnx") -> Path:
    """One node of a custom domain (`com.example.MyOp`) that no frontend converts."""
    graph = helper.make_graph(
        [helper.make_node("MyOp", ["x"], ["y"], domain="com.example")],
        "custom_op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return _save_onnx(graph, Path(directory) / name, domains=("com.example",))


def _int_vector(builder: flatbuffers.Builder, values: list[int]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependInt32(value)
    return builder.EndVector()


def _table_vector(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def tflite_bytes(custom_code: str | None) -> bytes:
    """A one-operator TFLite model "input" f32 [1,4] -> "output" f32 [1,4].

    The operator is the builtin RELU, or with `custom_code` a CUSTOM operator of that name
    (what TensorFlow Lite writes for ops it has no builtin for).
    """
    b = flatbuffers.Builder(1024)
    tensors = []
    for tensor_name in ("input", "output"):
        name = b.CreateString(tensor_name)
        shape = _int_vector(b, [1, 4])
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(b, 0)
        tflite.TensorAddName(b, name)
        tensors.append(tflite.TensorEnd(b))
    tensor_vector = _table_vector(b, tensors)
    op_inputs, op_outputs = _int_vector(b, [0]), _int_vector(b, [1])
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, op_inputs)
    tflite.OperatorAddOutputs(b, op_outputs)
    operators = _table_vector(b, [tflite.OperatorEnd(b)])
    graph_inputs, graph_outputs = _int_vector(b, [0]), _int_vector(b, [1])
    graph_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vector)
    tflite.SubGraphAddInputs(b, graph_inputs)
    tflite.SubGraphAddOutputs(b, graph_outputs)
    tflite.SubGraphAddOperators(b, operators)
    tflite.SubGraphAddName(b, graph_name)
    subgraphs = _table_vector(b, [tflite.SubGraphEnd(b)])
    code = tflite.BuiltinOperator.CUSTOM if custom_code else tflite.BuiltinOperator.RELU
    custom = b.CreateString(custom_code) if custom_code else None
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, code)
    tflite.OperatorCodeAddBuiltinCode(b, code)
    if custom is not None:
        tflite.OperatorCodeAddCustomCode(b, custom)
    tflite.OperatorCodeAddVersion(b, 1)
    operator_codes = _table_vector(b, [tflite.OperatorCodeEnd(b)])
    tflite.BufferStart(b)
    buffers = _table_vector(b, [tflite.BufferEnd(b)])  # buffer 0: the empty sentinel
    description = b.CreateString("ovbench tests")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, operator_codes)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddBuffers(b, buffers)
    tflite.ModelAddDescription(b, description)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def write_tflite_model(directory: Path, custom_code: str | None, name: str) -> Path:
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tflite_bytes(custom_code))
    return path
