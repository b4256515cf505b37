"""Bring your own model as an ONNX file: export.py model.onnx --task-map map.json, then python -m inference."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import byom_nets
from byom_check import check_predictions, sample_input, seeded
from export import main as export_main
from inference.cli import main as inference_main
from inference.errors import EXIT_OK
from contract.manifest import load_manifest

OUTPUTS = [f"out_{t['task_id']}" for t in byom_nets.TASKS]


class _AsTuple(nn.Module):
    """How a team might export: named tuple outputs instead of a dict."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor, task: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.net(pixels, task)
        return tuple(outputs[t["task_id"]] for t in byom_nets.TASKS)


@pytest.fixture(scope="module")
def team_file(tmp_path_factory) -> tuple[nn.Module, Path, dict]:
    """A task-conditioned network, exported by the team to ONNX with its own names, and its task map."""
    folder = tmp_path_factory.mktemp("team")
    net = seeded(byom_nets.make_conditioned_net(width=8, decoder_width=8, depth=2), seed=21)
    with torch.no_grad():
        net.task_embedding.weight.normal_(0.0, 1.0)
    path = folder / "team.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_AsTuple(net).eval(), (torch.randn(2, 3, 64, 64), torch.zeros(2, dtype=torch.int64)), str(path),
                          dynamo=False, opset_version=17, input_names=["pixels", "task"], output_names=OUTPUTS,
                          dynamic_axes={name: {0: "n"} for name in ["pixels", "task", *OUTPUTS]})
    task_map = {
        "input": "pixels",
        "task_index_input": "task",
        "tasks": {t["task_id"]: {"output": f"out_{t['task_id']}", "kind": t["kind"], "num_classes": t["num_classes"]}
                  for t in byom_nets.TASKS},
    }
    return net, path, task_map


def _write_map(folder: Path, task_map: dict) -> Path:
    path = folder / "map.json"
    path.write_text(json.dumps(task_map))
    return path


def test_onnx_file_with_task_map_predicts_what_the_network_predicts(tmp_path, team_file):
    net, path, task_map = team_file
    out = tmp_path / "model"
    assert export_main([str(path), "--task-map", str(_write_map(tmp_path, task_map)), "--input-size", "64", "--out", str(out)]) == 0
    manifest = load_manifest(out)
    assert manifest.model.architecture == "byom_onnx"
    positions = {t["task_id"]: i for i, t in enumerate(byom_nets.TASKS)}
    assert {t.task_id: t.task_index for t in manifest.tasks} == positions
    assert max(manifest.parity.max_rel_error.values()) <= 1e-4

    sample = sample_input(tmp_path)
    predictions = tmp_path / "out"
    assert inference_main(["--input", str(sample), "--output", str(predictions), "--weights", str(out)]) == EXIT_OK
    check_predictions(net, sample, predictions, positions=positions)


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m["tasks"]["IUGC"].update(output="nope"), "task IUGC: team.onnx has no output 'nope'"),
    (lambda m: m["tasks"]["breast_3cls"].update(num_classes=4), "task breast_3cls (classification): output shape 2 x 3"),
    (lambda m: m["tasks"]["IUGC"].update(kind="segmentation"), "task IUGC (segmentation): output shape 2 x 6"),
    (lambda m: m.update(task_index_input="idx"), "has no input 'idx'"),
])
def test_task_map_mismatch_is_one_line(tmp_path, capsys, team_file, change, fragment):
    _net, path, task_map = team_file
    task_map = json.loads(json.dumps(task_map))
    change(task_map)
    out = tmp_path / "model"
    code = export_main([str(path), "--task-map", str(_write_map(tmp_path, task_map)), "--input-size", "64", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and fragment in err, err  # the map does not fit the file
    assert not out.exists()


def test_onnx_model_has_no_pytorch_fallback_and_says_so(tmp_path, team_file, caplog):
    _net, path, task_map = team_file
    out = tmp_path / "model"
    assert export_main([str(path), "--task-map", str(_write_map(tmp_path, task_map)), "--input-size", "64",
                        "--tasks", "breast_3cls", "--out", str(out)]) == 0
    sample = sample_input(tmp_path, ("breast_3cls",))
    assert inference_main(["--input", str(sample), "--output", str(tmp_path / "o"), "--weights", str(out), "--engine", "torch"]) == 1
    assert sum("no PyTorch fallback for this model" in r.getMessage() for r in caplog.records) == 1
