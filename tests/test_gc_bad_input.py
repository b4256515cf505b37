"""Bad Grand-Challenge cases: exit 1, one clear message naming the socket and the file, /output left empty."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from inference.cli import main

GOOD_INPUTS = [
    {"socket": {"slug": "ultrasound-image", "relative_path": "images/ultrasound-image"}},
    {"socket": {"slug": "task-id", "relative_path": "task-id.json"}},
]


def make_case(root: Path, inputs: object = GOOD_INPUTS, task: object = "fetal_head") -> Path:
    images = root / "images" / "ultrasound-image"
    images.mkdir(parents=True)
    image = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 255, (40, 50), dtype=np.uint8))
    sitk.WriteImage(image, str(images / "case.mha"))
    if task is not None:
        (root / "task-id.json").write_text(json.dumps(task))
    if inputs is not None:
        (root / "inputs.json").write_text(json.dumps(inputs))
    return root


def run_failing(case: Path, output: Path, model_dir: Path, caplog) -> str:
    """Run; the run must fail with exit 1, one ERROR line, and an output folder with no file in it."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="inference"):
        rc = main(["--input", str(case), "--output", str(output), "--weights", str(model_dir)])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert rc == 1
    assert len(errors) == 1, errors
    assert [p for p in output.rglob("*")] == [], "partial output left behind"
    return errors[0]


def test_missing_inputs_json(tiny_model_dir, tmp_path, caplog):
    case = make_case(tmp_path / "in", inputs=None)
    message = run_failing(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "inputs.json is missing" in message and "ultrasound-image" in message


def test_no_known_layout_names_what_was_looked_for(tiny_model_dir, tmp_path, caplog):
    (tmp_path / "in").mkdir()
    message = run_failing(tmp_path / "in", tmp_path / "out", tiny_model_dir, caplog)
    assert "inputs.json" in message and "csv_files" in message


def test_unknown_task_id(tiny_model_dir, tmp_path, caplog):
    case = make_case(tmp_path / "in", task="not_a_task")
    message = run_failing(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "socket task-id" in message and "task-id.json" in message and "not_a_task" in message
    assert "fetal_head" in message  # the known tasks are listed


def test_task_id_not_a_string(tiny_model_dir, tmp_path, caplog):
    case = make_case(tmp_path / "in", task={"task": "fetal_head"})
    message = run_failing(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "socket task-id" in message and "expected a JSON string" in message


def test_unreadable_image(tiny_model_dir, tmp_path, caplog):
    case = make_case(tmp_path / "in")
    (case / "images" / "ultrasound-image" / "case.mha").write_bytes(b"this is not an image\n" * 10)
    message = run_failing(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "socket ultrasound-image" in message and "case.mha" in message and "cannot read" in message


def test_multi_slice_volume(tiny_model_dir, tmp_path, caplog):
    case = make_case(tmp_path / "in")
    volume = sitk.GetImageFromArray(np.zeros((3, 20, 30), np.uint8))
    sitk.WriteImage(volume, str(case / "images" / "ultrasound-image" / "case.mha"))
    message = run_failing(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "socket ultrasound-image" in message and "case.mha" in message and "3 slices" in message


def test_empty_image(tiny_model_dir, tmp_path, caplog):
    case = make_case(tmp_path / "in")
    # SimpleITK cannot write a zero-size image; a MetaImage header with DimSize 0 is what such a file holds
    (case / "images" / "ultrasound-image" / "case.mha").write_text(
        "ObjectType = Image\nNDims = 2\nDimSize = 0 10\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n")
    message = run_failing(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "socket ultrasound-image" in message and "case.mha" in message and "empty image" in message


@pytest.mark.parametrize("inputs, found", [
    ([GOOD_INPUTS[0]], "missing: task-id"),
    (GOOD_INPUTS + [{"socket": {"slug": "patient-age"}}], "unexpected: patient-age"),
    ([{"interface": {"slug": "image"}}, GOOD_INPUTS[1]], "unexpected: image"),
    (GOOD_INPUTS + [GOOD_INPUTS[1]], "repeated: task-id"),
    ([{"slug": "ultrasound-image"}, GOOD_INPUTS[1]], "(entry without a socket slug)"),
])
def test_sockets_not_matching_the_interface(inputs, found, tiny_model_dir, tmp_path, caplog):
    case = make_case(tmp_path / "in", inputs=inputs)
    message = run_failing(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "sockets found:" in message and "expected exactly: ultrasound-image, task-id" in message
    assert found in message


def test_inputs_json_not_a_list(tiny_model_dir, tmp_path, caplog):
    case = make_case(tmp_path / "in", inputs={"ultrasound-image": "x"})
    message = run_failing(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "inputs.json cannot be read" in message and "JSON list" in message


def test_image_folder_with_two_images(tiny_model_dir, tmp_path, caplog):
    case = make_case(tmp_path / "in")
    (case / "images" / "ultrasound-image" / "other.tif").write_bytes(b"")
    message = run_failing(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "socket ultrasound-image" in message and "exactly one" in message and "other.tif" in message


def test_relative_path_escaping_input_is_refused(tiny_model_dir, tmp_path, caplog):
    inputs = [GOOD_INPUTS[0], {"socket": {"slug": "task-id", "relative_path": "../secret.json"}}]
    (tmp_path / "secret.json").write_text('"fetal_head"')
    case = make_case(tmp_path / "in", inputs=inputs)
    message = run_failing(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "socket task-id" in message and "outside" in message


def test_failed_publish_leaves_no_partial_output(tiny_model_dir, tmp_path, caplog):
    """A mask that cannot be moved into place: nothing of this run remains (the blocker was there before)."""
    case = make_case(tmp_path / "in")
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "segmentation-mask").write_text("a file where the socket's folder should be")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="inference"):
        rc = main(["--input", str(case), "--output", str(out), "--weights", str(tiny_model_dir)])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert rc == 1 and len(errors) == 1 and "output socket segmentation-mask" in errors[0]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["images", "images/segmentation-mask"]
