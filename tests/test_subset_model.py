"""A model that serves some of the official tasks: the other tasks' rows are "not served", one line per task."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from inference.cli import main
from tests.conftest import make_tiny_config

ROOT = Path(__file__).resolve().parent.parent
INPUT = ROOT / "test" / "input"
SERVED = ("fetal_head", "breast_2cls", "fetal_femur")


@pytest.fixture(scope="module")
def subset_model_dir(tmp_path_factory) -> Path:
    import torch

    from contract.tasks import TaskRegistry
    from exporter import export_model
    from network import build_model

    torch.manual_seed(7)
    config = make_tiny_config(tasks=[TaskRegistry.official()[t] for t in SERVED])
    out = tmp_path_factory.mktemp("subset") / "model"
    export_model(build_model(config).eval(), out, source={"checkpoint": "tiny subset (random weights)"})
    return out


def test_rows_of_unserved_official_tasks_are_one_line_per_task_and_not_a_failure(subset_model_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    code = main(["--input", str(INPUT), "--output", str(out), "--weights", str(subset_model_dir), "--device", "cpu"])
    assert code == 0  # a subset model is a choice, not a failure
    assert "row failed" not in caplog.text
    unserved_lines = [r.getMessage() for r in caplog.records if "not served by this model" in r.getMessage()]
    assert len(unserved_lines) == 27 - len(SERVED)  # one line per unserved task, in the summary
    assert any("FUGC (2 rows, fallback predictions)" in line for line in unserved_lines)
    assert "6 rows predicted" not in caplog.text and "48 of tasks the model does not serve" in caplog.text
    records = json.loads((out / "classification_predictions.json").read_text())
    assert len(records) == 18  # every classification row has a record: the fallback for the unserved ones
    assert len(list((out / "Segmentation").rglob("*.png"))) == 24  # and every segmentation row a mask


def test_an_unknown_task_id_is_still_a_failed_row(subset_model_dir, tmp_path, caplog):
    inp = tmp_path / "in"
    (inp / "csv_files").mkdir(parents=True)
    image = next((INPUT / "Classification").rglob("*.png"))
    (inp / "csv_files" / "x.csv").write_text(f"image_path,task_id,task_name,num_classes\n{image},my_task,classification,2\n")
    code = main(["--input", str(inp), "--output", str(tmp_path / "out"), "--weights", str(subset_model_dir),
                 "--device", "cpu"])
    assert code == 3
    assert "row failed" in caplog.text and "my_task" in caplog.text
