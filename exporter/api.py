"""Python API of the exporter: a network (or a checkpoint) -> a verified model folder."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from exporter.errors import CalibrationError, ExportError
from exporter.folder import folder_bytes, staged_folder
from exporter.graphs import export_fp32
from exporter.images import random_batch
from exporter.parity import TOLERANCE_FP32, measure_parity
from contract.manifest import (
    OUTPUT_ROLE,
    GraphSet,
    Manifest,
    ModelConfig,
    TaskEntry,
    TorchFallback,
    write_manifest,
)
from contract.defaults import PRECISIONS
from contract.kinds import spec_of

log = logging.getLogger(__name__)

EXPORTER_VERSION = "1.0"
EXTRA_FILE = "torch_extra.npz"
PROVIDERS = {
    "fp32": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "fp16": ["CUDAExecutionProvider"],
    "int8": ["CPUExecutionProvider"],
}


def versions() -> dict[str, str]:
    found = {"exporter": EXPORTER_VERSION}
    for name, dist in [
        ("torch", "torch"),
        ("onnx", "onnx"),
        ("onnxruntime", "onnxruntime-gpu"),
        ("segmentation_models_pytorch", "segmentation-models-pytorch"),
        ("timm", "timm"),
        ("onnxconverter_common", "onnxconverter-common"),
    ]:
        try:
            found[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            if name == "onnxruntime":
                import onnxruntime

                found[name] = onnxruntime.__version__
    return found


def task_entries(model: nn.Module, config: ModelConfig) -> list[TaskEntry]:
    stages = {stage.name: stage for stage in model.stages()}
    entries = []
    for task in config.tasks:
        path = model.task_path(task.task_id)
        role = OUTPUT_ROLE[task.kind]
        names = stages[path[-1]].outputs
        outputs = {role: names[0]} if len(names) == 1 else {name.rsplit(".", 1)[-1]: name for name in names}
        entries.append(
            TaskEntry(
                task_id=task.task_id,
                kind=task.kind,
                num_classes=task.num_classes,
                path=path,
                outputs=outputs,
                meaning=spec_of(task.kind).meaning,
            )
        )
    return entries


def write_fallback_extras(model: nn.Module, stage_dir: Path, graph_set: GraphSet) -> TorchFallback:
    """Save what the graphs do not hold (besides re-creatable counters) to a small .npz."""
    from network.weights import RECREATED_SUFFIXES, initializers_of

    stored: set[str] = set()
    for graph in graph_set.graphs.values():
        stored.update(initializers_of(stage_dir / graph.path))
    extra = {
        key: value.detach().cpu().numpy()
        for key, value in model.state_dict().items()
        if key not in stored and not key.endswith(RECREATED_SUFFIXES)
    }
    if not extra:
        return TorchFallback()
    np.savez(stage_dir / EXTRA_FILE, **extra)
    log.info("%d tensors not in the graphs saved to %s", len(extra), EXTRA_FILE)
    return TorchFallback(extra_file=EXTRA_FILE, extra_bytes=(stage_dir / EXTRA_FILE).stat().st_size)


def verify_fallback(model: nn.Module, stage_dir: Path) -> None:
    """The folder must rebuild the same network with bit-identical weights."""
    from network.weights import RECREATED_SUFFIXES, load_model_from_folder

    rebuilt, _ = load_model_from_folder(stage_dir)
    original = model.state_dict()
    for key, value in rebuilt.state_dict().items():
        if key.endswith(RECREATED_SUFFIXES):
            continue
        if not torch.equal(value, original[key]):
            raise ExportError(f"the PyTorch fallback would load a different {key} than the network has")


def _check_precisions(precisions: Iterable[str], calibration_images: Sequence[Path] | None) -> list[str]:
    wanted = ["fp32", *[p for p in precisions if p != "fp32"]]
    unknown = [p for p in wanted if p not in PRECISIONS]
    if unknown:
        raise ExportError(f"unknown precision {unknown[0]!r}; choose from {', '.join(PRECISIONS)}")
    if "int8" in wanted and not calibration_images:
        raise CalibrationError("--precision int8 needs calibration images: pass --calibration-dir DIR")
    return list(dict.fromkeys(wanted))


def export_model(
    model: nn.Module,
    out_dir: Path,
    precisions: Sequence[str] = ("fp32",),
    calibration_images: Sequence[Path] | None = None,
    source: dict | None = None,
    tolerance: float = TOLERANCE_FP32,
) -> Manifest:
    """Export ``model`` (a network with ``config``, ``stages()``, ``task_path()``) to ``out_dir``.

    Writes fp32 graphs (always) and the requested precision variants, verifies
    them (onnx checker, ORT CPU vs PyTorch at batch 1 and 8; ParityError above
    ``tolerance``), checks that the PyTorch fallback rebuilds identical weights,
    and replaces ``out_dir`` only when everything succeeded.
    """
    wanted = _check_precisions(precisions, calibration_images)
    config: ModelConfig = model.config
    started = time.perf_counter()
    model.eval()
    with staged_folder(Path(out_dir)) as stage_dir:
        graphs = export_fp32(model, stage_dir, random_batch(2, config.preprocessing, seed=7))
        graph_sets = {"fp32": GraphSet(precision="fp32", graphs=graphs, providers=PROVIDERS["fp32"])}
        fallback = write_fallback_extras(model, stage_dir, graph_sets["fp32"])
        parity = measure_parity(model, stage_dir, graph_sets["fp32"], config.preprocessing, tolerance)
        tasks = task_entries(model, config)
        for precision in wanted[1:]:
            from exporter.precision import export_variant

            graph_sets[precision] = export_variant(
                precision, stage_dir, graph_sets["fp32"], config, tasks, calibration_images, PROVIDERS[precision]
            )
        manifest = Manifest(
            model=config,
            tasks=tasks,
            graph_sets=graph_sets,
            parity=parity,
            torch_fallback=fallback,
            versions=versions(),
            source={k: str(v) for k, v in (source or {}).items()},
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        os.chmod(write_manifest(manifest, stage_dir), 0o644)  # readable by a container's non-root user
        verify_fallback(model, stage_dir)
        total = folder_bytes(stage_dir)
    log.info("exported %d tasks to %s in %.1f s (%.1f MB)", len(config.tasks), out_dir, time.perf_counter() - started, total / 1e6)
    return manifest


def export_checkpoint(
    path: Path,
    out_dir: Path,
    encoder: str | None = None,
    tasks: Sequence[str] | None = None,
    input_size: tuple[int, int] | None = None,
    precisions: Sequence[str] = ("fp32",),
    calibration_dir: Path | None = None,
    calibration_limit: int = 64,
    tolerance: float = TOLERANCE_FP32,
) -> Manifest:
    """Checkpoint (official state_dict or own training checkpoint) -> verified model folder."""
    from exporter.checkpoint import open_checkpoint, resolve_config
    from exporter.folder import check_target
    from exporter.images import calibration_files
    from exporter.loading import load_network
    from contract.manifest import sha256_of

    check_target(Path(out_dir).absolute())
    calibration = calibration_files(Path(calibration_dir), calibration_limit) if calibration_dir else None
    _check_precisions(precisions, calibration)
    checkpoint = open_checkpoint(Path(path))
    config = resolve_config(checkpoint, encoder, tasks, input_size)
    model = load_network(checkpoint, config)
    source = {"checkpoint": Path(path).name, "sha256": sha256_of(Path(path)), "layout": checkpoint.layout}
    return export_model(model, Path(out_dir), precisions, calibration, source, tolerance)
