"""End-to-end scoring of a tiny labelled folder built by hand (python -m evaluation)."""

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from evaluation import LabelLayoutError, TaskSelectionError, evaluate
from evaluation.__main__ import main

H, W = 30, 40  # every image is 30x40: diagonal 50


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _image(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((H, W, 3), value, np.uint8))


def _seg_mask(index: int, classes: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    for c in range(1, classes):
        mask[2 + 5 * c : 6 + 5 * c, 3 + index : 12 + index] = c
    return mask


def build_labels(root: Path) -> dict:
    """Two segmentation tasks, one classification, one detection, one Regression task."""
    truth: dict = {"masks": {}, "cls": {}, "det": {}, "reg": {}}
    seg_rows = []
    for task, classes in (("fetal_head", 2), ("cervix_multi", 3)):
        for i in range(2):
            image = f"../Segmentation/Two/{task}/IMAGES/{i}.png"
            mask = f"../Segmentation/Two/{task}/MASKS/{i}.png"
            _image(root / "csv_files" / image)
            gt = _seg_mask(i, classes)
            (root / "csv_files" / mask).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "csv_files" / mask), gt)
            truth["masks"][mask] = gt
            seg_rows.append(dict(image_path=image, task_id=task, task_name="segmentation", num_classes=classes, mask_path=mask))
    _write_csv(root / "csv_files" / "seg.csv", ["image_path", "task_id", "task_name", "num_classes", "mask_path"], seg_rows)

    cls_rows = []
    for i, label in enumerate([0, 1, 2]):
        image = f"../Classification/breast_3cls/{i}.png"
        _image(root / "csv_files" / image)
        truth["cls"][image] = label
        cls_rows.append(dict(image_path=image, task_id="breast_3cls", task_name="classification", num_classes=3, mask=label))
    _write_csv(root / "csv_files" / "cls.csv", ["image_path", "task_id", "task_name", "num_classes", "mask"], cls_rows)

    det_rows = []
    for i in range(2):
        image = f"../Detection/thyroid_nodule_det/{i}.png"
        _image(root / "csv_files" / image)
        box = [4.0 + i, 5.0, 20.0, 25.0 + i]
        truth["det"][image] = box
        det_rows.append(dict(image_path=image, task_id="thyroid_nodule_det", x_min=box[0], y_min=box[1], x_max=box[2], y_max=box[3]))
    # no task_name / num_classes columns: kind and size come from the task registry
    _write_csv(root / "csv_files" / "det.csv", ["image_path", "task_id", "x_min", "y_min", "x_max", "y_max"], det_rows)

    reg_rows = []
    for i in range(2):
        image = f"../Regression/IUGC/{i}.png"
        _image(root / "csv_files" / image)
        points = [[10.0 + i, 12.0], [20.0, 8.0 + i], [30.0, 25.0]]
        truth["reg"][image] = [v for p in points for v in p]
        reg_rows.append(
            dict(image_path=image, task_id="IUGC", task_name="Regression", num_classes=3,
                 **{f"point_{k + 1}_xy": json.dumps(p) for k, p in enumerate(points)})
        )
    _write_csv(root / "csv_files" / "reg.csv",
               ["image_path", "task_id", "task_name", "num_classes", "point_1_xy", "point_2_xy", "point_3_xy"], reg_rows)
    return truth


def write_perfect(pred: Path, truth: dict) -> None:
    pred.mkdir(parents=True, exist_ok=True)
    for mask_path, gt in truth["masks"].items():
        out = pred / mask_path.removeprefix("../")
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), gt)
    cls = [dict(image_path=k, task_id="breast_3cls", predicted_class=v, predicted_probs=np.eye(3)[v].tolist())
           for k, v in truth["cls"].items()]
    det = [dict(image_path=k, task_id="thyroid_nodule_det", bbox_normalized=[0, 0, 1, 1], bbox_pixels=v)
           for k, v in truth["det"].items()]
    reg = [dict(image_path=k, task_id="IUGC", predicted_points_normalized=[0.0] * 6, predicted_points_pixels=v)
           for k, v in truth["reg"].items()]
    for name, records in (("classification", cls), ("detection", det), ("regression", reg)):
        (pred / f"{name}_predictions.json").write_text(json.dumps(records))


@pytest.fixture
def folders(tmp_path):
    labels, pred = tmp_path / "input", tmp_path / "output"
    truth = build_labels(labels)
    write_perfect(pred, truth)
    return labels, pred, truth


def test_perfect_predictions_score_perfectly(folders):
    labels, pred, _ = folders
    report = evaluate(labels, pred)
    assert [t.task_id for t in report.tasks] == ["cervix_multi", "fetal_head", "breast_3cls", "thyroid_nodule_det", "IUGC"]
    assert report.kind("segmentation").metrics == {"dice": 1.0, "hd": 0.0}
    assert report.task("cervix_multi").per_class == {"1": {"dice": 1.0, "hd": 0.0}, "2": {"dice": 1.0, "hd": 0.0}}
    assert report.kind("classification").metrics == {"auc": 1.0, "f1": 1.0, "mcc": 1.0, "accuracy": 1.0}
    assert report.task("thyroid_nodule_det").metrics["iou"] == pytest.approx(1.0)
    assert report.task("thyroid_nodule_det").num_classes == 1  # from the registry
    assert report.kind("Regression").metrics == {"mre": 0.0, "mre_pct_diag": 0.0}
    assert report.rows == 11 and report.missing_predictions == 0 and report.issues == []
    assert report.unmatched_records == 0


def test_missing_and_malformed_predictions_are_counted_per_row(folders):
    labels, pred, truth = folders
    # segmentation: fetal_head row 1 mask deleted, cervix_multi row 2 mask of the wrong size
    (pred / "Segmentation/Two/fetal_head/MASKS/0.png").unlink()
    cv2.imwrite(str(pred / "Segmentation/Two/cervix_multi/MASKS/1.png"), np.zeros((10, 10), np.uint8))
    # classification: row 2 has 2 probabilities instead of 3, row 3 has no record
    cls = json.loads((pred / "classification_predictions.json").read_text())
    cls[1]["predicted_probs"] = [0.5, 0.5]
    (pred / "classification_predictions.json").write_text(json.dumps(cls[:2]))
    # detection: the file is not valid JSON
    (pred / "detection_predictions.json").write_text("[{not json")
    # regression: row 2 has a NaN coordinate; plus a record that matches no row
    reg = json.loads((pred / "regression_predictions.json").read_text())
    reg[1]["predicted_points_pixels"][0] = float("nan")
    reg.append(dict(reg[0], image_path="Regression/IUGC/0.png"))
    (pred / "regression_predictions.json").write_text(json.dumps(reg))

    report = evaluate(labels, pred)
    found = {(i.csv_file, i.row): i.reason for i in report.issues}
    assert set(found) == {("seg.csv", 1), ("seg.csv", 4), ("cls.csv", 2), ("cls.csv", 3),
                          ("det.csv", 1), ("det.csv", 2), ("reg.csv", 2)}
    assert "missing" in found[("seg.csv", 1)]
    assert "expected 40x30" in found[("seg.csv", 4)]
    assert "3" in found[("cls.csv", 2)] and "no record" in found[("cls.csv", 3)]
    assert "not valid JSON" in found[("det.csv", 1)]
    assert "NaN" in found[("reg.csv", 2)]
    assert report.missing_predictions == 7 and report.rows == 11
    assert report.unmatched_records == 1
    # worst cases: one of two fetal_head masks missing -> Dice 1/2, HD diagonal/2
    assert report.task("fetal_head").metrics == {"dice": 0.5, "hd": pytest.approx(25.0)}
    assert report.task("fetal_head").missing == 1
    assert report.task("breast_3cls").metrics["accuracy"] == pytest.approx(1 / 3)
    assert report.task("thyroid_nodule_det").metrics["iou"] == 0.0
    assert report.task("IUGC").metrics["mre"] == pytest.approx(25.0)  # (0 + diagonal 50) / 2
    assert report.task("IUGC").metrics["mre_pct_diag"] == pytest.approx(50.0)


def test_imperfect_values_are_scored(folders):
    labels, pred, truth = folders
    det = json.loads((pred / "detection_predictions.json").read_text())
    det[0]["bbox_pixels"] = [0.0, 0.0, 10.0, 10.0]
    (pred / "detection_predictions.json").write_text(json.dumps(det))
    reg = json.loads((pred / "regression_predictions.json").read_text())
    reg[0]["predicted_points_pixels"][0] += 3.0
    reg[0]["predicted_points_pixels"][1] += 4.0  # first point 5 px off: image MRE 5/3
    (pred / "regression_predictions.json").write_text(json.dumps(reg))
    report = evaluate(labels, pred, tasks=["thyroid_nodule_det", "IUGC"])
    assert [t.task_id for t in report.tasks] == ["thyroid_nodule_det", "IUGC"]
    # box 0 truth [4,5,20,25]; prediction [0,0,10,10]: inter 6*5=30, union 100+320-30=390
    assert report.task("thyroid_nodule_det").metrics["iou"] == pytest.approx((30 / 390 + 1.0) / 2)
    assert report.task("IUGC").metrics["mre"] == pytest.approx((5 / 3) / 2)
    assert report.task("IUGC").metrics["mre_pct_diag"] == pytest.approx(100 * (5 / 3) / 50 / 2)


def test_cli_writes_json_and_table(folders, tmp_path, capsys):
    labels, pred, _ = folders
    out = tmp_path / "scores.json"
    assert main(["--input", str(labels), "--predictions", str(pred), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fetal_head" in text and "dice=1.0000" in text and "0 missing/malformed" in text
    data = json.loads(out.read_text())
    assert data["kinds"][0]["kind"] == "segmentation" and data["kinds"][0]["metrics"]["dice"] == 1.0


def test_cli_rejects_folder_not_in_layout(tmp_path, capsys):
    (tmp_path / "output").mkdir()
    (tmp_path / "input").mkdir()
    code = main(["--input", str(tmp_path / "input"), "--predictions", str(tmp_path / "output")])
    assert code == 2
    assert "no csv_files/ folder" in capsys.readouterr().err


def test_unlabelled_csv_is_rejected(folders):
    labels, pred, _ = folders
    _write_csv(labels / "csv_files" / "test.csv", ["image_path", "task_id", "task_name", "num_classes"],
               [dict(image_path="../x.png", task_id="lung_2cls", task_name="classification", num_classes=2)])
    with pytest.raises(LabelLayoutError, match="no label column"):
        evaluate(labels, pred)


def test_unknown_task_selection(folders):
    labels, pred, _ = folders
    with pytest.raises(TaskSelectionError, match="organ_cls"):
        evaluate(labels, pred, tasks=["organ_cls"])


def test_missing_ground_truth_mask_is_a_label_problem(folders):
    labels, pred, _ = folders
    (labels / "csv_files/../Segmentation/Two/fetal_head/MASKS/1.png").resolve().unlink()
    report = evaluate(labels, pred, tasks=["fetal_head"])
    assert report.label_problems == 1 and report.missing_predictions == 0
    assert report.task("fetal_head").rows == 1
    assert report.issues[0].scope == "label" and report.issues[0].row == 2


def test_folder_without_any_usable_label_is_rejected(folders, capsys):
    labels, pred, _ = folders
    for name in ("cls.csv", "det.csv", "reg.csv"):
        (labels / "csv_files" / name).unlink()
    shutil.rmtree(labels / "Segmentation" / "Two" / "fetal_head" / "MASKS")
    shutil.rmtree(labels / "Segmentation" / "Two" / "cervix_multi" / "MASKS")
    with pytest.raises(LabelLayoutError, match="no row .* could be scored"):
        evaluate(labels, pred)
    assert main(["--input", str(labels), "--predictions", str(pred)]) == 2
    assert "ground-truth mask" in capsys.readouterr().err
