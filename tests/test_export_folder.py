"""The exported tiny model folder: manifest, graph split, sizes, parity, PyTorch fallback."""

from __future__ import annotations

import numpy as np
import onnx
import torch

from exporter.runner import GraphRunner
from contract.manifest import OUTPUT_ROLE, load_manifest, sha256_of
from contract.kinds import spec_of
from contract.tasks import TaskKind, TaskRegistry
from network.weights import load_model_from_folder


def test_manifest_describes_every_official_task(tiny_model_dir):
    manifest = load_manifest(tiny_model_dir, verify_hashes=True)
    assert [t.task_id for t in manifest.tasks] == TaskRegistry.official().ids
    for task in manifest.tasks:
        official = TaskRegistry.official()[task.task_id]
        assert (task.kind, task.num_classes) == (official.kind, official.num_classes)
        assert task.outputs == {OUTPUT_ROLE[task.kind]: f"{task.task_id}.{OUTPUT_ROLE[task.kind]}"}
        assert task.meaning
    assert manifest.model.preprocessing.input_size == (64, 64)
    assert {"torch", "onnx", "onnxruntime", "segmentation_models_pytorch", "timm", "exporter"} <= set(manifest.versions)
    assert manifest.graph_sets["fp32"].providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    for graph in manifest.graph_sets["fp32"].graphs.values():
        assert sha256_of(tiny_model_dir / graph.path) == graph.sha256


def test_each_task_runs_only_its_own_path(tiny_model_dir):
    manifest = load_manifest(tiny_model_dir)
    graphs = manifest.graph_sets["fp32"].graphs
    assert graphs["encoder"].path == "encoder.onnx" and graphs["fpn"].path == "fpn.onnx"
    for task in manifest.tasks:
        expected = ["encoder", "fpn"] if spec_of(task.kind).dense else ["encoder"]
        assert task.path == [*expected, f"head.{task.task_id}"]
        assert graphs[f"head.{task.task_id}"].path == f"heads/{task.task_id}.onnx"
    # a head graph holds only its own weights
    head = onnx.load(str(tiny_model_dir / "heads" / "organ_cls.onnx")).graph
    assert all(init.name.startswith("heads.organ_cls.") for init in head.initializer)


def test_graphs_store_the_weights_once(tiny_model_dir, tiny_model):
    manifest = load_manifest(tiny_model_dir)
    param_bytes = sum(p.numel() * 4 for p in tiny_model.parameters())
    graph_bytes = sum(g.bytes for g in manifest.graph_sets["fp32"].graphs.values())
    assert graph_bytes <= 1.2 * param_bytes, (graph_bytes, param_bytes)


def test_parity_recorded_for_every_task_within_tolerance(tiny_model_dir):
    parity = load_manifest(tiny_model_dir).parity
    assert parity is not None and parity.tolerance == 1e-4 and parity.batch_sizes == [1, 8]
    assert set(parity.max_rel_error) == set(TaskRegistry.official().ids)
    assert all(0.0 <= err <= 1e-4 for err in parity.max_rel_error.values())


def test_onnx_path_matches_torch_predict(tiny_model_dir, tiny_model):
    manifest = load_manifest(tiny_model_dir)
    runner = GraphRunner(tiny_model_dir, manifest.graph_sets["fp32"])
    image = np.random.default_rng(3).standard_normal((3, 3, 64, 64)).astype(np.float32)
    for kind in TaskKind:
        task = next(t for t in manifest.tasks if t.kind is kind)
        onnx_out = runner.run(image, task.path)[task.output_tensor]
        with torch.no_grad():
            torch_out = tiny_model.predict(torch.from_numpy(image), task.task_id)[OUTPUT_ROLE[kind]].numpy()
        assert onnx_out.shape == torch_out.shape
        np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-4, atol=1e-4 * np.abs(torch_out).max())
    assert not any(m.training for m in tiny_model.modules()), "export must leave the model in eval mode"


def test_fallback_rebuilds_identical_weights_without_a_second_copy(tiny_model_dir, tiny_model):
    model, manifest = load_model_from_folder(tiny_model_dir)
    assert not model.training
    assert manifest.torch_fallback.weights_from == "onnx_initializers"
    assert manifest.torch_fallback.extra_bytes < 1024  # no second copy of the weights
    reference = tiny_model.state_dict()
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, reference[key]), key
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for task_id in ("fetal_head", "organ_cls", "thyroid_nodule_det", "IUGC"):
            assert torch.equal(model(image, task_id), tiny_model(image, task_id))
