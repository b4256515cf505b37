"""Python API of the exporter: each entry point makes a source and runs the one pipeline (``exporter.pipeline``).

- ``export_model(model, out_dir, ...)``: a network with ``stages()`` (``network``) or a
  brought network already wrapped (``network.byom.ByomNetwork``);
- ``export_checkpoint(path, out_dir, ...)``: a baseline or training checkpoint;
- ``export_brought(checkpoint, out_dir, model="MODULE:FACTORY", ...)``: a team's PyTorch network;
- ``export_onnx(path, task_map, out_dir, ...)``: a team's ONNX file and its task map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from torch import nn

from contract.manifest import Manifest, Preprocessing, sha256_of
from exporter.errors import UsageError
from exporter.folder import check_target
from exporter.images import calibration_files
from exporter.parity import TOLERANCE_FP32
from exporter.pipeline import check_precisions, export_source
from exporter.sources.base import Source


def _source_of(model: nn.Module) -> Source:
    from network.byom import ByomNetwork

    if isinstance(model, ByomNetwork):
        from exporter.sources.brought import BroughtSource

        return BroughtSource(model)
    from exporter.sources.staged import StagedSource

    return StagedSource(model)


def export_model(
    model: nn.Module,
    out_dir: Path,
    precisions: Sequence[str] = ("fp32",),
    calibration_images: Sequence[Path] | None = None,
    source: dict | None = None,
    tolerance: float = TOLERANCE_FP32,
) -> Manifest:
    """Export ``model`` to ``out_dir``: a network with ``config``, ``stages()``, ``task_path()``, or a ``ByomNetwork``.

    Writes fp32 graphs (always) and the requested precision variants, verifies them
    (onnx checker, ORT CPU vs PyTorch at batch 1 and 8; ParityError above ``tolerance``),
    checks that the PyTorch fallback rebuilds identical weights, and replaces ``out_dir``
    only when everything succeeded.
    """
    check_precisions(precisions, calibration_images)
    return export_source(_source_of(model), Path(out_dir), precisions, calibration_images, source, tolerance)


def _prepare(out_dir: Path, precisions: Sequence[str], calibration_dir: Path | None, limit: int) -> list[Path] | None:
    """Checks every export makes before loading anything: the target, the calibration images, the precisions."""
    check_target(Path(out_dir).absolute())
    calibration = calibration_files(Path(calibration_dir), limit) if calibration_dir else None
    check_precisions(precisions, calibration)
    return calibration


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
    from exporter.loading import load_network
    from exporter.sources.staged import StagedSource

    calibration = _prepare(out_dir, precisions, calibration_dir, calibration_limit)
    checkpoint = open_checkpoint(Path(path))
    config = resolve_config(checkpoint, encoder, tasks, input_size)
    model = load_network(checkpoint, config)
    info = {"checkpoint": Path(path).name, "sha256": sha256_of(Path(path)), "layout": checkpoint.layout}
    return export_source(StagedSource(model), Path(out_dir), precisions, calibration, info, tolerance)


def export_brought(
    checkpoint: Path,
    out_dir: Path,
    model: str,
    model_args: dict[str, Any] | None = None,
    tasks: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    precisions: Sequence[str] = ("fp32",),
    calibration_dir: Path | None = None,
    calibration_limit: int = 64,
    tolerance: float = TOLERANCE_FP32,
) -> Manifest:
    """A team's PyTorch network (``model`` = ``MODULE:FACTORY``, built with ``model_args``) -> verified model folder."""
    from exporter.byom import load_byom
    from exporter.sources.brought import BroughtSource

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UsageError(f"{checkpoint}: no such file")
    calibration = _prepare(out_dir, precisions, calibration_dir, calibration_limit)
    wrapper = load_byom(checkpoint, model, dict(model_args or {}), tasks, preprocessing or Preprocessing())
    info = {"checkpoint": checkpoint.name, "sha256": sha256_of(checkpoint), "layout": "byom"}
    return export_source(BroughtSource(wrapper), Path(out_dir), precisions, calibration, info, tolerance)


def export_onnx(
    path: Path,
    task_map: Path,
    out_dir: Path,
    tasks: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    precisions: Sequence[str] = ("fp32",),
    calibration_dir: Path | None = None,
    calibration_limit: int = 64,
    tolerance: float = TOLERANCE_FP32,
) -> Manifest:
    """A team's ONNX file with its task map (``exporter.task_map``) -> verified model folder."""
    from exporter.sources.onnx_file import OnnxFileSource

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    calibration = _prepare(out_dir, precisions, calibration_dir, calibration_limit)
    source = OnnxFileSource(path, Path(task_map), preprocessing or Preprocessing(), tasks)
    info = {"checkpoint": path.name, "sha256": sha256_of(path), "layout": "onnx", "task_map": Path(task_map).name}
    return export_source(source, Path(out_dir), precisions, calibration, info, tolerance)
