"""Images to tensors: BGR/RGB, NCHW/NHWC, resize, cycling, .npy and random fill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from app.engine import inputs
from app.engine import model as model_mod
from app.engine.errors import InputError
from app.engine.runner import set_request_inputs
from tests.factories import (
    KNOWN_IMAGE_SIZE,
    gradient_rgb,
    rgb_array,
    write_gradient_image,
    write_identity_model,
    write_solid_image,
    write_two_input_model,
)


def _feed_through_identity(xml: Path, image_paths: list[Path], rgb: bool) -> np.ndarray:
    """Run the engine's input path on an identity model and return what the model saw."""
    core = ov.Core()
    model = model_mod.read_model(core, xml)
    resolved = model_mod.resolve_inputs(model, None, None, None, None)
    model = model_mod.apply_preprocessing(model, resolved.slots)
    files = inputs.collect_input_files([str(p) for p in image_paths])
    per_request, _, _ = inputs.plan_and_fill(resolved.slots, files, 1, rgb)
    request = core.compile_model(model, "CPU").create_infer_request()
    set_request_inputs(request, per_request[0], dynamic=False)
    request.infer()
    return request.get_output_tensor(0).data.copy()


def test_known_image_gives_expected_nchw_tensor_in_bgr_and_rgb(tmp_path: Path) -> None:
    image = write_gradient_image(tmp_path / "g.png", width=8, height=6)
    expected_rgb = rgb_array(8, 6, gradient_rgb(8, 6)).astype(np.float32)  # H, W, 3
    xml = write_identity_model(tmp_path, shape=(1, 3, 6, 8))  # NCHW guessed: dim1 <= 4 < dim3
    bgr = _feed_through_identity(xml, [image], rgb=False)
    rgb = _feed_through_identity(xml, [image], rgb=True)
    assert bgr.shape == (1, 3, 6, 8)
    np.testing.assert_array_equal(rgb[0], expected_rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(bgr[0], expected_rgb[..., ::-1].transpose(2, 0, 1))


def test_known_image_gives_expected_nhwc_tensor(tmp_path: Path) -> None:
    image = write_gradient_image(tmp_path / "g.png", width=8, height=6)
    expected_rgb = rgb_array(8, 6, gradient_rgb(8, 6)).astype(np.float32)
    xml = write_identity_model(tmp_path, shape=(1, 6, 8, 3))  # NHWC guessed: dim3 <= 4 < dim1
    bgr = _feed_through_identity(xml, [image], rgb=False)
    assert bgr.shape == (1, 6, 8, 3)
    np.testing.assert_array_equal(bgr[0], expected_rgb[..., ::-1])


def test_image_is_resized_bilinearly_to_input_hw(tmp_path: Path) -> None:
    image = write_solid_image(tmp_path / "red.png", (255, 0, 0), size=(17, 9))
    array = inputs.load_image(image, width=4, height=3, rgb=False)
    assert array.shape == (3, 4, 3)
    assert (array == np.array([0, 0, 255], dtype=np.uint8)).all()  # BGR red


def test_image_inputs_are_u8_and_model_converts(tmp_path: Path) -> None:
    core = ov.Core()
    model = model_mod.read_model(core, write_identity_model(tmp_path, shape=(1, 3, 6, 8)))
    resolved = model_mod.resolve_inputs(model, None, None, None, None)
    assert resolved.slots[0].kind == "image"
    model = model_mod.apply_preprocessing(model, resolved.slots)
    assert model.input(0).get_element_type() == ov.Type.u8
    assert resolved.slots[0].element_type == ov.Type.u8


def test_consecutive_requests_and_batch_slots_cycle_images(tmp_path: Path) -> None:
    colours = [(10, 0, 0), (20, 0, 0), (30, 0, 0)]
    paths = [
        write_solid_image(tmp_path / f"{i}.png", c, size=(2, 2)) for i, c in enumerate(colours)
    ]
    slot = inputs.InputSlot(
        name="x",
        shape=[2, 3, 2, 2],
        element_type=ov.Type.u8,
        layout=ov.Layout("NCHW"),
        kind="image",
    )
    files = inputs.collect_input_files([str(tmp_path)])
    per_request, used, _ = inputs.plan_and_fill([slot], files, n_requests=2, rgb=True)
    # request 0 takes images 0, 1; request 1 takes images 2, 0 (cycling)
    assert [int(per_request[0]["x"][b, 0, 0, 0]) for b in range(2)] == [10, 20]
    assert [int(per_request[1]["x"][b, 0, 0, 0]) for b in range(2)] == [30, 10]
    assert [p.name for p in used["x"]] == [p.name for p in paths]


def test_npy_file_named_after_input_fills_it_and_others_get_random_with_warning(
    tmp_path: Path,
) -> None:
    core = ov.Core()
    model = model_mod.read_model(core, write_two_input_model(tmp_path / "m"))
    resolved = model_mod.resolve_inputs(model, None, None, None, None)
    kinds = {s.name: s.kind for s in resolved.slots}
    assert kinds == {"image": "image", "scale": "random"}
    np.save(tmp_path / "scale.npy", np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32))
    files = inputs.collect_input_files([str(tmp_path / "scale.npy")])
    per_request, _, warns = inputs.plan_and_fill(resolved.slots, files, 1, rgb=False)
    np.testing.assert_array_equal(per_request[0]["scale"], [[1.0, 2.0, 3.0, 4.0]])
    assert any("image input 'image' is filled with random data" in w for w in warns)


def test_random_fill_is_deterministic_and_warns_with_the_fix(tmp_path: Path) -> None:
    slot = inputs.InputSlot(name="v", shape=[1, 8], element_type=ov.Type.f32, layout=ov.Layout())
    a, _, warns = inputs.plan_and_fill([slot], inputs.InputFiles(), 1, rgb=False)
    b, _, _ = inputs.plan_and_fill([slot], inputs.InputFiles(), 1, rgb=False)
    np.testing.assert_array_equal(a[0]["v"], b[0]["v"])
    assert a[0]["v"].min() >= 0 and a[0]["v"].max() <= 255
    assert "v.npy" in warns[0] and "[1, 8]" in warns[0]


def test_npy_of_wrong_shape_names_file_and_expected_shape(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.zeros((3,), dtype=np.float32))
    slot = inputs.InputSlot(name="v", shape=[1, 8], element_type=ov.Type.f32, layout=ov.Layout())
    with pytest.raises(InputError, match=r"'v.npy'.*\[3\].*\[1, 8\]"):
        inputs.plan_and_fill(
            [slot], inputs.collect_input_files([str(tmp_path / "v.npy")]), 1, False
        )


def test_not_an_image_and_unknown_type_are_named(tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is not a png")
    with pytest.raises(InputError, match="'fake.png' is not a decodable image"):
        inputs.verify_image(fake)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(InputError, match="notes.txt.*unsupported type"):
        inputs.collect_input_files([str(other)])
    with pytest.raises(InputError, match="does not exist"):
        inputs.collect_input_files([str(tmp_path / "missing")])


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    bomb = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(bomb)  # tiny file, 144 M pixels declared
    assert bomb.stat().st_size < 200_000
    with pytest.raises(InputError, match="bomb.png"):
        inputs.verify_image(bomb)


@pytest.mark.parametrize(
    ("shape", "layout"),
    [
        ([1, 3, 224, 224], "[N,C,H,W]"),
        ([1, 224, 224, 3], "[N,H,W,C]"),
        ([1, 1000], "[...]"),
        ([3, 8, 8], "[C,H,W]"),
    ],
)
def test_layout_guess(shape: list[int], layout: str) -> None:
    assert inputs.guess_layout(ov.PartialShape(shape)).to_string() == layout


def test_known_images_fixture_decodes(images_dir: Path) -> None:
    for path in images_dir.iterdir():
        assert inputs.verify_image(path) == KNOWN_IMAGE_SIZE


def test_small_spatial_input_needs_layout_and_layout_option_makes_it_an_image(
    tmp_path: Path,
) -> None:
    core = ov.Core()
    xml = write_identity_model(tmp_path)  # [1,3,4,4]: dim3 = 4 is not > 4, so no guess
    model = model_mod.read_model(core, xml)
    assert model_mod.resolve_inputs(model, None, None, None, None).slots[0].kind == "random"
    model = model_mod.read_model(core, xml)
    assert model_mod.resolve_inputs(model, None, None, "NCHW", None).slots[0].kind == "image"


def test_expected_outputs_are_sorted_out_and_never_fill_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.full((1, 8), 3.0, dtype=np.float32))
    np.save(tmp_path / "expected_v.npy", np.full((1, 8), 9.0, dtype=np.float32))
    np.save(tmp_path / "expected_probs.npy", np.zeros((1, 8), dtype=np.float32))
    np.save(tmp_path / "stray.npy", np.zeros((1, 8), dtype=np.float32))
    files = inputs.collect_input_files([str(tmp_path)])
    assert files.expected == {
        "v": tmp_path / "expected_v.npy",
        "probs": tmp_path / "expected_probs.npy",
    }
    assert files.arrays == {"v": tmp_path / "v.npy", "stray": tmp_path / "stray.npy"}

    slot = inputs.InputSlot(name="v", shape=[1, 8], element_type=ov.Type.f32, layout=ov.Layout())
    per_request, used, warns = inputs.plan_and_fill([slot], files, 1, rgb=False)
    np.testing.assert_array_equal(per_request[0]["v"], np.full((1, 8), 3.0))
    assert used["v"] == [tmp_path / "v.npy"]
    [warning] = warns  # the unused .npy warning names stray.npy only
    assert "'stray.npy'" in warning and "expected_" not in warning


def test_expected_file_alone_does_not_feed_its_input(tmp_path: Path) -> None:
    """`expected_v.npy` given one by one: still an expected output, so "v" gets random data."""
    np.save(tmp_path / "expected_v.npy", np.full((1, 8), 9.0, dtype=np.float32))
    files = inputs.collect_input_files([str(tmp_path / "expected_v.npy")])
    assert files.arrays == {} and files.images == []
    assert files.expected == {"v": tmp_path / "expected_v.npy"}
    slot = inputs.InputSlot(name="v", shape=[1, 8], element_type=ov.Type.f32, layout=ov.Layout())
    per_request, _, warns = inputs.plan_and_fill([slot], files, 1, rgb=False)
    assert slot.kind == "random" and not (per_request[0]["v"] == 9.0).all()
    assert len(warns) == 1 and "random data" in warns[0]
