"""python -m inference end to end on a tiny exported model: outputs, bad rows, exit codes, no torch."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.cli import main
from inference.errors import EXIT_FATAL, EXIT_OK, EXIT_ROWS_FAILED, EXIT_USAGE, EngineError

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ["image_path", "task_id", "task_name", "num_classes", "mask_path"]
SIZES = {"wide.png": (90, 160), "tall.png": (120, 70), "grey.bmp": (50, 80)}  # (H, W)

GOOD_ROWS = [
    ("../img/wide.png", "fetal_head", "segmentation", "2", "../Segmentation/ds/MASKS/wide.png"),
    ("../img/tall.png", "cardiac_multi", "segmentation", "4", "../Segmentation/multi/MASKS/tall.png"),
    ("../img/wide.png", "breast_3cls", "classification", "3", ""),
    ("../img/grey.bmp", "lung_2cls", "", "", ""),
    ("../img/tall.png", "thyroid_nodule_det", "detection", "1", ""),
    ("../img/wide.png", "IUGC", "Regression", "3", ""),
    ("../img/grey.bmp", "fetal_femur", "Regression", "2", ""),
]
BAD_ROWS = [
    ("../img/missing.png", "organ_cls", "classification", "6", ""),  # missing image
    ("../img/broken.png", "lung", "segmentation", "2", "../Segmentation/lung/broken.png"),  # unreadable
    ("../img/wide.png", "no_such_task", "detection", "1", ""),  # unknown task
    ("../img/wide.png", "fetal_head", "segmentation", "2", "../Seg/../../../escape.png"),  # escaping path
    ("../img/wide.png", "breast_2cls", "classification", "3", ""),  # disagrees with the model
]


def make_input(root: Path, rows) -> Path:
    rng = np.random.default_rng(5)
    (root / "img").mkdir(parents=True)
    (root / "csv_files").mkdir()
    cv2.imwrite(str(root / "img/wide.png"), rng.integers(0, 256, (*SIZES["wide.png"], 3), dtype=np.uint8))
    cv2.imwrite(str(root / "img/tall.png"), rng.integers(0, 256, (*SIZES["tall.png"], 3), dtype=np.uint8))
    cv2.imwrite(str(root / "img/grey.bmp"), rng.integers(0, 256, SIZES["grey.bmp"], dtype=np.uint8))
    (root / "img/broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with (root / "csv_files/test.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(tmp_path, model_dir, rows, *extra) -> tuple[int, Path]:
    inp = make_input(tmp_path / "in", rows)
    out = tmp_path / "out"
    code = main(["--input", str(inp), "--output", str(out), "--weights", str(model_dir), *extra])
    return code, out


def _json(out: Path, kind: str) -> list[dict]:
    return json.loads((out / f"{kind}_predictions.json").read_text())


def test_all_kinds_on_non_square_images(tmp_path, tiny_model_dir):
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    before = _snapshot(inp)
    code = main(["--input", str(inp), "--output", str(tmp_path / "out"), "--weights", str(tiny_model_dir),
                 "--batch-size", "2"])
    out = tmp_path / "out"
    assert code == EXIT_OK
    assert _snapshot(inp) == before  # nothing written into the input folder
    for mask_path, name, classes in [("Segmentation/ds/MASKS/wide.png", "wide.png", 2),
                                     ("Segmentation/multi/MASKS/tall.png", "tall.png", 4)]:
        mask = cv2.imread(str(out / mask_path), cv2.IMREAD_UNCHANGED)
        assert mask.shape == SIZES[name] and mask.dtype == np.uint8 and mask.max() < classes
    cls = _json(out, "classification")
    assert [(r["image_path"], r["task_id"]) for r in cls] == [("../img/wide.png", "breast_3cls"), ("../img/grey.bmp", "lung_2cls")]
    for record, k in zip(cls, (3, 2)):
        assert len(record["predicted_probs"]) == k and abs(sum(record["predicted_probs"]) - 1) < 1e-6
        assert record["predicted_class"] == int(np.argmax(record["predicted_probs"]))
    (det,) = _json(out, "detection")
    h, w = SIZES["tall.png"]
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in det["bbox_normalized"])
    assert det["bbox_pixels"] == pytest.approx([min(x1, x2) * w, min(y1, y2) * h, max(x1, x2) * w, max(y1, y2) * h])
    reg = {r["task_id"]: r for r in _json(out, "regression")}
    for task_id, name, points in [("IUGC", "wide.png", 3), ("fetal_femur", "grey.bmp", 2)]:
        h, w = SIZES[name]
        norm = np.array(reg[task_id]["predicted_points_normalized"]).reshape(-1, 2)
        assert norm.shape == (points, 2)
        np.testing.assert_allclose(np.array(reg[task_id]["predicted_points_pixels"]).reshape(-1, 2), norm * [w, h])


def test_batch_size_does_not_change_predictions(tmp_path, tiny_model_dir):
    _, out1 = _run(tmp_path / "a", tiny_model_dir, GOOD_ROWS, "--batch-size", "1")
    _, out8 = _run(tmp_path / "b", tiny_model_dir, GOOD_ROWS, "--batch-size", "8")
    for kind in ("classification", "detection", "regression"):
        for r1, r8 in zip(_json(out1, kind), _json(out8, kind)):
            for key, value in r1.items():
                if isinstance(value, list):
                    np.testing.assert_allclose(r8[key], value, rtol=1e-4, atol=1e-5)


def test_bad_rows_fail_alone_with_fallbacks(tmp_path, tiny_model_dir, caplog):
    caplog.set_level(logging.ERROR)
    code, out = _run(tmp_path, tiny_model_dir, GOOD_ROWS + BAD_ROWS)
    assert code == EXIT_ROWS_FAILED
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "row failed" in r.getMessage()]
    assert len(errors) == 5
    assert any("missing.png" in e and "not found" in e and "test.csv line 9" in e for e in errors)
    assert any("broken.png" in e and "cannot read" in e for e in errors)
    assert any("no_such_task" in e for e in errors) and any("escapes" in e for e in errors)
    cls = {(r["image_path"], r["task_id"]): r for r in _json(out, "classification")}
    assert cls[("../img/missing.png", "organ_cls")]["predicted_probs"] == [1 / 6] * 6
    assert cls[("../img/wide.png", "breast_2cls")]["predicted_probs"] == [1 / 3] * 3  # the CSV's view
    det = {r["task_id"]: r for r in _json(out, "detection")}
    assert det["no_such_task"]["bbox_pixels"] == pytest.approx([40.0, 22.5, 120.0, 67.5])  # centred box, 160 x 90
    assert not cv2.imread(str(out / "Segmentation/lung/broken.png"), cv2.IMREAD_UNCHANGED).any()
    assert not list(tmp_path.rglob("escape.png"))
    assert len(cls) == 4 and len(_json(out, "regression")) == 2  # the good rows are all there


def test_strict_gives_failed_rows_no_prediction(tmp_path, tiny_model_dir):
    code, out = _run(tmp_path, tiny_model_dir, GOOD_ROWS[2:4] + BAD_ROWS[:1], "--strict")
    assert code == EXIT_ROWS_FAILED
    assert [r["task_id"] for r in _json(out, "classification")] == ["breast_3cls", "lung_2cls"]
    assert _json(out, "detection") == [] and _json(out, "regression") == []


def test_torch_fallback_when_onnxruntime_fails(tmp_path, tiny_model_dir, monkeypatch, caplog):
    from inference.engines import onnx_engine as engine_module

    _, reference = _run(tmp_path / "ref", tiny_model_dir, GOOD_ROWS[2:6])

    def broken(self, task, batch):
        raise EngineError("simulated ONNX Runtime failure")

    monkeypatch.setattr(engine_module.OnnxEngine, "run", broken)
    caplog.set_level(logging.WARNING)
    code, out = _run(tmp_path / "fb", tiny_model_dir, GOOD_ROWS[2:6])
    assert code == EXIT_OK
    assert any("falling back to PyTorch" in r.getMessage() and "simulated" in r.getMessage() for r in caplog.records)
    for kind in ("classification", "detection", "regression"):
        for got, want in zip(_json(out, kind), _json(reference, kind)):
            for key, value in want.items():
                if isinstance(value, list):
                    np.testing.assert_allclose(got[key], value, rtol=1e-3, atol=1e-4)


def test_onnx_path_never_imports_torch(tmp_path, tiny_model_dir):
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    code = (
        "import sys\nfrom inference.cli import main\n"
        f"rc = main(['--input', {str(inp)!r}, '--output', {str(tmp_path / 'out')!r}, '--weights', {str(tiny_model_dir)!r}])\n"
        "print('TORCH-IMPORTED' if 'torch' in sys.modules else 'NO-TORCH')\nsys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.strip() == "NO-TORCH"
    assert "CPUExecutionProvider" in done.stderr and "images/s" in done.stderr


def test_fatal_errors_exit_1_with_a_fix(tmp_path, tiny_model_dir, caplog):
    caplog.set_level(logging.ERROR)
    inp = make_input(tmp_path / "in", GOOD_ROWS[:1])
    out = str(tmp_path / "out")
    cases = [
        (["--input", str(tmp_path / "nope"), "--output", out, "--weights", str(tiny_model_dir)], "does not exist"),
        (["--input", str(inp), "--output", out, "--weights", str(tmp_path)], "no manifest"),
        (["--input", str(inp), "--output", str(inp / "out"), "--weights", str(tiny_model_dir)], "inside the input"),
        (["--input", str(inp), "--output", str(inp / "csv_files/test.csv/out"), "--weights", str(tiny_model_dir)],
         "inside the input"),
    ]
    cases.append((["--input", str(inp), "--output", out, "--weights", str(tiny_model_dir), "--precision", "int8"],
                  "python export.py"))
    (tmp_path / "file").write_text("x")
    cases.append((["--input", str(inp), "--output", str(tmp_path / "file/out"), "--weights", str(tiny_model_dir)],
                  "not writable"))
    (tmp_path / "nocsv/csv_files").mkdir(parents=True)
    cases.append((["--input", str(tmp_path / "nocsv"), "--output", out, "--weights", str(tiny_model_dir)], "no .csv"))
    for argv, message in cases:
        caplog.clear()
        assert main(argv) == EXIT_FATAL, argv
        assert any(message in r.getMessage() for r in caplog.records), (message, [r.getMessage() for r in caplog.records])


def test_usage_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--batch-size", "0"])
    assert exc.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes" in text and "3  some rows failed" in text and "/opt/ml/model" in text


def test_predictor_matches_the_batch_run(tmp_path, tiny_model_dir):
    from contract.imaging import read_image
    from inference.engines.predictor import Predictor

    code, out = _run(tmp_path, tiny_model_dir, GOOD_ROWS)
    assert code == EXIT_OK
    predictor = Predictor.open(tiny_model_dir)
    [seg] = predictor.predict("cardiac_multi", [read_image(tmp_path / "in/img/tall.png")])
    batch_mask = cv2.imread(str(out / "Segmentation/multi/MASKS/tall.png"), cv2.IMREAD_UNCHANGED)
    assert seg.mask.shape == SIZES["tall.png"] and (seg.mask == batch_mask).mean() > 0.999
    [reg] = predictor.predict("IUGC", [read_image(tmp_path / "in/img/wide.png")])
    record = reg.record("../img/wide.png", "IUGC")
    [want] = [r for r in _json(out, "regression") if r["task_id"] == "IUGC"]
    np.testing.assert_allclose(record.predicted_points_pixels, want["predicted_points_pixels"], rtol=1e-4, atol=1e-3)


def test_an_output_that_is_a_file_and_a_missing_model_folder_are_named(tmp_path, caplog):
    inp = Path(__file__).resolve().parent.parent / "test" / "input"
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    assert main(["--input", str(inp), "--output", str(a_file)]) == 1
    assert "is a file, not a folder" in caplog.text and a_file.read_text() == "keep me"
    assert main(["--input", str(inp), "--output", str(tmp_path / "out"), "--weights", str(tmp_path / "absent")]) == 1
    assert "does not exist; pass --weights DIR" in caplog.text
