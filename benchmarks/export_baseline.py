"""Figures of an export of the baseline architecture (``python -m benchmarks.export_baseline``).

Builds the baseline network (EfficientNet-B4 + FPN + 27 heads by default) with
random weights, re-estimates its BatchNorm statistics on synthetic
ultrasound-like frames (so activations have realistic ranges), saves it as an
official-layout ``best_model.pth``, exports it with ``export_checkpoint`` and
prints: export time, folder size against parameter bytes, max relative error
per task kind, fp16/int8 deviations, and ONNX Runtime CPU latency of the
encoder with BatchNorm kept (as exported) against BatchNorm folded by torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from contract.defaults import DEFAULT_ENCODER, DEFAULT_INPUT_SIZE
from contract.imaging import preprocess
from contract.manifest import ModelConfig, Preprocessing
from contract.tasks import TaskRegistry
from exporter import export_checkpoint
from exporter.folder import folder_bytes
from exporter.graphs import run_torch_stages
from exporter.images import synthetic_images
from network import build_model


@torch.no_grad()
def calibrate_batchnorm(model: torch.nn.Module, batches: int = 6, batch: int = 8) -> torch.nn.Module:
    """Re-estimate BatchNorm statistics of a randomly initialised network on synthetic frames and noise.

    A random network keeps BatchNorm's initial statistics (mean 0, variance 1),
    with which activations grow block after block; real checkpoints carry
    statistics of their training data. Returns the model in eval mode.
    """
    prep = model.config.preprocessing
    height, width = prep.input_size
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average
    stages = model.stages()
    model.train()
    for i in range(batches):  # frames and noise, so that both parity inputs meet calibrated statistics
        if i % 2:
            image = torch.randn(batch, 3, height, width)
        else:
            image = torch.from_numpy(preprocess(synthetic_images(batch, (height + 40, width + 90), seed=900 + i), prep))
        run_torch_stages(stages, image)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.1
    return model.eval()


def baseline_with_bn_statistics(encoder: str, size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(encoder_name=encoder, tasks=list(TaskRegistry.official()), preprocessing=Preprocessing(input_size=(size, size)))
    return calibrate_batchnorm(build_model(config))


def encoder_latency(path: Path, size: int, runs: int = 5) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    session.run(None, {"image": image})
    started = time.perf_counter()
    for _ in range(runs):
        session.run(None, {"image": image})
    return (time.perf_counter() - started) / runs


def folded_encoder(model: torch.nn.Module, path: Path, size: int) -> None:
    """The same encoder exported with torch's constant folding (Conv+BN fused in the file)."""
    stage = model.stages()[0]
    with torch.no_grad():
        torch.onnx.export(
            stage.module, (torch.zeros(1, 3, size, size),), str(path), dynamo=False, opset_version=17,
            input_names=stage.inputs, output_names=stage.outputs, do_constant_folding=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER)
    parser.add_argument("--size", type=int, default=DEFAULT_INPUT_SIZE[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/export_benchmark"))
    parser.add_argument("--precision", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    model = baseline_with_bn_statistics(args.encoder, args.size)
    checkpoint = args.work / "best_model.pth"
    torch.save(model.state_dict(), checkpoint)
    calibration = args.work / "calibration"
    calibration.mkdir(exist_ok=True)
    for i, image in enumerate(synthetic_images(32, (480, 640), seed=2000)):
        cv2.imwrite(str(calibration / f"{i:03d}.png"), image)
    out = args.work / "model_weights"
    started = time.perf_counter()
    manifest = export_checkpoint(checkpoint, out, input_size=(args.size, args.size), precisions=["fp32", *args.precision],
                                 calibration_dir=calibration if "int8" in args.precision else None)
    seconds = time.perf_counter() - started
    param_bytes = sum(p.numel() * 4 for p in model.parameters())
    fp32_bytes = sum(g.bytes for g in manifest.graph_sets["fp32"].graphs.values())
    per_kind: dict[str, float] = {}
    for task in manifest.tasks:
        per_kind[task.kind.value] = max(per_kind.get(task.kind.value, 0.0), manifest.parity.max_rel_error[task.task_id])
    folded = args.work / "encoder_folded.onnx"
    folded_encoder(model, folded, args.size)
    figures = {
        "encoder": args.encoder, "input": args.size, "export_seconds": round(seconds, 1),
        "parameter_bytes": param_bytes, "fp32_graph_bytes": fp32_bytes, "fp32_graphs_over_params": round(fp32_bytes / param_bytes, 4),
        "folder_bytes": folder_bytes(out), "fallback_extra_bytes": manifest.torch_fallback.extra_bytes,
        "max_rel_error_per_kind": per_kind,
        "deviation_from_fp32": {k: v.deviation_from_fp32 for k, v in manifest.graph_sets.items() if k != "fp32"},
        "encoder_latency_ms_bn_kept": round(1000 * encoder_latency(out / "encoder.onnx", args.size), 1),
        "encoder_latency_ms_bn_folded_by_torch": round(1000 * encoder_latency(folded, args.size), 1),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
