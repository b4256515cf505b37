"""Training runs on a tiny synthetic layout (CPU, small input): checkpoints, resume, learning, losses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from contract.manifest import ModelConfig, Preprocessing
from contract.tasks import TaskKind, TaskSpec
from network import build_model
from test_training_layout import write_layout
from training import CHECKPOINT_FORMAT, CheckpointError, TrainOptions, load_checkpoint, train
from training.augment import uint8_to_input
from training.cli import main
from training.data import load_dataset
from training.kinds import task_loss
from training.losses import LossSettings, detection_loss, dice_loss, target_cells

TINY = {"pyramid_channels": 32, "segmentation_channels": 32}


def _options(tmp_path, out="run", **extra) -> TrainOptions:
    base = dict(train_dir=tmp_path / "d", val_dir=tmp_path / "d", out_dir=tmp_path / out, encoder="mobilenet_v2",
                params=TINY, input_size=64, batch_size=2, steps_per_epoch=2, progress=False, seed=3,
                cache_dir=tmp_path / "cache")
    base.update(extra)
    return TrainOptions(**base)


@pytest.fixture()
def layout(tmp_path):
    return write_layout(tmp_path / "d")


def test_cli_run_writes_checkpoints_the_exporter_can_rebuild(tmp_path, layout, capsys):
    out = tmp_path / "run"
    code = main(["--train", str(layout), "--val", str(layout), "--out", str(out), "--encoder", "mobilenet_v2",
                 "--params", "pyramid_channels=32", "segmentation_channels=32", "--input-size", "64",
                 "--steps", "3", "--steps-per-epoch", "2", "--batch-size", "2", "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr().err
    ckpt = load_checkpoint(out / "last.pt")
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3  # export.py loads with weights_only
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["version"] == 1
    assert ckpt["step"] == 3 and ckpt["epoch"] == 2
    config = ModelConfig.model_validate(ckpt["config"])
    assert config.encoder_name == "mobilenet_v2" and config.params == TINY
    assert config.preprocessing.input_size == (64, 64)
    assert [t.task_id for t in config.tasks] == ["toy_cls", "toy_det", "toy_reg", "toy_seg"]
    model = build_model(config)
    model.load_state_dict(ckpt["state_dict"])  # strict: the exporter's path
    assert all(torch.isfinite(p).all() for p in ckpt["state_dict"].values() if p.is_floating_point())
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 3]
    val = lines[-1]["val"]
    assert set(val["tasks"]) == {"toy_cls", "toy_det", "toy_reg", "toy_seg"}
    assert 0.0 <= val["kinds"]["segmentation.dice"] <= 1.0 and val["kinds"]["Regression.mre_pct"] >= 0.0
    assert (out / "best.pt").is_file() and json.loads((out / "config.json").read_text()) == ckpt["config"]
    # a second run into the same folder without --resume refuses instead of overwriting
    code = main(["--train", str(layout), "--out", str(out), "--steps", "1", "--quiet"])
    assert code == 2 and "--resume" in capsys.readouterr().err


def test_resume_continues_exactly_where_it_stopped(tmp_path, layout):
    train(_options(tmp_path, out="straight", steps=4, val_dir=None))
    train(_options(tmp_path, out="split", steps=4, stop_at=2, val_dir=None))
    first = load_checkpoint(tmp_path / "split" / "last.pt")
    assert first["step"] == 2
    train(_options(tmp_path, out="split", steps=4, val_dir=None, resume=True))
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "split" / "last.pt")
    assert resumed["step"] == 4 and resumed["epoch"] == 2
    for key, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="not a fmc-uia-checkpoint"):
        load_checkpoint(tmp_path / "y.pt")


def test_every_kind_overfits_one_batch(tmp_path, layout):
    torch.manual_seed(0)
    data = load_dataset(layout, (64, 64))
    config = ModelConfig(encoder_name="mobilenet_v2", params=TINY, tasks=[d.spec for d in data.values()],
                         preprocessing=Preprocessing(input_size=(64, 64)))
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    settings = LossSettings()
    first, last = {}, {}
    for step in range(12):
        for task_id, task in data.items():
            x = uint8_to_input(task.images, config.preprocessing)
            loss = task_loss(task.spec.kind, model(x, task_id), torch.from_numpy(task.target), settings)
            assert torch.isfinite(loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            first.setdefault(task_id, loss.item())
            last[task_id] = loss.item()
    for task_id in data:
        assert last[task_id] < 0.7 * first[task_id], (task_id, first[task_id], last[task_id])


def test_dice_loss_is_zero_for_a_perfect_prediction_and_high_for_the_inverse():
    mask = torch.zeros(2, 8, 8, dtype=torch.long)
    mask[:, 2:6, 2:6] = 1
    perfect = torch.stack([(mask == 0).float(), (mask == 1).float()], dim=1) * 40 - 20
    assert dice_loss(perfect, mask).item() < 1e-3
    assert dice_loss(-perfect, mask).item() > 0.9


def test_detection_loss_targets_the_centre_cell_and_penalizes_other_cells():
    boxes = torch.tensor([[0.20, 0.20, 0.40, 0.60]])  # centre (0.3, 0.4) -> row 3, col 2 on an 8 x 8 grid
    rows, cols = target_cells(boxes, 8, 8)
    assert (rows.item(), cols.item()) == (3, 2)
    grid = torch.zeros(1, 5, 8, 8)
    grid[:, :4] = boxes.view(1, 4, 1, 1)  # every cell reads the true box
    grid[:, 4] = -12.0
    right = grid.clone()
    right[0, 4, 3, 2] = 12.0
    wrong = grid.clone()
    wrong[0, 4, 6, 6] = 12.0
    settings = LossSettings()
    assert detection_loss(right, boxes, settings).item() < 1e-3
    assert detection_loss(wrong, boxes, settings).item() > 10.0
    off = right.clone()
    off[0, :4, 3, 2] = torch.tensor([0.3, 0.3, 0.5, 0.7])  # box off by 0.1 everywhere at the target cell
    expected_l1 = 8.0 * 0.1 / 9  # mean over the 3 x 3 block of which one cell is wrong
    assert detection_loss(off, boxes, settings).item() == pytest.approx(expected_l1, rel=1e-3, abs=2e-3)


def test_regression_loss_is_mean_squared_point_distance():
    pred = torch.tensor([[0.5, 0.5, 0.1, 0.1]])
    true = torch.tensor([[0.8, 0.9, 0.1, 0.1]])
    spec = TaskSpec(task_id="r", kind=TaskKind.REGRESSION, num_classes=2)
    value = task_loss(spec.kind, pred, true, LossSettings()).item()
    assert value == pytest.approx((0.3 ** 2 + 0.4 ** 2) / 2)
    assert np.isfinite(value)
