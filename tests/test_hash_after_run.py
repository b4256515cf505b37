"""A graph file whose bytes changed but still loads (a weight edited, the same outputs' names) is caught by its
sha256 even when the hash finishes after the model ran: the batch's outputs are never used, and nothing is
written. (The hash runs beside the model: ONNX Runtime holds the GIL while it makes a session.)"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from contract.manifest import ModelFolder, load_manifest
from inference.cli import main
from inference.engines.onnx_engine import OnnxEngine
from inference.errors import GraphError

REPO = Path(__file__).resolve().parent.parent
SEG_CASE = REPO / "test" / "gc" / "seg_fetal_head" / "input"


def _edit_a_weight(path: Path) -> None:
    """The file still loads and gives the same outputs' names; one weight differs, so its sha256 does."""
    model = onnx.load(str(path))
    initializer = next(i for i in model.graph.initializer if numpy_helper.to_array(i).size > 1)
    values = numpy_helper.to_array(initializer).copy()
    values.flat[0] += 1.0
    initializer.CopyFrom(numpy_helper.from_array(values, initializer.name))
    onnx.save(model, str(path))


@pytest.fixture
def edited(tiny_model_dir, tmp_path):
    def make(graph: str) -> Path:
        model = tmp_path / f"model-{graph}"
        shutil.copytree(tiny_model_dir, model)
        _edit_a_weight(model / load_manifest(model).graph_sets["fp32"].graphs[graph].path)
        return model
    return make


def _batch(folder: ModelFolder) -> np.ndarray:
    h, w = folder.manifest.model.preprocessing.input_size
    return np.random.default_rng(0).standard_normal((2, 3, h, w)).astype(np.float32)


def test_an_edited_head_fails_its_batch_and_every_later_one(edited):
    folder = ModelFolder.open(edited("head.fetal_head"))
    engine = OnnxEngine(folder, device="cpu", precision="fp32", threads=1)
    task = folder.manifest.task("fetal_head")
    for _ in range(2):  # the first batch when its hash finishes, the next one at once
        with pytest.raises(GraphError, match="sha256 differs from the manifest") as caught:
            engine.run(task, _batch(folder))
        assert caught.value.damaged and not caught.value.shared
    other = folder.manifest.task("lung")
    assert engine.run(other, _batch(folder))["logits"].shape[0] == 2  # another task's head is not touched


@pytest.mark.parametrize("graph", ["encoder", "head.fetal_head"])
def test_a_case_with_an_edited_graph_writes_nothing(edited, tmp_path, caplog, graph):
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="inference"):
        assert main(["--input", str(SEG_CASE), "--output", str(out), "--weights", str(edited(graph))]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "sha256 differs" in errors[0] and graph.split(".")[-1] in errors[0]
    assert not out.exists() or [p for p in out.rglob("*") if p.is_file()] == []


def test_without_hash_checks_the_edited_graph_runs(edited, tmp_path):
    out = tmp_path / "out"
    model = edited("head.fetal_head")
    assert main(["--input", str(SEG_CASE), "--output", str(out), "--weights", str(model), "--no-verify-hashes"]) == 0
    assert (out / "images" / "segmentation-mask" / "output.mha").is_file()
