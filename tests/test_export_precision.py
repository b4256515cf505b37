"""fp16 and int8 graph sets beside fp32, through the CLI, with deviation measured (not assumed)."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
import torch

from conftest import make_tiny_config
from exporter.deviation import compare_outputs
from exporter.images import image_like_batch, synthetic_images
from exporter.runner import GraphRunner
from contract.manifest import load_manifest
from contract.tasks import TaskRegistry

TASKS = ["fetal_head", "organ_cls", "thyroid_nodule_det", "IUGC"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model):
    """An official checkpoint with one task per kind, exported by the CLI with --precision fp16 and int8."""
    from export import main

    work = tmp_path_factory.mktemp("precision")
    torch.save(tiny_model.state_dict(), work / "best_model.pth")
    calibration = work / "calib"
    calibration.mkdir()
    for i, image in enumerate(synthetic_images(12, (90, 120), seed=77)):
        cv2.imwrite(str(calibration / f"frame_{i:02d}.png"), image)
    code = main([
        str(work / "best_model.pth"), "--out", str(work / "model_weights"), "--input-size", "64",
        "--tasks", *TASKS, "--precision", "fp16", "--precision", "int8", "--calibration-dir", str(calibration),
    ])
    assert code == 0
    return work / "model_weights"


def test_three_graph_sets_with_their_providers_and_files(exported):
    manifest = load_manifest(exported, verify_hashes=True)
    assert set(manifest.graph_sets) == {"fp32", "fp16", "int8"}
    assert manifest.graph_sets["fp16"].providers == ["CUDAExecutionProvider"]
    assert manifest.graph_sets["int8"].providers == ["CPUExecutionProvider"]
    for precision in ("fp16", "int8"):
        graphs = manifest.graph_sets[precision].graphs
        assert set(graphs) == set(manifest.graph_sets["fp32"].graphs)
        assert graphs["head.IUGC"].outputs == ["IUGC.points"]
    assert all(g.path.startswith("fp16/") for g in manifest.graph_sets["fp16"].graphs.values())
    int8 = manifest.graph_sets["int8"].graphs
    assert int8["encoder"].path == "int8/encoder.onnx" and int8["fpn"].path == "int8/fpn.onnx"
    assert int8["head.thyroid_nodule_det"].path == "int8/heads/thyroid_nodule_det.onnx"
    # single-layer heads are not quantized: the int8 set shares their fp32 file
    for task_id in ("fetal_head", "organ_cls", "IUGC"):
        assert int8[f"head.{task_id}"] == manifest.graph_sets["fp32"].graphs[f"head.{task_id}"]
    assert manifest.graph_sets["fp32"].deviation_from_fp32 == {}


def test_fp16_graphs_hold_half_weights_behind_float32_inputs(exported):
    model = onnx.load(str(exported / "fp16" / "encoder.onnx"))
    types = {init.data_type for init in model.graph.initializer if init.dims and len(init.dims) == 4}
    assert types == {onnx.TensorProto.FLOAT16}
    assert {i.type.tensor_type.elem_type for i in model.graph.input} == {onnx.TensorProto.FLOAT}
    assert {o.type.tensor_type.elem_type for o in model.graph.output} == {onnx.TensorProto.FLOAT}
    assert (exported / "fp16" / "encoder.onnx").stat().st_size < 0.6 * (exported / "encoder.onnx").stat().st_size


def test_int8_graphs_are_static_qdq_with_the_heads_last_layer_in_fp32(exported):
    model = onnx.load(str(exported / "int8" / "encoder.onnx"))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 4 for init in model.graph.initializer)
    head = onnx.load(str(exported / "int8" / "heads" / "thyroid_nodule_det.onnx")).graph
    convs = [node for node in head.node if node.op_type == "Conv"]
    producers = {out: node for node in head.node for out in node.output}
    weight_source = [producers.get(conv.input[1]) for conv in convs]
    assert [w is not None and w.op_type == "DequantizeLinear" for w in weight_source] == [True, True, False]


def test_deviation_from_fp32_is_recorded_per_kind(exported):
    manifest = load_manifest(exported)
    for precision, max_rel in (("fp16", 1e-2), ("int8", 1.0)):
        figures = manifest.graph_sets[precision].deviation_from_fp32
        assert {
            "max_rel_error", "segmentation.mask_agreement_min", "classification.max_abs_prob_diff",
            "classification.argmax_agreement", "detection.max_abs_box_diff", "detection.cell_agreement",
            "Regression.max_abs_point_diff", "images",
        } <= set(figures)
        assert all(np.isfinite(v) for v in figures.values())
        assert 0 < figures["max_rel_error"] < max_rel
        assert 0.5 < figures["segmentation.mask_agreement_min"] <= 1.0
    assert manifest.graph_sets["fp16"].deviation_from_fp32["images"] == 8  # image-like frames
    assert manifest.graph_sets["int8"].deviation_from_fp32["images"] == 11  # + 3 held-out calibration images
    # int8 is coarser than fp16 on the same network
    assert manifest.graph_sets["int8"].deviation_from_fp32["max_rel_error"] > manifest.graph_sets["fp16"].deviation_from_fp32["max_rel_error"]


def test_recorded_fp16_deviation_is_what_running_the_graphs_gives(exported):
    manifest = load_manifest(exported)
    prep = manifest.model.preprocessing
    fp32 = GraphRunner(exported, manifest.graph_sets["fp32"])
    fp16 = GraphRunner(exported, manifest.graph_sets["fp16"])
    figures: dict[str, float] = {}
    for batch in (image_like_batch(8, prep, seed=500),):
        compare_outputs(manifest.tasks, fp32.run(batch), fp16.run(batch), figures)
    recorded = manifest.graph_sets["fp16"].deviation_from_fp32
    assert recorded["measured_on_cuda"] in (0.0, 1.0)
    for key, value in figures.items():
        assert recorded[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_fp32_parity_unaffected_by_variants(exported):
    manifest = load_manifest(exported)
    assert [t.task_id for t in manifest.tasks] == [t for t in TaskRegistry.official().ids if t in TASKS]
    assert all(err <= 1e-4 for err in manifest.parity.max_rel_error.values())
    assert manifest.model == make_tiny_config(TaskRegistry.official().select(TASKS))
