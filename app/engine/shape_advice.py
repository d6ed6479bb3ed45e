"""Advice that can be followed as given: example static shapes for dynamic inputs, and
layouts that mark the batch, built from each input's rank and known dimensions."""

from __future__ import annotations

from dataclasses import dataclass, field

import openvino as ov

from app.engine.inputs import IMAGE_LAYOUTS
from app.engine.spec import OptionNames, option_example, option_name

# The values that stand in for a dynamic dimension in advice, by what the dimension is.
EXAMPLE_BATCH = 1
EXAMPLE_IMAGE_SIDE = 224
EXAMPLE_CHANNELS = 3
EXAMPLE_SIZE = 512  # a sequence length, a feature count: any size that is not an image side
# Layouts for -b advice when the batch is the first dimension, by rank.
_BATCH_FIRST_LAYOUTS = {1: "N", 2: "NC", 3: "NCW", 4: "NCHW", 5: "NCDHW"}


@dataclass
class ShapeExample:
    """A static shape that fits a partial shape, and the made-up values in it."""

    dims: list[int]
    # (value, what it stands for), e.g. (1, "the batch"), in order of first use.
    made_up: list[tuple[int, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return ",".join(str(d) for d in self.dims)


def _batch_index(pshape: ov.PartialShape, layout: ov.Layout) -> int | None:
    """Where the batch is: N in the layout; else the first dimension when it is a static 1;
    else the first dynamic dimension (the state [2,?,128] of a 2-layer RNN has it second)."""
    rank = pshape.rank.get_length()
    if layout.has_name("N"):
        index: int = layout.get_index_by_name("N")
        return index + rank if index < 0 else index
    dims = list(pshape)
    if dims and dims[0].is_static and dims[0].get_length() == 1:
        return 0
    return next((i for i, d in enumerate(dims) if d.is_dynamic), None)


def _within(value: int, dim: ov.Dimension) -> int:
    """`value`, moved inside a bounded dimension's range (`1..10` takes at most 10)."""
    value = max(value, dim.get_min_length())
    high = dim.get_max_length()
    return min(value, high) if high >= 0 else value


def example_shape(pshape: ov.PartialShape, layout: ov.Layout) -> ShapeExample:
    """A static shape for a dynamic input, for advice that can be followed as given.

    Static dimensions are kept; the batch (see `_batch_index`) becomes 1; in an image layout
    (NCHW, NHWC, CHW, HWC) H and W become 224 and C 3; any other dynamic dimension becomes
    512. A bounded dimension takes a value inside its bounds. A dynamic rank gets [1,512].
    """
    if pshape.rank.is_dynamic:
        return ShapeExample(
            [EXAMPLE_BATCH, EXAMPLE_SIZE],
            [(EXAMPLE_BATCH, "the batch"), (EXAMPLE_SIZE, "a length or size (rank unknown)")],
        )
    rank = pshape.rank.get_length()
    roles: dict[int, tuple[int, str]] = {}
    if layout.to_string() in IMAGE_LAYOUTS:
        for letter in "HW":
            roles[layout.get_index_by_name(letter) % rank] = (
                EXAMPLE_IMAGE_SIDE,
                "the image height and width",
            )
        roles[layout.get_index_by_name("C") % rank] = (EXAMPLE_CHANNELS, "the channels")
    batch_at = _batch_index(pshape, layout)
    if batch_at is not None:
        roles[batch_at] = (EXAMPLE_BATCH, "the batch")
    example = ShapeExample(dims=[])
    for index, dim in enumerate(pshape):
        if dim.is_static:
            example.dims.append(dim.get_length())
            continue
        value, role = roles.get(index, (EXAMPLE_SIZE, "a length or size"))
        value = _within(value, dim)
        example.dims.append(value)
        if (value, role) not in example.made_up:
            example.made_up.append((value, role))
    return example


def batch_layout(pshape: ov.PartialShape) -> str | None:
    """A layout of the input's rank with N where the batch is (`[?,576]` -> `NC`), for -b.

    None for a scalar or a dynamic rank.
    """
    if pshape.rank.is_dynamic or pshape.rank.get_length() == 0:
        return None
    rank = pshape.rank.get_length()
    at = _batch_index(pshape, ov.Layout()) or 0
    if at == 0 and rank in _BATCH_FIRST_LAYOUTS:
        return _BATCH_FIRST_LAYOUTS[rank]
    return "".join("N" if i == at else "?" for i in range(rank))


def _described(ports: list[tuple[str, ov.PartialShape]]) -> str:
    """`'input' [?,?] and 'state' [2,?,128]`."""
    parts = [f"'{name}' {pshape.to_string()}" for name, pshape in ports]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def dynamic_shape_advice(
    missing: list[tuple[str, ov.PartialShape]],
    dynamic: list[tuple[str, ov.PartialShape]],
    data_shapes: dict[str, ov.PartialShape],
    layouts: dict[str, ov.Layout],
    style: OptionNames,
) -> str:
    """The error for dynamic inputs without a data shape: one -shape / -data_shape value
    for every dynamic input (the data shapes given, examples for the rest)."""
    values: list[str] = []
    made_up: list[tuple[int, str]] = []
    for name, pshape in dynamic:
        given = data_shapes.get(name)
        if given is not None:
            values.append(f"{name}[{','.join(str(d.get_length()) for d in given)}]")
            continue
        example = example_shape(pshape, layouts[name])
        values.append(f"{name}[{example.text}]")
        made_up += [pair for pair in example.made_up if pair not in made_up]
    value = ",".join(values)
    if len(missing) == 1:
        head = f"Input {_described(missing)} has a dynamic shape. Give it a static shape"
    else:
        head = f"Inputs {_described(missing)} have dynamic shapes. Give them static shapes"
    if len(missing) < len(dynamic):
        head = head.replace(" has a dynamic shape.", " has a dynamic shape and no data shape.")
    message = (
        f"{head} with {option_example('shape', value, style)} (reshapes the model) or "
        f"{option_example('data_shape', value, style)} (keeps the model dynamic and feeds "
        "data of that shape)."
    )
    if made_up:
        notes = ", ".join(f"{v} for {role}" for v, role in made_up)
        message += (
            f" The numbers for dynamic dimensions are examples ({notes}): use your data's sizes."
        )
    return message + f" Setting {option_name('batch', style)} fixes only the batch dimension."


def batch_without_n_advice(
    partial: dict[str, ov.PartialShape],
    original: dict[str, ov.PartialShape],
    style: OptionNames,
) -> str:
    """The error for -b when no input has an N dimension, with a layout for each input.

    `partial` are the shapes the inputs have now (after -shape), named in the message;
    the layouts come from the model's own shapes (`original`), whose dynamic dimension
    says where the batch is: a state [2,?,128] reshaped to [2,1,128] keeps N second.
    """
    batch, layout = option_name("batch", style), option_name("layout", style)
    message = (
        f"{batch} was given, but no input has a batch (N) dimension in its layout "
        f"({_described(list(partial.items()))}), so the batch cannot be set."
    )
    suggested = {name: batch_layout(original.get(name, pshape)) for name, pshape in partial.items()}
    value = ",".join(f"{name}[{lay}]" for name, lay in suggested.items() if lay)
    if not value:
        return f"{message} Give a layout with {layout}, with N at the batch dimension."
    unknown = "; ? a dimension of no particular meaning" if "?" in value else ""
    return (
        f"{message} Give the layouts with {option_example('layout', value, style)} "
        f"(N marks the batch{unknown})."
    )
