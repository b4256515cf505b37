"""Official mode (the challenge's evaluate.py rules) on hand-made edge cases; expected values by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from evaluation import official_metrics as OM
from evaluation.__main__ import main
from evaluation.official import evaluate_official


def _csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def _png(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask.astype(np.uint8))


def _mask(cells: dict[tuple[int, int], int], shape=(3, 4)) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for (y, x), c in cells.items():
        m[y, x] = c
    return m


@pytest.fixture
def seg(tmp_path):
    """Task seg3 (3 classes, 3x4 masks, diagonal 5): 5 rows covering the segmentation edges."""
    labels, pred = tmp_path / "in", tmp_path / "out"
    cases = {
        0: (_mask({(0, 0): 1}), _mask({(0, 0): 1})),  # exact; class 2 absent from both
        1: (_mask({(0, 0): 1}), _mask({})),  # class 1 only in the truth (one-sided empty)
        2: (_mask({(0, 0): 1}), None),  # prediction missing -> skipped
        3: (_mask({}), _mask({(2, 3): 2})),  # empty truth; class 2 only in the prediction
        4: (_mask({(0, 0): 1}), np.kron(_mask({(0, 0): 1}), np.ones((2, 2), np.uint8))),  # 6x8, resized
    }
    rows = []
    for i, (truth, prediction) in cases.items():
        rel = f"../Segmentation/seg3/masks/{i}.png"
        _png(labels / "Segmentation/seg3/masks" / f"{i}.png", truth)
        if prediction is not None:
            _png(pred / "Segmentation/seg3/masks" / f"{i}.png", prediction)
        rows.append(dict(image_path=f"../Segmentation/seg3/images/{i}.png", task_id="seg3",
                         task_name="segmentation", num_classes=3, mask_path=rel))
    _csv(labels / "csv_files/seg3.csv", rows)
    return labels, pred


def test_segmentation_edges_by_hand(seg):
    report = evaluate_official(*seg)
    task = report.task("seg3")
    assert task.rows == 4 and task.missing == 1
    # class 1 per image: Dice 1, 0, (skipped), 1 (both empty), 1 (resized) ; HD 0, 5, -, 0, 0
    # class 2 per image: Dice 1, 1, -, 0, 1 ; HD 0, 0, -, 5, 0
    assert task.per_class["1"]["dice"] == pytest.approx(3 / 4, abs=1e-12)
    assert task.per_class["1"]["hd"] == pytest.approx(5 / 4, abs=1e-12)
    assert task.per_class["2"]["dice"] == pytest.approx(3 / 4, abs=1e-12)
    assert task.per_class["2"]["hd"] == pytest.approx(5 / 4, abs=1e-12)
    # background: 11 vs 11 px equal; 11 truth in 12 pred; 12 truth vs 11 pred; equal -> 2*11/23 twice
    assert task.per_class["0"]["dice"] == pytest.approx((1 + 22 / 23 + 22 / 23 + 1) / 4, abs=1e-12)
    assert task.metrics["dice"] == pytest.approx(3 / 4, abs=1e-12)
    assert task.metrics["hd"] == pytest.approx(5 / 4, abs=1e-12)
    assert "official: row skipped" in report.issues[0].reason and report.issues[0].row == 3


def _classification_folder(tmp_path: Path, tasks: dict[str, tuple[int, list[int]]], records: list[dict]) -> tuple[Path, Path]:
    labels, pred = tmp_path / "in", tmp_path / "out"
    for task, (k, ys) in tasks.items():
        _csv(labels / f"csv_files/{task}.csv", [dict(image_path=f"{task}/{i}.png", task_id=task,
                                                     task_name="classification", num_classes=k, mask=y)
                                                for i, y in enumerate(ys)])
    pred.mkdir(parents=True)
    (pred / "classification_predictions.json").write_text(json.dumps(records))
    return labels, pred


def _rec(task, i, cls, probs="absent"):
    rec = dict(image_path=f"{task}/{i}.png", task_id=task, predicted_class=cls)
    if probs != "absent":
        rec["predicted_probs"] = probs
    return rec


def test_classification_edges_by_hand(tmp_path):
    full = [[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]]
    records = [_rec("full", 1, 2, [0.1, 0.1, 0.8])]  # overridden by the later duplicate (last wins)
    records += [_rec("full", i, int(np.argmax(p)), p) for i, p in enumerate(full)]
    records += [_rec("absent", i, c, [0.6, 0.3, 0.1] if c == 0 else [0.2, 0.7, 0.1]) for i, c in enumerate([0, 1, 1])]
    records += [_rec("noprobs", 0, 0, [0.9, 0.1]), _rec("noprobs", 1, 1)]
    records += [_rec("onecls", i, 1, [0.4, 0.6]) for i in range(2)]
    records += [_rec("notsum", i, i, [0.5, 0.5, 0.5]) for i in range(3)]
    labels, pred = _classification_folder(tmp_path, {
        "full": (3, [0, 1, 2, 2]), "absent": (3, [0, 1, 1]), "noprobs": (2, [0, 1]),
        "onecls": (2, [1, 1]), "notsum": (3, [0, 1, 2]), "nopred": (2, [0, 1]),
    }, records)
    report = evaluate_official(labels, pred)
    full_task = report.task("full")
    # one-vs-rest: class 0 and 1 separate perfectly (1.0); class 2 positives {0.4, 0.1} vs negatives
    # {0.1, 0.2}: pairs 1 + 1 + 0.5 (tie) + 0 = 2.5 of 4 -> 0.625; macro (1 + 1 + 0.625) / 3
    assert full_task.metrics["auc"] == pytest.approx(2.625 / 3, abs=1e-12)
    assert full_task.metrics["accuracy"] == pytest.approx(3 / 4)  # predicted 0, 1, 2, 0
    absent = report.task("absent")
    assert absent.metrics["auc"] == 0.0 and absent.metrics["accuracy"] == 1.0
    assert report.task("noprobs").metrics["auc"] == 0.0 and report.task("noprobs").metrics["accuracy"] == 1.0
    assert report.task("onecls").metrics["auc"] == 0.0
    assert report.task("notsum").metrics["auc"] == 0.0 and report.task("notsum").metrics["mcc"] == 1.0
    nopred = report.task("nopred")
    assert nopred.rows == 0 and nopred.missing == 2 and nopred.metrics["auc"] == 0.0
    # the kind mean leaves out the task without any scored row
    kind = report.kind("classification")
    assert kind.tasks == 5 and kind.metrics["auc"] == pytest.approx(2.625 / 3 / 5, abs=1e-12)
    assert any("absent from the labels" in n for n in report.notes)


def test_detection_and_regression_edges_by_hand(tmp_path):
    labels, pred = tmp_path / "in", tmp_path / "out"
    box = dict(task_id="det", task_name="detection", num_classes=1)
    _csv(labels / "csv_files/det.csv", [
        dict(image_path="d0", x_min=0, y_min=0, x_max=2, y_max=2, **box),  # vs [1,1,3,3]: 1 / 7
        dict(image_path="d1", x_min=0, y_min=0, x_max=2, y_max=2, **box),  # vs inverted [2,0,0,2]: 0
        dict(image_path="d2", x_min=1, y_min=1, x_max=1, y_max=1, **box),  # identical degenerate: 0
        dict(image_path="d3", x_min=0, y_min=0, x_max=2, y_max=2, **box),  # no record: skipped
    ])
    reg = dict(task_id="pts", task_name="Regression", num_classes=2)
    _csv(labels / "csv_files/pts.csv", [
        dict(image_path="r0", point_1_xy="[0, 0]", point_2_xy="[3, 4]", **reg),  # distances 0, 5
        dict(image_path="r1", point_1_xy="[1, 1]", point_2_xy="", **reg),  # missing point = [0, 0]: 0, 10
    ])
    pred.mkdir()
    (pred / "detection_predictions.json").write_text(json.dumps([
        dict(image_path=p, task_id="det", bbox_pixels=b)
        for p, b in (("d0", [1, 1, 3, 3]), ("d1", [2, 0, 0, 2]), ("d2", [1, 1, 1, 1]))]))
    (pred / "regression_predictions.json").write_text(json.dumps([
        dict(image_path="r0", task_id="pts", predicted_points_pixels=[0, 0, 0, 0]),
        dict(image_path="r1", task_id="pts", predicted_points_pixels=[1, 1, 6, 8])]))
    report = evaluate_official(labels, pred)
    det = report.task("det")
    assert det.rows == 3 and det.missing == 1
    assert det.metrics["iou"] == pytest.approx((1 / 7 + 0 + 0) / 3, abs=1e-12)
    pts = report.task("pts")
    assert pts.metrics["mre"] == pytest.approx((2.5 + 5.0) / 2, abs=1e-12)
    assert "mre_pct_diag" not in pts.metrics


def test_metric_functions_by_hand():
    assert OM.box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert OM.box_iou([1, 1, 1, 1], [1, 1, 1, 1]) == 0.0
    assert OM.radial_error([0, 0], [3, 4, 6, 8]) == pytest.approx(7.5)  # one point broadcast against two
    with pytest.raises(ValueError, match="cannot be paired"):
        OM.radial_error([0, 0, 1, 1], [0, 0, 1, 1, 2, 2])
    value, note = OM.auc([0, 1, 1], [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]], 3)
    assert value == 0.0 and "[2]" in note
    assert OM.auc([0, 1, 0, 1], [[0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.9, 0.1]], 2)[0] == pytest.approx(0.25)  # pairs: 1 of 4


def test_missing_predictions_file_gives_no_scores_for_the_kind(tmp_path):
    labels, pred = _classification_folder(tmp_path, {"c": (2, [0, 1])}, [])
    (pred / "classification_predictions.json").unlink()
    report = evaluate_official(labels, pred)
    assert report.task("c").rows == 0 and report.kinds == []
    assert any("classification_predictions.json is missing" in n for n in report.notes)


def test_cli_default_is_official_and_strict_is_an_option(seg, capsys, tmp_path):
    labels, pred = seg
    # one of the five masks is missing: exit 1, the count first, the JSON still written
    assert main(["--input", str(labels), "--predictions", str(pred), "--json", str(tmp_path / "o.json")]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("MISSING: 1 of 5 rows have no usable prediction")
    assert out.splitlines()[2].startswith("metrics: official") and "dice=0.7500  hd=1.2500" in out
    assert json.loads((tmp_path / "o.json").read_text())["metrics_mode"] == "official"
    assert main(["--input", str(labels), "--predictions", str(pred), "--metrics", "strict", "--allow-missing"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].startswith("metrics: strict") and "scored as worst case" in out


def test_inputs_that_stop_the_official_script_are_noted_not_fatal(tmp_path):
    labels, pred = _classification_folder(tmp_path, {"c": (2, [0, 1])}, [_rec("c", 0, 0, [0.8, 0.2]), {"task_id": "c"}])
    report = evaluate_official(labels, pred)
    assert report.task("c").rows == 1 and report.task("c").missing == 1
    assert any("1 record(s) without task_id, image_path or predicted_class" in n for n in report.notes)
    (pred / "classification_predictions.json").write_text("[{")
    report = evaluate_official(labels, pred)
    assert report.task("c").rows == 0 and any("is not valid JSON" in n for n in report.notes)
    assert not any("is missing" in n for n in report.notes)
