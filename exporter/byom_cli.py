"""``export.py`` for brought models: ``--model MODULE:FACTORY`` (PyTorch) or ``model.onnx --task-map``."""

from __future__ import annotations

import argparse
from pathlib import Path

from exporter.errors import ExportError
from contract.manifest import IMAGENET_MEAN, IMAGENET_STD, Manifest, Preprocessing


def preprocessing(args: argparse.Namespace) -> Preprocessing:
    return Preprocessing(
        input_size=tuple(args.input_size or (256, 256)),
        mean=tuple(args.mean or IMAGENET_MEAN),
        std=tuple(args.std or IMAGENET_STD),
        color=args.channel_order or "RGB",
    )


def export_brought(args: argparse.Namespace) -> Manifest:
    """Dispatch to the PyTorch or the ONNX path after checking the combination of options."""
    from exporter.folder import check_target
    from exporter.images import calibration_files
    from contract.manifest import sha256_of

    checkpoint = Path(args.checkpoint)
    is_onnx = checkpoint.suffix == ".onnx"
    if args.encoder:
        raise ExportError("--encoder applies to baseline checkpoints only; drop it with --model / --task-map")
    if is_onnx and args.model:
        raise ExportError(f"{checkpoint.name} is an ONNX file: drop --model and describe its outputs with --task-map MAP.json")
    if is_onnx and not args.task_map:
        raise ExportError(f"{checkpoint.name} is an ONNX file: pass --task-map MAP.json naming each task's output and kind")
    if not is_onnx and not args.model:
        raise ExportError("--task-map applies to an ONNX file; for a PyTorch checkpoint pass --model MODULE:FACTORY")
    if not checkpoint.is_file():
        raise ExportError(f"{checkpoint}: no such file")
    check_target(Path(args.out).absolute())
    calibration = calibration_files(Path(args.calibration_dir), args.calibration_limit) if args.calibration_dir else None
    precisions = ["fp32", *args.precision]
    prep = preprocessing(args)
    source = {"checkpoint": checkpoint.name, "sha256": sha256_of(checkpoint)}
    if is_onnx:
        from exporter.byom_onnx import export_onnx_file

        return export_onnx_file(checkpoint, Path(args.task_map), Path(args.out), prep, args.tasks, precisions,
                                calibration, source)
    from exporter.byom import load_byom, parse_model_args
    from exporter.byom_export import export_byom

    model_args = parse_model_args(args.model_arg)
    wrapper = load_byom(checkpoint, args.model, model_args, args.tasks, prep)
    return export_byom(wrapper, Path(args.out), precisions, calibration, {**source, "layout": "byom"}, args.tolerance)
