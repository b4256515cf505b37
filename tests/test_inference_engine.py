"""inference.engines.onnx_engine: provider choice, threads, and the graph chaining on a tiny exported model."""

from __future__ import annotations

import numpy as np
import pytest

from contract.imaging import preprocess
from contract.manifest import ModelFolder, load_manifest
from inference.engines import providers as providers_module
from inference.engines.onnx_engine import OnnxEngine
from inference.errors import EngineError
from inference.engines.runner import default_threads


def test_default_threads_is_positive():
    assert default_threads() >= 1


def test_cpu_engine_runs_each_kind(tiny_model_dir):
    folder = ModelFolder.open(tiny_model_dir)
    manifest = folder.manifest
    engine = OnnxEngine(folder, device="cpu")
    assert engine.precision == "fp32" and "CPUExecutionProvider" in engine.description
    batch = preprocess([np.full((30, 50, 3), 100, np.uint8)] * 3, manifest.model.preprocessing)
    h, w = manifest.model.preprocessing.input_size
    seg = engine.run(manifest.task("cardiac_multi"), batch)["logits"]
    assert seg.shape == (3, 4, h, w)
    probs = engine.run(manifest.task("organ_cls"), batch)["probs"]
    assert probs.shape == (3, 6) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert engine.run(manifest.task("thyroid_nodule_det"), batch)["grid"].shape[:2] == (3, 5)
    assert engine.run(manifest.task("IUGC"), batch)["points"].shape == (3, 6)
    # only the graphs of the kinds run were loaded
    assert set(engine.runner.sessions) == {"encoder", "fpn", "head.cardiac_multi", "head.organ_cls",
                                     "head.thyroid_nodule_det", "head.IUGC"}


def test_io_binding_path_equals_the_host_path(tiny_model_dir):
    """The CUDA path's chaining (OrtValues between graphs), exercised on the CPU device."""
    folder = ModelFolder.open(tiny_model_dir)
    manifest = folder.manifest
    engine = OnnxEngine(folder, device="cpu")
    batch = preprocess([np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)] * 2,
                       manifest.model.preprocessing)
    for task_id in ("fetal_head", "breast_2cls"):
        task = manifest.task(task_id)
        bound = engine.runner._run_on_device(batch, task.path, set(task.outputs.values()), device_type="cpu")
        host = engine.runner._run_on_host(batch, task.path)
        for name in task.outputs.values():
            np.testing.assert_allclose(bound[name], host[name], rtol=1e-6, atol=1e-6)


def test_cuda_unavailable(tiny_model_dir, monkeypatch):
    folder = ModelFolder.open(tiny_model_dir)
    monkeypatch.setattr(providers_module, "cuda_unavailable_reason", lambda: "no GPU in this test")
    with pytest.raises(EngineError, match="no GPU in this test"):
        OnnxEngine(folder, device="cuda")
    engine = OnnxEngine(folder, device="auto")
    assert engine.device == "cpu" and engine.precision == "fp32"


def test_missing_precision_and_broken_graph(tiny_model_dir, tmp_path):
    import shutil

    from contract.manifest import ManifestError

    manifest = load_manifest(tiny_model_dir)
    with pytest.raises(ManifestError, match="int8"):
        OnnxEngine(ModelFolder(tiny_model_dir, manifest), device="cpu", precision="int8")
    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / manifest.graph_sets["fp32"].graphs["encoder"].path).write_bytes(b"not onnx")
    engine = OnnxEngine(ModelFolder(broken, manifest), device="cpu")
    batch = preprocess([np.zeros((8, 8, 3), np.uint8)], manifest.model.preprocessing)
    with pytest.raises(EngineError, match="cannot load"):
        engine.run(manifest.task("lung_2cls"), batch)
