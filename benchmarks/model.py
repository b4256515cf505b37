"""The benchmarked network: the baseline's EfficientNet-B4 + FPN with all 27 heads, random weights.

Random weights (``torch.manual_seed(seed)``, PyTorch's default initialization, no
pretrained encoder) are enough for timing: the arithmetic is the same whatever
the values. One thing is done about them: with default BatchNorm statistics the
activations of a random EfficientNet shrink by ~1000x per stage (the deepest map
is ~1e-12), so every classification or keypoint output would be the same constant
for any image and reduced precision would be judged on noise. The BatchNorm
statistics are therefore measured on phantom images (a train-mode pass, dropout
off, cumulative averages), which keeps every stage's activations at unit scale as
in a trained network; four batches of Gaussian noise join them, so that the
exporter's parity check on noise inputs stays well-conditioned (without them a
random network amplifies noise to ~5e3 at the deepest map and fp32 itself is off). The network is exported once with the project's exporter (fp32 and
int8 graph sets, int8 calibrated on a small phantom set of another seed) and
cached in ``data/bench/``; beside the model folder the same weights are saved as
a plain ``state_dict`` (the form of the baseline's ``best_model.pth``), which is
what the reference pipeline loads.
"""

from __future__ import annotations

import logging
from pathlib import Path

from contract.defaults import DEFAULT_ENCODER
from benchmarks.dataset import CACHE_ROOT, cached_phantoms
from contract.manifest import MANIFEST_NAME, ModelConfig, load_manifest
from contract.kinds import spec_of
from contract.tasks import TaskRegistry

log = logging.getLogger(__name__)

ENCODER = DEFAULT_ENCODER
CALIBRATION_SEED = 99
STATE_DICT_NAME = "best_model.pth"
SOURCE_NOTE = ("benchmark: {encoder}, 27 heads, random weights (torch seed {seed}), BatchNorm statistics from "
               "phantoms; for timing only")


def calibration_counts(registry: TaskRegistry | None = None) -> dict[str, int]:
    """About 40 images: one per task, two for the dense (FPN) tasks."""
    registry = registry or TaskRegistry.official()
    return {t.task_id: 2 if spec_of(t.kind).dense else 1 for t in registry}


def _cached(model_dir: Path, state_dict: Path, source: str, precisions: tuple[str, ...]) -> bool:
    if not (model_dir / MANIFEST_NAME).is_file() or not state_dict.is_file():
        return False
    try:
        manifest = load_manifest(model_dir)
    except ValueError:
        return False
    return manifest.source.get("checkpoint") == source and all(p in manifest.graph_sets for p in precisions)


def benchmark_model(seed: int = 0, precisions: tuple[str, ...] = ("fp32", "int8"),
                    cache_root: Path = CACHE_ROOT, encoder: str = ENCODER) -> tuple[Path, Path]:
    """(model folder, state_dict file) of the random-weight baseline network, exported once and cached."""
    model_dir = Path(cache_root) / f"{encoder.replace('-', '')}_seed{seed}_model"
    state_dict = Path(cache_root) / f"{encoder.replace('-', '')}_seed{seed}_{STATE_DICT_NAME}"
    source = SOURCE_NOTE.format(encoder=encoder, seed=seed)
    if _cached(model_dir, state_dict, source, precisions):
        log.info("model %s: cached", model_dir)
        return model_dir, state_dict
    import torch

    from exporter import export_model
    from exporter.images import calibration_batches, calibration_files, random_batch
    from network import build_model

    torch.manual_seed(seed)
    config = ModelConfig(encoder_name=encoder, tasks=list(TaskRegistry.official()))
    model = build_model(config).eval()
    folder = cached_phantoms(f"calibration_seed{CALIBRATION_SEED}", CALIBRATION_SEED, calibration_counts(),
                             labels=False, cache_root=cache_root)
    noise = [random_batch(8, config.preprocessing, seed=1000 + i) for i in range(4)]  # the exporter's parity inputs
    recalibrate_batchnorm(model, calibration_batches(calibration_files(folder, limit=64), config.preprocessing) + noise)
    calibration = calibration_files(folder, limit=64) if "int8" in precisions else None
    log.info("exporting %s (%s) to %s; this takes a few minutes once", encoder, ", ".join(precisions), model_dir)
    export_model(model, model_dir, precisions=precisions, calibration_images=calibration,
                 source={"checkpoint": source})
    torch.save(model.state_dict(), state_dict)
    return model_dir, state_dict


def recalibrate_batchnorm(model, batches) -> None:
    """Measure every BatchNorm's running mean and variance on ``batches`` (N x 3 x H x W arrays).

    Train-mode passes through the encoder and each BatchNorm-carrying head (detection),
    dropout off, cumulative averages (``momentum=None``); the model is left in eval mode.
    """
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()
    dense_with_norms = [t.task_id for t in model.config.tasks
                        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.heads[t.task_id].modules())]
    with torch.no_grad():
        for batch in batches:
            image = torch.from_numpy(batch)
            for task_id in dense_with_norms or [model.config.tasks[0].task_id]:
                model(image, task_id)
    for norm in norms:
        norm.momentum = 0.1
    model.eval()


def describe_model(model_dir: Path) -> dict[str, object]:
    """Facts about a model folder for the report: encoder, tasks per kind, graph sets, deviations."""
    manifest = load_manifest(model_dir)
    kinds: dict[str, int] = {}
    for task in manifest.tasks:
        kinds[task.kind.value] = kinds.get(task.kind.value, 0) + 1
    return {
        "encoder": manifest.model.encoder_name,
        "input_size": list(manifest.model.preprocessing.input_size),
        "tasks": len(manifest.tasks),
        "tasks_per_kind": kinds,
        "graph_sets": sorted(manifest.graph_sets),
        "source": manifest.source.get("checkpoint", ""),
        "deviation_from_fp32": {k: v.deviation_from_fp32 for k, v in manifest.graph_sets.items() if v.deviation_from_fp32},
    }

