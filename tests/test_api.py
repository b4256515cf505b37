"""inference.api predicts what the CLI writes: equal records, equal masks, in the order given."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract.kinds import PREDICTION_FILES
from contract.tasks import TaskKind, UnknownTaskError
from inference import api
from inference.layouts.batch_rows import read_rows
from inference.cli import main
from inference.errors import EXIT_OK

REPO = Path(__file__).resolve().parent.parent
INPUT = REPO / "test" / "input"
WEIGHTS = REPO / "model_weights"


@pytest.fixture(scope="module")
def model() -> api.Model:
    # the same settings as the CLI run below: with --precision auto a long-lived Model may take the bf16 CPU
    # variant where the CLI's 54 images do not pay for its start-up (docs/cpu.md), and agree only within its check
    return api.load(WEIGHTS, device="cpu", precision="fp32", batch_size=3)


@pytest.fixture(scope="module")
def cli_output(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("api") / "cli"
    assert main(["--input", str(INPUT), "--output", str(out), "--weights", str(WEIGHTS), "--device", "cpu",
                 "--precision", "fp32"]) == EXIT_OK
    return out


def test_api_predicts_what_the_cli_writes(model, cli_output):
    rows, _ = read_rows(INPUT)
    rows = rows[::-1]  # another order than the CLI's, tasks interleaved: the API keeps the order given
    results = model.predict_files([r.image_file for r in rows], [r.task_id for r in rows],
                                  image_paths=[r.image_path for r in rows])
    assert [(r["image_path"], r["task_id"]) for r in results] == [(r.image_path, r.task_id) for r in rows]
    written = {(rec["image_path"], rec["task_id"]): rec for name in PREDICTION_FILES.values()
               for rec in json.loads((cli_output / name).read_text())}
    masks = 0
    for row, result in zip(rows, results):
        if model.tasks[row.task_id] is TaskKind.SEGMENTATION:
            png = cv2.imread(str(cli_output / row.mask_path.removeprefix("../")), cv2.IMREAD_UNCHANGED)
            assert result["mask"].dtype == np.uint8 and np.array_equal(result["mask"], png), row.where
            masks += 1
        else:
            assert result == written.pop((row.image_path, row.task_id)), row.where
    assert not written and masks == 24


def test_numpy_images_of_any_layout_and_no_paths(model, cli_output):
    rows, _ = read_rows(INPUT)
    row = next(r for r in rows if r.task_id == "fetal_plane_cls")
    rgb = cv2.cvtColor(cv2.imread(str(row.image_file), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    grey = np.full((40, 60), 90, np.uint8)
    results = model.predict([rgb, grey, np.repeat(grey[:, :, None], 3, axis=2)],
                            ["fetal_plane_cls", "fetal_head", "fetal_head"])
    expected = next(r for r in json.loads((cli_output / "classification_predictions.json").read_text())
                    if r["image_path"] == row.image_path)
    assert results[0] == {k: v for k, v in expected.items() if k != "image_path"}
    assert results[1]["mask"].shape == (40, 60) and np.array_equal(results[1]["mask"], results[2]["mask"])
    assert "image_path" not in results[1]


def test_bad_calls_fail_clearly_before_running(model):
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(UnknownTaskError, match="no_such_task"):
        model.predict([image, image], ["fetal_head", "no_such_task"])
    with pytest.raises(ValueError, match="2 images, 1 task ids"):
        model.predict([image, image], ["fetal_head"])
    with pytest.raises(ValueError, match="image 1: expected a numpy array"):
        model.predict([image, "a.png"], ["fetal_head", "fetal_head"])
    with pytest.raises(ValueError, match="image 0: unsupported image array shape"):
        model.predict([np.zeros((2, 2, 2, 2), np.uint8)], ["fetal_head"])
    assert model.predict([], []) == []


def test_load_without_a_folder_uses_the_cli_default(monkeypatch, tmp_path):
    monkeypatch.setattr("inference.startup.OPT_ML_MODEL", tmp_path / "absent")
    monkeypatch.setenv("FMC_MODEL_DIR", str(WEIGHTS))
    loaded = api.load()
    assert loaded.model_dir == WEIGHTS and "fetal_head" in loaded.tasks
    assert loaded.engine == "(no engine started)"  # the engine starts on the first predict
