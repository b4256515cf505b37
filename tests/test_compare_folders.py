"""test/compare.py: exit codes and messages on hand-built expected/actual folders."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import SimpleITK as sitk

_SPEC = importlib.util.spec_from_file_location("compare", Path(__file__).resolve().parents[1] / "test" / "compare.py")
compare = importlib.util.module_from_spec(_SPEC)
sys.modules["compare"] = compare
_SPEC.loader.exec_module(compare)

CLS = [
    {"image_path": "../Classification/a.png", "task_id": "breast_2cls", "predicted_class": 1, "predicted_probs": [0.2, 0.8]},
    {"image_path": "../Classification/b.png", "task_id": "breast_2cls", "predicted_class": 0, "predicted_probs": [0.9, 0.1]},
]
DET = [
    {"image_path": "../Detection/c.png", "task_id": "thyroid_nodule_det",
     "bbox_normalized": [0.1, 0.2, 0.5, 0.6], "bbox_pixels": [10.0, 20.0, 50.0, 60.0]},
]


def _write(folder: Path, cls=CLS, det=DET, mask=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classification_predictions.json").write_text(json.dumps(cls))
    (folder / "detection_predictions.json").write_text(json.dumps(det))
    if mask is None:
        mask = np.zeros((40, 50), np.uint8)
        mask[10:30, 10:40] = 1
    (folder / "Segmentation" / "ds").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "Segmentation" / "ds" / "a.png"), mask)
    return folder


def _run(expected: Path, actual: Path, capsys, *extra: str) -> tuple[int, str]:
    code = compare.main([str(expected), str(actual), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _copy(records):
    return json.loads(json.dumps(records))


def test_identical_folders(tmp_path, capsys):
    exp, act = _write(tmp_path / "exp"), _write(tmp_path / "act")
    code, out = _run(exp, act, capsys)
    assert code == 0
    assert "tolerances: probabilities 0.001" in out.splitlines()[0]
    assert "3 files compared, all within tolerance" in out


def test_within_tolerance_and_record_order_ignored(tmp_path, capsys):
    cls = _copy(CLS)[::-1]
    cls[0]["predicted_probs"] = [0.9004, 0.0996]
    det = _copy(DET)
    det[0]["bbox_pixels"] = [10.4, 19.7, 50, 60]
    mask = np.zeros((40, 50), np.uint8)
    mask[10:30, 10:40] = 1
    mask[0, 0] = 1  # 1 pixel of 2000 differs: agreement 0.9995
    exp, act = _write(tmp_path / "exp"), _write(tmp_path / "act", cls=cls, det=det, mask=mask)
    code, out = _run(exp, act, capsys)
    assert code == 0, out


def test_beyond_tolerance(tmp_path, capsys):
    cls = _copy(CLS)
    cls[0]["predicted_probs"] = [0.205, 0.795]
    det = _copy(DET)
    det[0]["bbox_pixels"][2] = 51.0
    exp, act = _write(tmp_path / "exp"), _write(tmp_path / "act", cls=cls, det=det)
    code, out = _run(exp, act, capsys)
    assert code == 1
    assert "MISMATCH classification_predictions.json: 1 of 2 records differ; max deviation prob 0.005" in out
    assert "MISMATCH detection_predictions.json: 1 of 1 records differ" in out and "px 1 (tol 0.5)" in out
    assert "2 of 3 files differ" in out
    # a looser tolerance accepts the same folders
    code, _ = _run(exp, act, capsys, "--atol-prob", "0.01", "--atol-px", "1.5")
    assert code == 0


def test_missing_and_unexpected_files(tmp_path, capsys):
    exp, act = _write(tmp_path / "exp"), _write(tmp_path / "act")
    (act / "detection_predictions.json").unlink()
    (act / "extra.json").write_text("{}")
    code, out = _run(exp, act, capsys)
    assert code == 1
    assert "MISMATCH detection_predictions.json: missing" in out
    assert "MISMATCH extra.json: unexpected file" in out


def test_mask_below_agreement(tmp_path, capsys):
    mask = np.zeros((40, 50), np.uint8)
    mask[10:30, 10:41] = 1  # 20 of 2000 pixels differ: 99.0 %
    exp, act = _write(tmp_path / "exp"), _write(tmp_path / "act", mask=mask)
    code, out = _run(exp, act, capsys)
    assert code == 1
    assert "MISMATCH Segmentation/ds/a.png: mask agreement 99.0000% < 99.90% (20 of 2000 values differ)" in out


def test_mask_shape_mismatch(tmp_path, capsys):
    exp, act = _write(tmp_path / "exp"), _write(tmp_path / "act", mask=np.zeros((40, 51), np.uint8))
    code, out = _run(exp, act, capsys)
    assert code == 1 and "shape/dtype (40, 51) uint8 != expected (40, 50) uint8" in out


def test_record_missing(tmp_path, capsys):
    exp, act = _write(tmp_path / "exp"), _write(tmp_path / "act", cls=_copy(CLS)[:1])
    code, out = _run(exp, act, capsys)
    assert code == 1
    assert "1 record(s) missing: [('../Classification/b.png', 'breast_2cls')]" in out


def test_tie_in_predicted_class(tmp_path, capsys):
    tied = [{"image_path": "t.png", "task_id": "breast_2cls", "predicted_class": 0, "predicted_probs": [0.5, 0.5]}]
    flipped = _copy(tied)
    flipped[0]["predicted_class"] = 1
    flipped[0]["predicted_probs"] = [0.4996, 0.5004]
    exp, act = _write(tmp_path / "exp", cls=tied), _write(tmp_path / "act", cls=flipped)
    code, out = _run(exp, act, capsys)
    assert code == 0, out
    # without a tie the same flip is a mismatch
    clear = [{"image_path": "t.png", "task_id": "breast_2cls", "predicted_class": 0, "predicted_probs": [0.6, 0.4]}]
    flipped2 = _copy(clear)
    flipped2[0]["predicted_class"] = 1
    shutil.rmtree(exp)
    _write(exp, cls=clear)
    _write(act, cls=flipped2)
    code, out = _run(exp, act, capsys, "--atol-prob", "1")
    assert code == 0  # with tolerance 1 every class counts as tied
    code, out = _run(exp, act, capsys)
    assert code == 1 and ".predicted_class: 1 != expected 0" in out


def test_non_record_json_compared_by_key(tmp_path, capsys):
    exp, act = tmp_path / "exp", tmp_path / "act"
    exp.mkdir()
    act.mkdir()
    (exp / "result.json").write_text(json.dumps({"predicted_probs": [0.3, 0.7], "label": 1, "name": "x", "points_pixels": [3.0]}))
    (act / "result.json").write_text(json.dumps({"predicted_probs": [0.3004, 0.6996], "label": 1, "name": "x", "points_pixels": [3.4]}))
    assert _run(exp, act, capsys)[0] == 0
    (act / "result.json").write_text(json.dumps({"predicted_probs": [0.3, 0.7], "label": 2, "name": "x", "points_pixels": [3.0]}))
    code, out = _run(exp, act, capsys)
    assert code == 1 and "$.label: 2 != expected 1" in out


def test_mha_geometry(tmp_path, capsys):
    exp, act = tmp_path / "exp" / "images" / "seg", tmp_path / "act" / "images" / "seg"
    exp.mkdir(parents=True)
    act.mkdir(parents=True)
    image = sitk.GetImageFromArray(np.zeros((8, 9), np.uint8))
    sitk.WriteImage(image, str(exp / "out.mha"))
    image.SetSpacing((0.5, 0.5))
    sitk.WriteImage(image, str(act / "out.mha"))
    code, out = _run(tmp_path / "exp", tmp_path / "act", capsys)
    assert code == 1 and "spacing (0.5, 0.5) != expected (1.0, 1.0)" in out


def test_usage_error_missing_folder(tmp_path, capsys):
    exp = _write(tmp_path / "exp")
    code, out = _run(exp, tmp_path / "nope", capsys)
    assert code == 2 and "is not a folder" in out


def test_deviations_are_reported_when_within_tolerance(tmp_path, capsys):
    cls = _copy(CLS)
    cls[0]["predicted_probs"] = [0.2004, 0.7996]
    mask = np.zeros((40, 50), np.uint8)
    mask[10:30, 10:40] = 1
    mask[0, 0] = 1  # 1 pixel of 2000 differs
    exp, act = _write(tmp_path / "exp"), _write(tmp_path / "act", cls=cls, mask=mask)
    code, out = _run(exp, act, capsys)
    assert code == 0, out
    assert "classification_predictions.json: largest deviation prob 0.0004" in out
    assert "detection_predictions.json: largest deviation norm 0, px 0" in out
    assert "1 image(s): 0 identical, lowest pixel agreement 99.9500% (Segmentation/ds/a.png)" in out
