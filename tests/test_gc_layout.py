"""The Grand-Challenge layout end to end (``python -m inference`` on one case), on the tiny model.

Covers: one case per task kind (the test/gc sample cases), output paths and schemas, the mask's
geometry, ``socket`` / ``interface`` spellings of inputs.json, the same pixels giving the same
prediction as the batch reader, and no torch import on the ONNX path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from inference.cli import main
from contract.tasks import TaskRegistry

ROOT = Path(__file__).resolve().parent.parent
GC_CASES = sorted(p for p in (ROOT / "test" / "gc").glob("*/input") if (p / "inputs.json").is_file())
OUTPUT_FILES = {
    "segmentation": "images/segmentation-mask/output.mha",
    "classification": "classification-prediction.json",
    "detection": "detection-prediction.json",
    "Regression": "keypoint-prediction.json",
}
KEYS = {
    "classification": {"task_id", "predicted_class", "predicted_probs"},
    "detection": {"task_id", "bbox_normalized", "bbox_pixels"},
    "Regression": {"task_id", "predicted_points_normalized", "predicted_points_pixels"},
}


def run_case(input_dir: Path, output_dir: Path, model_dir: Path) -> int:
    return main(["--input", str(input_dir), "--output", str(output_dir), "--weights", str(model_dir)])


def all_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def case_image(input_dir: Path) -> sitk.Image:
    [path] = (input_dir / "images" / "ultrasound-image").iterdir()
    return sitk.ReadImage(str(path))


def test_sample_cases_cover_every_kind():
    kinds = {TaskRegistry.official()[json.loads((c / "task-id.json").read_text())].kind.value for c in GC_CASES}
    assert kinds == set(OUTPUT_FILES)
    sizes = [p.stat().st_size for c in GC_CASES for p in c.rglob("*") if p.is_file()]
    assert max(sizes) < 300_000 and sum(sizes) < 2_000_000


@pytest.mark.parametrize("case", GC_CASES, ids=lambda p: p.parent.name)
def test_case_end_to_end(case, tiny_model_dir, tmp_path):
    out = tmp_path / "output"
    assert run_case(case, out, tiny_model_dir) == 0
    task_id = json.loads((case / "task-id.json").read_text())
    spec = TaskRegistry.official()[task_id]
    kind = spec.kind.value
    assert all_files(out) == [OUTPUT_FILES[kind]]  # only this kind's socket, nothing staged left over
    image = case_image(case)
    width, height = image.GetSize()[:2]
    if kind == "segmentation":
        mask = sitk.ReadImage(str(out / OUTPUT_FILES[kind]))
        assert mask.GetPixelID() == sitk.sitkUInt8 and mask.GetNumberOfComponentsPerPixel() == 1
        assert mask.GetSize() == image.GetSize()
        assert mask.GetSpacing() == image.GetSpacing()
        assert mask.GetOrigin() == image.GetOrigin()
        assert mask.GetDirection() == image.GetDirection()
        assert sitk.GetArrayFromImage(mask).max() < spec.num_classes
        return
    record = json.loads((out / OUTPUT_FILES[kind]).read_text())
    assert set(record) == KEYS[kind] and record["task_id"] == task_id
    if kind == "classification":
        assert len(record["predicted_probs"]) == spec.num_classes
        assert sum(record["predicted_probs"]) == pytest.approx(1.0)
        assert record["predicted_class"] == int(np.argmax(record["predicted_probs"]))
        return
    norm_key, px_key = ("bbox_normalized", "bbox_pixels") if kind == "detection" else \
        ("predicted_points_normalized", "predicted_points_pixels")
    norm, px = np.array(record[norm_key]), np.array(record[px_key])
    assert len(norm) == (4 if kind == "detection" else 2 * spec.num_classes)
    if kind == "Regression":
        np.testing.assert_allclose(px, norm * np.tile([width, height], len(norm) // 2), rtol=1e-6)
    else:
        assert 0 <= px[0] <= px[2] <= width and 0 <= px[1] <= px[3] <= height


def _write_case(folder: Path, inputs: list, image: np.ndarray | sitk.Image, name: str = "x.mha",
                task: object = "fetal_plane_cls") -> Path:
    images = folder / "images" / "ultrasound-image"
    images.mkdir(parents=True)
    if isinstance(image, sitk.Image):
        sitk.WriteImage(image, str(images / name))
    else:
        cv2.imwrite(str(images / name), image)
    if task is not None:
        (folder / "task-id.json").write_text(json.dumps(task))
    (folder / "inputs.json").write_text(json.dumps(inputs))
    return folder


def _grey_phantom() -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:90, 0:120]
    blob = 160 * np.exp(-((xx - 70) ** 2 + (yy - 40) ** 2) / 300.0)
    return np.clip(blob + rng.normal(40, 20, (90, 120)), 0, 255).astype(np.uint8)


SPELLINGS = {
    "socket-object": [{"socket": {"slug": "ultrasound-image", "relative_path": "images/ultrasound-image"}},
                      {"socket": {"slug": "task-id", "relative_path": "task-id.json"}}],
    "interface-object": [{"pk": 3, "image": None, "interface": {"slug": "ultrasound-image", "kind": "Image"}},
                         {"pk": 4, "value": None, "interface": {"slug": "task-id", "relative_path": "task-id.json"}}],
    "strings": [{"socket": "task-id", "relative_path": "task-id.json"},
                {"interface": "ultrasound-image", "relative_path": "images/ultrasound-image"}],
    "inline-value": [{"socket": {"slug": "ultrasound-image"}}, {"socket": {"slug": "task-id"}, "value": "fetal_plane_cls"}],
}


def test_socket_and_interface_spellings_and_same_pixels_as_batch_reader(tiny_model_dir, tmp_path):
    grey = _grey_phantom()
    results = {}
    for style, inputs in SPELLINGS.items():
        case = _write_case(tmp_path / style, inputs, sitk.GetImageFromArray(grey),
                           task=None if style == "inline-value" else "fetal_plane_cls")
        assert run_case(case, tmp_path / f"out-{style}", tiny_model_dir) == 0, style
        results[style] = json.loads((tmp_path / f"out-{style}" / "classification-prediction.json").read_text())
    # the same pixels as a PNG (read by the batch layout's reader) and as float .mha in 0..255
    png = _write_case(tmp_path / "png", SPELLINGS["socket-object"], grey, name="x.png")
    assert run_case(png, tmp_path / "out-png", tiny_model_dir) == 0
    results["png"] = json.loads((tmp_path / "out-png" / "classification-prediction.json").read_text())
    as_float = _write_case(tmp_path / "float", SPELLINGS["socket-object"],
                           sitk.GetImageFromArray(grey.astype(np.float32)))
    assert run_case(as_float, tmp_path / "out-float", tiny_model_dir) == 0
    results["float"] = json.loads((tmp_path / "out-float" / "classification-prediction.json").read_text())
    reference = results.pop("socket-object")
    for style, record in results.items():
        assert record == reference, style


def test_rgba_alpha_is_dropped(tiny_model_dir, tmp_path):
    grey = _grey_phantom()
    rgb = np.stack([grey, grey // 2, 255 - grey], axis=2)
    rgba = np.concatenate([rgb, np.full(grey.shape + (1,), 17, np.uint8)], axis=2)
    outs = []
    for name, array in (("rgb", rgb), ("rgba", rgba)):
        case = _write_case(tmp_path / name, SPELLINGS["socket-object"], sitk.GetImageFromArray(array, isVector=True))
        assert run_case(case, tmp_path / f"out-{name}", tiny_model_dir) == 0
        outs.append((tmp_path / f"out-{name}" / "classification-prediction.json").read_text())
    assert outs[0] == outs[1]


def test_onnx_path_never_imports_torch(tiny_model_dir, tmp_path):
    case = GC_CASES[0]
    code = ("import sys; from inference.cli import main; "
            f"rc = main(['--input', {str(case)!r}, '--output', {str(tmp_path / 'o')!r}, "
            f"'--weights', {str(tiny_model_dir)!r}, '--engine', 'onnxruntime']); "
            "print('RESULT', rc, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert "RESULT 0 False" in result.stdout, result.stderr


def test_copying_a_case_keeps_it_runnable(tiny_model_dir, tmp_path):
    """Cases are self-contained: a copy elsewhere (as mounted at /input) runs the same."""
    case = next(c for c in GC_CASES if "det_" in c.parent.name)
    copy = tmp_path / "input"
    shutil.copytree(case, copy)
    assert run_case(copy, tmp_path / "a", tiny_model_dir) == 0
    assert run_case(case, tmp_path / "b", tiny_model_dir) == 0
    assert (tmp_path / "a" / "detection-prediction.json").read_text() == \
        (tmp_path / "b" / "detection-prediction.json").read_text()
