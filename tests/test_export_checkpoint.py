"""Checkpoints in: official layout (strict), wrapped/DataParallel, own training format; bad input out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_tiny_config
from exporter.checkpoint import OWN_FORMAT, open_checkpoint, resolve_config
from exporter.errors import CheckpointError, EncoderInferenceError, KeyMismatchError
from exporter.loading import load_network
from contract.tasks import TaskRegistry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def official_state(tiny_model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in tiny_model.state_dict().items()}


def test_official_layout_has_the_baseline_key_names(official_state):
    assert "fpn_decoder.p5.weight" in official_state
    assert "heads.fetal_head.0.weight" in official_state  # segmentation
    assert "heads.organ_cls.head.3.weight" in official_state  # classification
    assert "heads.FUGC.linear.weight" in official_state  # Regression
    assert "heads.thyroid_nodule_det.conv_block.6.weight" in official_state  # detection
    assert official_state["heads.thyroid_nodule_det.conv_block.6.weight"].shape[0] == 5


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "dataparallel"])
def test_official_state_dict_loads_strictly_with_inferred_encoder_and_tasks(tmp_path, official_state, tiny_model, wrap):
    state = {f"module.{k}": v for k, v in official_state.items()} if wrap == "dataparallel" else official_state
    payload = {wrap: state} if wrap in ("state_dict", "model") else state
    torch.save(payload, tmp_path / "best_model.pth")
    checkpoint = open_checkpoint(tmp_path / "best_model.pth")
    assert checkpoint.layout == "official"
    config = resolve_config(checkpoint, None, None, (64, 64))
    assert config.encoder_name == "mobilenet_v2"  # inferred from tensor shapes
    assert config.params == {"pyramid_channels": 64, "segmentation_channels": 32}
    assert [(t.task_id, t.kind, t.num_classes) for t in config.tasks] == [
        (t.task_id, t.kind, t.num_classes) for t in TaskRegistry.official()
    ]
    model = load_network(checkpoint, config)
    for key, value in model.state_dict().items():
        assert torch.equal(value, tiny_model.state_dict()[key]), key


def test_task_subset_drops_other_heads_and_keeps_weights(tmp_path, official_state):
    torch.save(official_state, tmp_path / "best_model.pth")
    checkpoint = open_checkpoint(tmp_path / "best_model.pth")
    config = resolve_config(checkpoint, "mobilenet_v2", ["IUGC", "lung"], None)
    assert [t.task_id for t in config.tasks] == ["lung", "IUGC"]
    assert config.preprocessing.input_size == (256, 256)
    model = load_network(checkpoint, config)
    assert set(model.heads) == {"lung", "IUGC"}
    assert torch.equal(model.state_dict()["heads.IUGC.linear.weight"], official_state["heads.IUGC.linear.weight"])


def test_own_training_checkpoint_carries_its_config(tmp_path, official_state):
    config = make_tiny_config()
    torch.save(
        {"format": OWN_FORMAT, "version": 1, "config": config.model_dump(mode="json"), "state_dict": official_state, "epoch": 3},
        tmp_path / "ckpt.pt",
    )
    checkpoint = open_checkpoint(tmp_path / "ckpt.pt")
    assert checkpoint.layout == OWN_FORMAT
    assert resolve_config(checkpoint, None, None, None) == config
    with pytest.raises(CheckpointError, match="trained with encoder mobilenet_v2"):
        resolve_config(checkpoint, "resnet18", None, None)


def test_missing_and_unexpected_keys_are_listed_by_module_and_task(tmp_path, official_state):
    state = {k: v for k, v in official_state.items() if not k.startswith("heads.lung.")}
    state["heads.organ_cls.head.3.extra"] = torch.zeros(1)
    state["decoder.block.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "broken.pth")
    checkpoint = open_checkpoint(tmp_path / "broken.pth")
    config = resolve_config(checkpoint, "mobilenet_v2", None, None).model_copy(
        update={"tasks": list(TaskRegistry.official())}
    )
    with pytest.raises(KeyMismatchError) as info:
        load_network(checkpoint, config)
    message = str(info.value)
    assert "\n" not in message
    assert "missing 2 tensors: heads (segmentation) [lung]: 2" in message
    assert "unexpected 2 tensors" in message
    assert "decoder: 1" in message and "heads (classification) [organ_cls]: 1" in message


def test_wrong_encoder_reports_shapes_and_names_the_fitting_one(tmp_path, official_state):
    torch.save(official_state, tmp_path / "best_model.pth")
    checkpoint = open_checkpoint(tmp_path / "best_model.pth")
    config = resolve_config(checkpoint, "resnet18", None, (64, 64))
    with pytest.raises(KeyMismatchError, match=r"encoder: \d+ .*fit --encoder mobilenet_v2"):
        load_network(checkpoint, config)


def test_encoder_that_cannot_be_inferred_lists_candidates(tmp_path, official_state):
    state = dict(official_state)
    state["encoder.features.0.0.weight"] = torch.zeros(16, 3, 3, 3)  # no smp encoder has this shape
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(EncoderInferenceError, match="closest candidates: mobilenet_v2"):
        resolve_config(open_checkpoint(tmp_path / "odd.pth"), None, None, None)


# --- bad input through the CLI: one line on stderr, non-zero exit ----------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "export.py"), *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("export.py: error: ")
    return lines[0]


def test_cli_missing_file(tmp_path):
    result = run_cli(str(tmp_path / "nope.pth"), "--out", str(tmp_path / "out"))
    line = _one_error_line(result)
    assert "nope.pth: no such file" in line and result.returncode == 2  # a wrong command line
    assert not (tmp_path / "out").exists()


def test_cli_bad_inputs_each_give_one_line(tmp_path, official_state):
    import io
    from contextlib import redirect_stderr

    from export import main

    (tmp_path / "notes.txt").write_text("this is not a checkpoint\n")
    torch.save({"encoder.conv.weight": torch.zeros(2), "decoder.x": torch.zeros(1)}, tmp_path / "unet.pth")
    torch.save(official_state, tmp_path / "best_model.pth")
    (tmp_path / "blocker").write_text("a file where a folder should be\n")
    cases = {  # message: (arguments, exit code: 2 the command line is wrong, 1 the checkpoint cannot be exported)
        "not a PyTorch checkpoint": ([str(tmp_path / "notes.txt")], 1),
        "not a baseline checkpoint": ([str(tmp_path / "unet.pth")], 1),
        "has no encoder 'efficientnet-b9'": ([str(tmp_path / "best_model.pth"), "--encoder", "efficientnet-b9"], 2),
        "cannot write the output folder": ([str(tmp_path / "best_model.pth"), "--out", str(tmp_path / "blocker" / "mw")], 1),
        "exists and is not a folder": ([str(tmp_path / "best_model.pth"), "--out", str(tmp_path / "blocker")], 2),
        "needs calibration images": ([str(tmp_path / "best_model.pth"), "--precision", "int8"], 2),
        "calibration folder does not exist": ([str(tmp_path / "best_model.pth"), "--precision", "int8",
                                               "--calibration-dir", str(tmp_path / "no_images")], 2),
        "is not in the checkpoint": ([str(tmp_path / "best_model.pth"), "--tasks", "no_such_task"], 2),
    }
    for expected, (args, exit_code) in cases.items():
        out = [] if "--out" in args else ["--out", str(tmp_path / "mw")]
        stderr = io.StringIO()
        with redirect_stderr(stderr):
            code = main([*args, *out])
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        assert code == exit_code and len(lines) == 1 and expected in lines[0], (expected, code, stderr.getvalue())
    assert not (tmp_path / "mw").exists()
