"""fp16 and int8 graph sets of a brought (task-conditioned) model: weights once per set, runtime runs them."""

from __future__ import annotations

import math

import torch

import byom_nets
from byom_check import REPO, rows, sample_input, seeded
from export import main as export_main
from inference.cli import main as inference_main
from inference.errors import EXIT_OK
from inference.manifest import load_manifest


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
