"""The advice for dynamic shapes and for -b fits the model's inputs, and following it works.

The important tests here take the -shape / -data_shape / -layout value out of the error
message and run the benchmark again with it: it has to succeed (or, for -b on a model that
stays dynamic, lead to the next piece of advice, which then succeeds).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import openvino as ov
import pytest

from app.engine import model as model_mod
from app.engine import shape_advice
from app.engine.errors import DynamicShapeError, InputError
from app.engine.runner import run_benchmark
from app.engine.spec import BenchmarkResult, BenchmarkSpec
from tests.engine.model_builders import (
    write_partial_model,
    write_sequence_state_model,
    write_vector_model,
)
from tests.factories import write_dynamic_model


def _spec(model: Path, **kwargs: object) -> BenchmarkSpec:
    return BenchmarkSpec(model_path=str(model), niter=2, **kwargs)  # type: ignore[arg-type]


def advised(message: str, flag: str) -> str:
    """The value a message advises for a CLI flag: `-shape input[1,512]` -> `input[1,512]`."""
    found = re.search(rf"(?<![\w-]){re.escape(flag)} (\S+?)[.,;)]?(?=\s|$)", message)
    assert found is not None, f"no {flag} advice in: {message}"
    return found.group(1)


def advised_field(message: str, field: str) -> str:
    """The value a message advises for an API field: `"shape": "input[1,512]"`."""
    found = re.search(rf'"{re.escape(field)}": ("[^"]*")', message)
    assert found is not None, f"no {field!r} advice in: {message}"
    value: str = json.loads(found.group(1))
    return value


def _shapes(result: BenchmarkResult) -> dict[str, list[int]]:
    return {fill.input: fill.shape for fill in result.inputs}


# --- the example shape, from the partial shape and layout --------------------------------


@pytest.mark.parametrize(
    ("shape", "layout", "expected"),
    [
        ("[2,?,128]", "", [2, 1, 128]),  # the first dynamic dimension is the batch
        ("[?,?]", "", [1, 512]),
        ("[?,3,?,?]", "", [1, 3, 224, 224]),  # guessed NCHW: an image
        ("[?,?,?,3]", "", [1, 224, 224, 3]),  # guessed NHWC
        ("[?,?,?,?]", "NCHW", [1, 3, 224, 224]),
        ("[1,?]", "", [1, 512]),  # a leading static 1 is the batch: ? is a length
        ("[?,1..10]", "", [1, 10]),  # a bounded dimension takes a value inside its bounds
        ("[2..4,?]", "", [2, 512]),
        ("[?,?,8]", "?N?", [512, 1, 8]),  # N in the layout marks the batch
        ("[?,576]", "", [1, 576]),
        ("[4,16]", "", [4, 16]),  # static dimensions are kept
    ],
)
def test_example_shape_keeps_static_dims_and_fills_dynamic_ones_by_role(
    shape: str, layout: str, expected: list[int]
) -> None:
    pshape = ov.PartialShape(shape)
    port_layout = ov.Layout(layout) if layout else model_mod.guess_layout(pshape)
    example = shape_advice.example_shape(pshape, port_layout)
    assert example.dims == expected
    assert pshape.compatible(ov.PartialShape(example.dims))


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("[?,576]", "NC"),
        ("[?,?]", "NC"),
        ("[1,?]", "NC"),
        ("[2,?,128]", "?N?"),
        ("[?,8,16]", "NCW"),
        ("[?,576,7,7]", "NCHW"),
        ("[?,1,8,8,8]", "NCDHW"),
        ("[5]", "N"),
        ("[3,5]", "NC"),
    ],
)
def test_batch_layout_puts_n_where_the_batch_is(shape: str, expected: str) -> None:
    pshape = ov.PartialShape(shape)
    suggested = shape_advice.batch_layout(pshape)
    assert suggested == expected
    layout = ov.Layout(suggested)
    assert len(layout.to_string().split(",")) == pshape.rank.get_length()


# --- the dynamic-shape error, and following it --------------------------------------------


def test_every_dynamic_input_is_named_with_a_shape_of_its_rank(tmp_path: Path) -> None:
    xml = write_sequence_state_model(tmp_path)
    with pytest.raises(DynamicShapeError) as err:
        run_benchmark(_spec(xml))
    message = err.value.message
    assert "'input' [?,?]" in message and "'state' [2,?,128]" in message
    assert advised(message, "-shape") == "input[1,512],state[2,1,128]"
    assert advised(message, "-data_shape") == "input[1,512],state[2,1,128]"
    assert "224" not in message and "[1,3," not in message
    # The made-up numbers are said to be examples.
    assert "1 for the batch" in message and "512 for a length or size" in message


@pytest.mark.parametrize("api", ["sync", "async"])
def test_following_the_shape_advice_runs(tmp_path: Path, api: str) -> None:
    xml = write_sequence_state_model(tmp_path)
    with pytest.raises(DynamicShapeError) as err:
        run_benchmark(_spec(xml, api=api))
    reshaped = run_benchmark(_spec(xml, api=api, shape=advised(err.value.message, "-shape")))
    assert reshaped.status == "completed"
    assert _shapes(reshaped) == {"input": [1, 512], "state": [2, 1, 128]}

    fed = run_benchmark(_spec(xml, api=api, data_shape=advised(err.value.message, "-data_shape")))
    assert fed.status == "completed"
    assert _shapes(fed) == {"input": [1, 512], "state": [2, 1, 128]}
    assert [p.shape for p in fed.model.inputs] == ["[?,?]", "[2,?,128]"]  # kept dynamic


def test_following_the_api_advice_runs(tmp_path: Path) -> None:
    xml = write_sequence_state_model(tmp_path)
    with pytest.raises(DynamicShapeError) as err:
        run_benchmark(_spec(xml, option_names="api"))
    shape = advised_field(err.value.message, "shape")
    assert shape == "input[1,512],state[2,1,128]"
    result = run_benchmark(_spec(xml, option_names="api", shape=shape))
    assert _shapes(result) == {"input": [1, 512], "state": [2, 1, 128]}


def test_given_data_shapes_are_kept_in_the_advice(tmp_path: Path) -> None:
    xml = write_sequence_state_model(tmp_path)
    with pytest.raises(DynamicShapeError) as err:
        run_benchmark(_spec(xml, data_shape="input[1,300]"))
    message = err.value.message
    assert "'state' [2,?,128]" in message and "'input'" not in message.split(".")[0]
    data_shape = advised(message, "-data_shape")
    assert data_shape == "input[1,300],state[2,1,128]"
    result = run_benchmark(_spec(xml, data_shape=data_shape))
    assert _shapes(result) == {"input": [1, 300], "state": [2, 1, 128]}


def test_image_advice_is_an_image_shape_and_works(tmp_path: Path) -> None:
    xml = write_dynamic_model(tmp_path)
    with pytest.raises(DynamicShapeError) as err:
        run_benchmark(_spec(xml))
    assert advised(err.value.message, "-shape") == "input[1,3,224,224]"
    assert "224 for the image height and width" in err.value.message
    result = run_benchmark(_spec(xml, shape=advised(err.value.message, "-shape")))
    assert _shapes(result) == {"input": [1, 3, 224, 224]}


def test_bounded_dimension_advice_stays_in_bounds_and_works(tmp_path: Path) -> None:
    xml = write_partial_model(tmp_path, "[?,1..10]")
    with pytest.raises(DynamicShapeError) as err:
        run_benchmark(_spec(xml))
    assert advised(err.value.message, "-shape") == "input[1,10]"
    result = run_benchmark(_spec(xml, shape=advised(err.value.message, "-shape")))
    assert _shapes(result) == {"input": [1, 10]}


# --- -b without an N dimension --------------------------------------------------------------


def test_batch_without_n_advises_a_layout_of_the_inputs_rank_that_works(tmp_path: Path) -> None:
    xml = write_vector_model(tmp_path)
    with pytest.raises(InputError) as err:
        run_benchmark(_spec(xml, batch=1))
    message = err.value.message
    assert "NCHW" not in message
    layout = advised(message, "-layout")
    assert layout == "input[NC]"
    for batch in (1, 4):
        result = run_benchmark(_spec(xml, batch=batch, layout=layout))
        assert _shapes(result) == {"input": [batch, 576]}
        assert result.config.batch_size == batch


def test_batch_advice_then_shape_advice_lead_to_a_run(tmp_path: Path) -> None:
    xml = write_sequence_state_model(tmp_path)
    with pytest.raises(InputError) as err:
        run_benchmark(_spec(xml, batch=2))
    layout = advised(err.value.message, "-layout")
    assert layout == "input[NC],state[?N?]"
    # -b now sets both batches; the input's length stays dynamic: the next advice says so.
    with pytest.raises(DynamicShapeError) as err:
        run_benchmark(_spec(xml, batch=2, layout=layout))
    shape = advised(err.value.message, "-shape")
    assert shape == "input[2,512]"
    result = run_benchmark(_spec(xml, batch=2, layout=layout, shape=shape))
    assert _shapes(result) == {"input": [2, 512], "state": [2, 2, 128]}
    assert result.config.batch_size == 2


def test_batch_advice_after_a_reshape_keeps_n_where_the_model_has_it(tmp_path: Path) -> None:
    # -shape makes state [2,?,128] a static [2,1,128]: its batch is still the second dimension.
    xml = write_sequence_state_model(tmp_path)
    shape = "input[1,512],state[2,1,128]"
    with pytest.raises(InputError) as err:
        run_benchmark(_spec(xml, shape=shape, batch=4))
    layout = advised(err.value.message, "-layout")
    assert layout == "input[NC],state[?N?]"
    result = run_benchmark(_spec(xml, shape=shape, batch=4, layout=layout))
    assert _shapes(result) == {"input": [4, 512], "state": [2, 4, 128]}
    assert result.config.batch_size == 4
