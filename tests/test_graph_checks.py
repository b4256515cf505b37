"""A graph is checked against the manifest when its ONNX Runtime session is made, whether hashes are checked or
not: its outputs' names and its tasks' class counts. A head that is not the manifest's costs its own task."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import onnx
import pytest

from contract.kinds import role_shape_problem
from contract.manifest import load_manifest
from contract.tasks import TaskKind
from inference.cli import main
from inference.errors import EXIT_ROWS_FAILED

from test_inference_cli import GOOD_ROWS, make_input


def _model_copy(tiny_model_dir: Path, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    graphs = load_manifest(model).graph_sets["fp32"].graphs
    return model, {name: model / graph.path for name, graph in graphs.items()}


def _run(tmp_path: Path, model: Path, *flags: str) -> tuple[int, Path]:
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    out = tmp_path / "out"
    return main(["--input", str(inp), "--output", str(out), "--weights", str(model), *flags]), out


def _failed_rows(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("row failed")]


@pytest.mark.parametrize("flags", [["--no-verify-hashes"], []], ids=["no-hashes", "hashes"])
def test_another_tasks_head_costs_its_own_task_only(tmp_path, tiny_model_dir, caplog, flags):
    """fetal_head's head replaced by lung's (a valid graph, with another output name): fetal_head's row fails with
    the reason, the other rows are predicted, exit 3, no traceback."""
    model, files = _model_copy(tiny_model_dir, tmp_path)
    shutil.copyfile(files["head.lung"], files["head.fetal_head"])
    caplog.set_level(logging.ERROR)
    code, out = _run(tmp_path, model, *flags)
    assert code == EXIT_ROWS_FAILED
    [failed] = _failed_rows(caplog)
    assert "fetal_head" in failed
    assert ("lung.logits" in failed and "the manifest lists fetal_head.logits" in failed) if flags else \
        "sha256 differs" in failed
    assert len(json.loads((out / "classification_predictions.json").read_text())) == 2
    assert (out / "Segmentation/multi/MASKS/tall.png").is_file()
    fallback = cv2.imread(str(out / "Segmentation/ds/MASKS/wide.png"), cv2.IMREAD_UNCHANGED)
    assert fallback.shape == (90, 160) and not fallback.any()  # the empty fallback mask, not lung's head's


def test_a_head_with_another_class_count_is_refused_at_session_creation(tmp_path, tiny_model_dir, caplog):
    """cardiac_multi's 4-class head, its output renamed to fetal_head's: the name fits, the class count does not."""
    model, files = _model_copy(tiny_model_dir, tmp_path)
    graph = onnx.load(files["head.cardiac_multi"])
    for node in graph.graph.node:
        node.output[:] = ["fetal_head.logits" if name == "cardiac_multi.logits" else name for name in node.output]
    for output in graph.graph.output:
        if output.name == "cardiac_multi.logits":
            output.name = "fetal_head.logits"
    onnx.save(graph, files["head.fetal_head"])
    caplog.set_level(logging.ERROR)
    code, out = _run(tmp_path, model, "--no-verify-hashes")
    assert code == EXIT_ROWS_FAILED
    [failed] = _failed_rows(caplog)
    assert "fetal_head" in failed and "num_classes 2" in failed and "x 4 x" in failed, failed
    assert (out / "Segmentation/multi/MASKS/tall.png").is_file()


@pytest.mark.parametrize("kind, count, shape, fits", [
    (TaskKind.SEGMENTATION, 2, ["batch", 2, 64, 64], True),
    (TaskKind.SEGMENTATION, 2, [7, 3, 64, 64], False),
    (TaskKind.SEGMENTATION, 2, [7, 2, 64], False),
    (TaskKind.CLASSIFICATION, 3, ["N", 3], True),
    (TaskKind.CLASSIFICATION, 3, ["N", "k"], True),  # a symbolic size fits anything
    (TaskKind.CLASSIFICATION, 3, ["N", 2], False),
    (TaskKind.DETECTION, 1, [1, 5, 16, 16], True),
    (TaskKind.DETECTION, 1, [1, 4], False),
    (TaskKind.REGRESSION, 3, [1, 6], True),
    (TaskKind.REGRESSION, 3, [1, 4], False),
])
def test_role_shapes_by_kind(kind, count, shape, fits):
    problem = role_shape_problem(kind, count, shape[1:])
    assert (problem is None) == fits, problem
