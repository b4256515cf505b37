"""fp16 and int8 graph sets of a brought (task-conditioned) model: weights once per set, runtime runs them."""

from __future__ import annotations

import math

import torch

import byom_nets
from byom_check import REPO, rows, sample_input, seeded
from export import main as export_main
from inference.cli import main as inference_main
from inference.errors import EXIT_OK
from contract.manifest import load_manifest


def test_fp16_and_int8_variants_of_a_task_conditioned_model(tmp_path):
    net = seeded(byom_nets.make_conditioned_net(width=8, decoder_width=8, depth=2), seed=2)
    torch.save(net.state_dict(), tmp_path / "cond.pt")
    out = tmp_path / "model"
    assert export_main([str(tmp_path / "cond.pt"), "--model", "byom_nets:make_conditioned_net", "--model-arg", "depth=2",
                        "--input-size", "64", "--precision", "fp16", "--precision", "int8",
                        "--calibration-dir", str(REPO / "test" / "input" / "Classification"), "--out", str(out)]) == 0
    manifest = load_manifest(out)
    assert set(manifest.graph_sets) == {"fp32", "fp16", "int8"}
    for precision in ("fp16", "int8"):
        graph_set = manifest.graph_set(precision)
        assert all(g.path.startswith(f"{precision}/graphs/") and "task_index" in g.inputs for g in graph_set.graphs.values())
        assert (out / precision / "graphs" / "weights.bin").is_file()
        figures = graph_set.deviation_from_fp32
        assert math.isfinite(figures["max_rel_error"]) and figures["segmentation.mask_agreement_min"] >= 0.9
    assert manifest.graph_set("fp16").deviation_from_fp32["classification.max_abs_prob_diff"] <= 1e-2
    # int8 weights are a quarter of fp32's
    assert (out / "int8/graphs/weights.bin").stat().st_size < (out / "graphs/weights.bin").stat().st_size
    sample = sample_input(tmp_path)
    for precision in ("fp16", "int8"):
        predictions = tmp_path / precision
        code = inference_main(["--input", str(sample), "--output", str(predictions), "--weights", str(out),
                               "--device", "cpu", "--precision", precision, "--strict"])
        assert code == EXIT_OK
        written = list(predictions.rglob("*.png"))
        assert len(written) == sum(1 for r in rows(sample) if r["task_name"] == "segmentation")


def test_engine_feeds_task_index_on_host_and_through_io_binding(tmp_path):
    """The CUDA path (IO binding) binds task_index like the image; checked with CPU OrtValues."""
    import numpy as np

    from contract.manifest import OUTPUT_ROLE, ModelFolder
    from inference.engines.onnx_engine import OnnxEngine
    from inference.engines.feeds import extra_feeds

    net = seeded(byom_nets.make_conditioned_net(), seed=4)
    with torch.no_grad():
        net.task_embedding.weight.normal_(0.0, 1.0)
    torch.save(net.state_dict(), tmp_path / "cond.pt")
    out = tmp_path / "model"
    assert export_main([str(tmp_path / "cond.pt"), "--model", "byom_nets:make_conditioned_net", "--input-size", "64",
                        "--out", str(out)]) == 0
    folder = ModelFolder.open(out)
    manifest = folder.manifest
    engine = OnnxEngine(folder, device="cpu", precision="fp32")
    batch = np.random.default_rng(1).standard_normal((3, 3, 64, 64)).astype(np.float32)
    for position, spec in enumerate(byom_nets.TASKS):
        task = manifest.task(spec["task_id"])
        name = task.output_tensor
        via_engine = engine.run(task, batch)[OUTPUT_ROLE[task.kind]]
        extra = extra_feeds(task, ["task_index"], 3)
        host = engine.runner._run_on_host(batch, task.path, extra)[name]
        bound = engine.runner._run_on_device(batch, task.path, {name}, device_type="cpu", extra=extra)[name]
        with torch.no_grad():
            raw = net(torch.from_numpy(batch), torch.full((3,), position, dtype=torch.int64))[spec["task_id"]]
        expected = torch.softmax(raw, 1).numpy() if spec["kind"] == "classification" else raw.numpy()
        if spec["kind"] == "detection":
            expected = np.concatenate([expected, np.zeros((3, 1), np.float32)], 1)[:, :, None, None]
        np.testing.assert_allclose(via_engine, expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(host, via_engine)
        np.testing.assert_array_equal(bound, host)
