"""``python -m biometry`` and ``measure_run`` on small hand-made runs: files, exit codes, spacing, labels.

Each test writes an input folder in the challenge layout (CSV, images, label masks or label
points) and a prediction folder (masks at the CSV's ``mask_path`` without ``../``, and
``regression_predictions.json``), with shapes of known size, then checks what comes out.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from biometry import measure_run, write_measurements
from biometry.cli import main
from biometry.draw import draw_measurements
from biometry.geometry import ramanujan_perimeter

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (480, 640)


def head_mask(a: float, b: float, angle: float = 15.0) -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    cv2.ellipse(mask, ((320.0, 240.0), (2 * a, 2 * b), angle), 1, -1)
    return mask


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


class Run:
    """An input folder and a prediction folder under ``tmp_path``."""

    def __init__(self, root: Path):
        self.input, self.pred = root / "in", root / "pred"
        self.input.mkdir()
        self.pred.mkdir()
        self.head_rows: list[dict] = []
        self.femur_rows: list[dict] = []
        self.femur_records: list[dict] = []

    def head(self, name: str, pred: np.ndarray | None, label: np.ndarray | None = None, **extra) -> str:
        image_path = f"../Segmentation/Two/fetal_head/images/{name}.png"
        mask_path = f"../Segmentation/Two/fetal_head/masks/{name}.png"
        write_png(self.input / "csv_files" / image_path, np.full(SHAPE, 60, np.uint8))
        if label is not None:
            write_png(self.input / "csv_files" / mask_path, label)
        if pred is not None:
            write_png(self.pred / mask_path[3:], pred)
        self.head_rows.append({"image_path": image_path, "task_id": "fetal_head", "task_name": "segmentation",
                               "num_classes": "2", "mask_path": mask_path, **extra})
        return image_path

    def femur(self, name: str, pred: list[float], label: list[float] | None = None, image: str = "png",
              image_spacing: float | None = None, **extra) -> str:
        image_path = f"../Regression/fetal_femur/images/{name}.{image}"
        target = self.input / "csv_files" / image_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if image == "png":
            write_png(target, np.full(SHAPE, 60, np.uint8))
        else:
            itk = sitk.GetImageFromArray(np.full(SHAPE, 60, np.uint8))
            if image_spacing is not None:
                itk.SetSpacing((image_spacing, image_spacing))
            sitk.WriteImage(itk, str(target))
        row = {"image_path": image_path, "task_id": "fetal_femur", "task_name": "Regression", "num_classes": "2",
               **extra}
        if label is not None:
            row.update(point_1_xy=json.dumps(label[:2]), point_2_xy=json.dumps(label[2:]))
        self.femur_rows.append(row)
        h, w = SHAPE
        normalized = [v / (w if i % 2 == 0 else h) for i, v in enumerate(pred)]
        self.femur_records.append({"image_path": image_path, "task_id": "fetal_femur",
                                   "predicted_points_normalized": normalized, "predicted_points_pixels": pred})
        return image_path

    def finish(self) -> "Run":
        if self.head_rows:
            write_csv(self.input / "csv_files" / "fetal_head.csv", self.head_rows)
        if self.femur_rows:
            write_csv(self.input / "csv_files" / "fetal_femur.csv", self.femur_rows)
            (self.pred / "regression_predictions.json").write_text(json.dumps(self.femur_records))
        return self


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "biometry", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_cli_writes_the_measurements_and_the_error_against_the_labels(tmp_path):
    run = Run(tmp_path)
    run.head("a", head_mask(150, 100), head_mask(155, 100))
    run.head("b", head_mask(120, 110, 70), head_mask(120, 110, 70))
    run.femur("f", [100.0, 100.0, 400.0, 140.0], [100.0, 100.0, 400.0, 100.0])
    run.finish()
    out = tmp_path / "res" / "bio.json"
    before = {p: p.read_bytes() for p in run.pred.rglob("*") if p.is_file()}
    done = run_cli("--input", str(run.input), "--predictions", str(run.pred), "--out", str(out),
                   "--pixel-spacing", "0.2")
    assert done.returncode == 0, done.stderr
    records = json.loads(out.read_text())
    assert all(set(r) == {"task_id", "image_path", "measure", "value", "unit"} for r in records)
    by = {(r["image_path"].split("/")[-1], r["measure"]): r for r in records}
    assert by[("a.png", "HC")]["value"] == pytest.approx(ramanujan_perimeter(150, 100) * 0.2, rel=0.01)
    assert by[("a.png", "HC")]["unit"] == "mm"
    assert by[("f.png", "FL")]["value"] == pytest.approx(math.hypot(300, 40) * 0.2, rel=0.005)
    assert len(records) == 7  # HC, BPD, OFD twice; FL
    with (tmp_path / "res" / "bio.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["measure"], float(r["value"])) for r in rows] == [(r["measure"], r["value"]) for r in records]
    errors = {m["measure"]: m for m in json.loads((tmp_path / "res" / "bio_errors.json").read_text())["measures"]}
    expected_hc = (ramanujan_perimeter(155, 100) - ramanujan_perimeter(150, 100)) * 0.2 / 2  # one of two rows off
    assert errors["HC"]["mae"] == pytest.approx(expected_hc, rel=0.1) and errors["HC"]["n"] == 2
    assert errors["FL"]["mae"] == pytest.approx((math.hypot(300, 40) - 300) * 0.2, rel=0.01)
    assert errors["HC"]["unit"] == "mm"
    assert "MAE" in done.stderr
    report = json.loads((tmp_path / "res" / "bio_report.json").read_text())
    assert report["problems"] == [] and report["rows"] == 3 and report["spacing_sources"] == {"flag": 3}
    assert {p: p.read_bytes() for p in run.pred.rglob("*") if p.is_file()} == before  # the run's outputs untouched


def test_bad_rows_are_named_and_the_others_measured(tmp_path):
    run = Run(tmp_path)
    run.head("good", head_mask(150, 100))
    run.head("empty", np.zeros(SHAPE, np.uint8))
    border = np.zeros(SHAPE, np.uint8)
    cv2.ellipse(border, ((60.0, 240.0), (300.0, 200.0), 0.0), 1, -1)
    run.head("border", border)
    run.head("missing", None)
    run.finish()
    out = tmp_path / "bio.json"
    done = run_cli("--input", str(run.input), "--predictions", str(run.pred), "--out", str(out))
    assert done.returncode == 3, done.stderr
    records = json.loads(out.read_text())
    assert {r["image_path"].split("/")[-1] for r in records} == {"good.png"}
    assert {r["unit"] for r in records} == {"px"}  # no spacing anywhere
    problems = json.loads((tmp_path / "bio_report.json").read_text())["problems"]
    reasons = {p["image_path"].split("/")[-1]: (p["row"], p["reason"]) for p in problems}
    assert reasons["empty.png"][0] == 2 and "empty" in reasons["empty.png"][1]
    assert "border" in reasons["border.png"][1]
    assert "missing" in reasons["missing.png"][1]
    assert all(p["csv_file"] == "fetal_head.csv" for p in problems)
    assert "fetal_head.csv row 2" in done.stderr and "empty.png" in done.stderr


def test_spacing_precedence_flag_then_csv_column_then_image_header(tmp_path):
    run = Run(tmp_path)
    points = [100.0, 100.0, 400.0, 100.0]  # 300 px apart
    run.femur("csv_and_mha", points, image="mha", image_spacing=0.25, pixel_spacing="0.3")
    run.femur("mha_only", points, image="mha", image_spacing=0.25, pixel_spacing="")
    run.femur("mha_default", points, image="mha", image_spacing=None, pixel_spacing="")
    run.femur("png_only", points, pixel_spacing="")
    run.femur("dicom", points, image="dcm", image_spacing=0.15, pixel_spacing="")
    run.finish()
    got = {m.image_path.split("/")[-1]: m for m in measure_run(run.input, run.pred).measurements}
    assert (got["csv_and_mha.mha"].value, got["csv_and_mha.mha"].unit) == (pytest.approx(90.0), "mm")
    assert got["csv_and_mha.mha"].spacing_source == "csv"
    assert (got["mha_only.mha"].value, got["mha_only.mha"].spacing_source) == (pytest.approx(75.0), "image")
    assert (got["mha_default.mha"].value, got["mha_default.mha"].unit) == (pytest.approx(300.0), "px")
    assert (got["png_only.png"].value, got["png_only.png"].unit) == (pytest.approx(300.0), "px")
    assert (got["dicom.dcm"].value, got["dicom.dcm"].unit) == (pytest.approx(45.0), "mm")
    flagged = measure_run(run.input, run.pred, pixel_spacing=0.1).measurements
    assert len(flagged) == 5
    assert {(round(m.value, 6), m.unit, m.spacing_source) for m in flagged} == {(30.0, "mm", "flag")}


def test_malformed_spacing_cell_is_a_row_problem(tmp_path):
    run = Run(tmp_path)
    run.femur("bad", [0.0, 0.0, 10.0, 0.0], pixel_spacing="abc")
    run.femur("good", [0.0, 0.0, 10.0, 0.0], pixel_spacing="0.5")
    run.finish()
    result = measure_run(run.input, run.pred)
    assert [m.value for m in result.measurements] == [pytest.approx(5.0)]
    assert len(result.problems) == 1 and "pixel_spacing" in result.problems[0].reason
    assert result.exit_code == 3


@pytest.mark.parametrize("case", ["no_predictions", "no_input", "no_csv"])
def test_missing_folders_are_fatal(tmp_path, case):
    run = Run(tmp_path)
    run.head("a", head_mask(150, 100))
    run.finish()
    args = {"input": run.input, "pred": run.pred}
    if case == "no_predictions":
        args["pred"] = tmp_path / "nowhere"
    elif case == "no_input":
        args["input"] = tmp_path / "nowhere"
    else:
        for p in (run.input / "csv_files").glob("*.csv"):
            p.unlink()
    out = tmp_path / "o" / "bio.json"
    assert main(["--input", str(args["input"]), "--predictions", str(args["pred"]), "--out", str(out)]) == 1
    assert not out.exists()


def test_usage_errors(tmp_path, capsys):
    run = Run(tmp_path)
    run.head("a", head_mask(150, 100))
    run.finish()
    base = ["--input", str(run.input), "--predictions", str(run.pred)]
    assert main([*base, "--out", str(tmp_path / "bio.txt")]) == 2
    assert main([*base, "--out", str(tmp_path / "bio.json"), "--pixel-spacing", "abc"]) == 2
    assert main([*base, "--out", str(tmp_path / "bio.json"), "--pixel-spacing", "-0.2"]) == 2
    assert main([*base, "--out", str(run.input / "bio.json")]) == 2
    (run.pred / "regression_predictions.json").write_text("[]")
    assert main([*base, "--out", str(run.pred / "regression_predictions.json")]) == 2
    assert (run.pred / "regression_predictions.json").read_text() == "[]"
    assert "must end in .json" in capsys.readouterr().err


def test_missing_keypoint_file_is_a_row_problem(tmp_path):
    run = Run(tmp_path)
    run.femur("f", [0.0, 0.0, 10.0, 0.0])
    run.finish()
    (run.pred / "regression_predictions.json").unlink()
    result = measure_run(run.input, run.pred)
    assert result.measurements == [] and "regression_predictions.json is missing" in result.problems[0].reason


def test_library_result_carries_overlays_that_draw(tmp_path):
    run = Run(tmp_path)
    run.head("a", head_mask(150, 100))
    run.femur("f", [100.0, 100.0, 400.0, 140.0])
    run.finish()
    result = measure_run(run.input, run.pred, pixel_spacing="0.2,0.2")
    paths = write_measurements(result, tmp_path / "out" / "m.json")
    assert sorted(p.name for p in paths.values()) == ["m.csv", "m.json", "m_errors.json", "m_report.json"]
    assert json.loads(paths["errors"].read_text())["labelled"] is False
    head = [m for m in result.measurements if m.task_id == "fetal_head"]
    assert {m.overlay.kind for m in head} == {"ellipse", "segment"}
    hc = next(m for m in head if m.measure == "HC")
    polygon = np.array(hc.overlay.points)
    radii = np.linalg.norm(polygon - (320, 240), axis=1)
    assert radii.min() == pytest.approx(100, abs=1.5) and radii.max() == pytest.approx(150, abs=1.5)
    image = np.zeros(SHAPE, np.uint8)
    drawn = draw_measurements(image, head)
    assert drawn.shape == (*SHAPE, 3) and image.max() == 0  # a copy, the input untouched
    x, y = (int(round(v)) for v in polygon[0])
    assert drawn[y - 2:y + 3, x - 2:x + 3].max() > 0  # the ellipse is drawn where it was fitted
    femur = [m for m in result.measurements if m.task_id == "fetal_femur"]
    assert femur[0].overlay.points == [(100.0, 100.0), (400.0, 140.0)]
    assert draw_measurements(image, femur)[120, 250].max() > 0  # the caliper's middle


def test_biometry_imports_only_the_contract_and_light_libraries():
    """The runtime will call it (``--biometry``): no torch, onnxruntime, runtime, evaluation or training imports."""
    import ast

    forbidden = {"torch", "onnxruntime", "onnx", "inference", "evaluation", "training", "network", "exporter",
                 "review", "benchmarks", "phantoms"}
    found = []
    for path in sorted((ROOT / "biometry").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert found == []


def test_phantom_labels_taken_as_predictions_give_zero_error(tmp_path):
    """The real layout end to end: phantoms' label masks and points copied into a prediction folder."""
    import shutil

    from contract.csv_layout import list_csv_files, read_csv_file, resolve
    from phantoms.generate import generate_dataset

    tasks = {"fetal_head": 3, "fetal_abdomen_multi": 3, "fetal_femur": 3, "head_symphysis_multi": 3}
    labelled = generate_dataset(tmp_path / "ph", seed=7, counts=tasks, progress=False, size_scale=0.5)
    pred = tmp_path / "pred"
    records = []
    for path in list_csv_files(labelled):
        for rec in read_csv_file(path).records:
            if rec.get("mask_path"):
                target = pred / rec.cells["mask_path"].removeprefix("../")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(resolve(labelled, rec.cells["mask_path"]), target)
            else:
                pixels = json.loads(rec.cells["point_1_xy"]) + json.loads(rec.cells["point_2_xy"])
                records.append({"image_path": rec.cells["image_path"], "task_id": rec.cells["task_id"],
                                "predicted_points_normalized": [0.5] * 4, "predicted_points_pixels": pixels})
    (pred / "regression_predictions.json").write_text(json.dumps(records))
    out = tmp_path / "bio" / "b.json"
    code = main(["--input", str(labelled), "--predictions", str(pred), "--out", str(out), "--pixel-spacing", "0.3"])
    report = json.loads(out.with_name("b_report.json").read_text())
    assert code == (3 if report["problems"] else 0)
    assert all(p["task_id"] == "head_symphysis_multi" for p in report["problems"])  # overlapping phantoms only
    errors = json.loads(out.with_name("b_errors.json").read_text())
    assert errors["labelled"] is True
    assert {m["measure"] for m in errors["measures"]} == {"HC", "BPD", "OFD", "AC", "FL", "AoP", "HSD"}
    for m in errors["measures"]:
        assert m["n"] >= 2 and m["mae"] == 0.0 and m["label_only"] == 0 and m["prediction_only"] == 0
        assert m["unit"] == ("deg" if m["measure"] == "AoP" else "mm")
