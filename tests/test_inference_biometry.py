"""``python -m inference --biometry``: the measurements file beside the three JSON files, the outputs unaltered."""

from __future__ import annotations

import json
from pathlib import Path

from inference.cli import main

ROOT = Path(__file__).resolve().parent.parent
INPUT = ROOT / "test" / "input"
PREDICTION_FILES = ("classification_predictions.json", "detection_predictions.json", "regression_predictions.json")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_biometry_writes_its_files_and_leaves_the_outputs_as_a_plain_run(tiny_model_dir, tmp_path, caplog):
    args = ["--input", str(INPUT), "--weights", str(tiny_model_dir), "--device", "cpu"]
    assert main([*args, "--output", str(tmp_path / "plain")]) == 0
    assert main([*args, "--output", str(tmp_path / "measured"), "--biometry"]) == 0
    plain, measured = _files(tmp_path / "plain"), _files(tmp_path / "measured")
    extra = sorted(set(measured) - set(plain))
    assert extra == ["biometry.csv", "biometry.json", "biometry_errors.json", "biometry_report.json"]
    assert {name: measured[name] for name in plain} == plain  # the run's own outputs, byte for byte
    records = json.loads(measured["biometry.json"])
    measures = {r["measure"] for r in records}
    assert {r["task_id"] for r in records} <= {"fetal_head", "fetal_abdomen_multi", "fetal_femur", "head_symphysis_multi"}
    assert "FL" in measures  # two femur points always give a length, whatever the tiny model predicts
    assert all(r["unit"] in ("mm", "px", "deg") for r in records)
    assert "biometry:" in caplog.text
    assert "did not write" not in caplog.text  # the audit counts the biometry files as this run's


def test_biometry_is_not_written_without_the_option(tiny_model_dir, tmp_path):
    assert main(["--input", str(INPUT), "--output", str(tmp_path / "out"), "--weights", str(tiny_model_dir),
                 "--device", "cpu"]) == 0
    assert not list((tmp_path / "out").glob("biometry*"))
