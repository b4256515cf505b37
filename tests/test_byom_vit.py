"""A ViT/DINO-style network (timm, random init, no download) with a task token, through export.py --model."""

from __future__ import annotations

from pathlib import Path

import torch

import byom_nets
from byom_check import check_predictions, sample_input
from export import main as export_main
from inference.cli import main as inference_main
from inference.errors import EXIT_OK
from contract.manifest import load_manifest


def test_timm_vit_with_task_token_goes_through_the_same_path(tmp_path):
    torch.manual_seed(8)
    net = byom_nets.make_vit_net(embed_dim=32, depth=2).eval()
    with torch.no_grad():
        net.task_embedding.weight.normal_(0.0, 1.0)
    torch.save(net.state_dict(), tmp_path / "vit.pt")
    out = tmp_path / "model"
    assert export_main([str(tmp_path / "vit.pt"), "--model", f"{Path(byom_nets.__file__)}:make_vit_net",
                        "--model-arg", "embed_dim=32", "--input-size", "64", "--precision", "fp16", "--out", str(out)]) == 0
    manifest = load_manifest(out)
    assert max(manifest.parity.max_rel_error.values()) <= 1e-4
    positions = {t["task_id"]: i for i, t in enumerate(net.tasks)}
    sample = sample_input(tmp_path)
    predictions = tmp_path / "out"
    assert inference_main(["--input", str(sample), "--output", str(predictions), "--weights", str(out)]) == EXIT_OK
    check_predictions(net, sample, predictions, positions=positions)
    # the PyTorch fallback rebuilds the ViT from the shared weights file
    by_torch = tmp_path / "out_torch"
    assert inference_main(["--input", str(sample), "--output", str(by_torch), "--weights", str(out), "--engine", "torch"]) == EXIT_OK
    check_predictions(net, sample, by_torch, positions=positions)
    # fp16 (timm's attention casts a shape to float: the converter's Cast nodes are repaired)
    assert manifest.graph_set("fp16").deviation_from_fp32["classification.max_abs_prob_diff"] <= 1e-2
    assert inference_main(["--input", str(sample), "--output", str(tmp_path / "fp16"), "--weights", str(out),
                           "--precision", "fp16", "--strict"]) == EXIT_OK
