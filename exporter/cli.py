"""What ``export.py`` does once its arguments are parsed: one model, an ensemble, with or without TTA.

- one baseline checkpoint: ``exporter.api.export_checkpoint``;
- one brought model: ``--model`` -> ``exporter.api.export_brought``, ``model.onnx --task-map``
  -> ``exporter.api.export_onnx``;
- several checkpoints, or ``--tta``/``--flip-rule``: ``exporter.ensemble``. Brought members
  are exported one by one into a temporary folder, then joined as exported folders.

Errors: one line ``export.py: error: ...``; exit status 2 for a wrong command line
(``UsageError``), 1 for a model that cannot be exported as it is (``exporter.errors``);
nothing half-written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from contract.manifest import IMAGENET_MEAN, IMAGENET_STD, Manifest, Preprocessing
from exporter.errors import EXIT_OK, ExportError, UsageError
from exporter.pipeline import official_coverage


def baseline_options(args: argparse.Namespace) -> dict:
    return dict(
        encoder=args.encoder,
        tasks=args.tasks,
        input_size=args.input_size,
        precisions=["fp32", *args.precision],
        calibration_dir=args.calibration_dir,
        calibration_limit=args.calibration_limit,
        tolerance=args.tolerance,
    )


def preprocessing(args: argparse.Namespace) -> Preprocessing:
    return Preprocessing(
        input_size=tuple(args.input_size or (256, 256)),
        mean=tuple(args.mean or IMAGENET_MEAN),
        std=tuple(args.std or IMAGENET_STD),
        color=args.channel_order or "RGB",
    )


def export_brought(args: argparse.Namespace, checkpoint: Path, out: Path) -> Manifest:
    """One brought model (``--model`` or an ``.onnx`` file with ``--task-map``) after checking the options' combination."""
    from exporter.api import export_brought as export_network
    from exporter.api import export_onnx
    from exporter.byom import parse_model_args

    is_onnx = checkpoint.suffix == ".onnx"
    if args.encoder:
        raise UsageError("--encoder applies to baseline checkpoints only; drop it with --model / --task-map")
    if is_onnx and args.model:
        raise UsageError(f"{checkpoint.name} is an ONNX file: drop --model and describe its outputs with --task-map MAP.json")
    if is_onnx and not args.task_map:
        raise UsageError(f"{checkpoint.name} is an ONNX file: pass --task-map MAP.json naming each task's output and kind")
    if not is_onnx and not args.model:
        raise UsageError("--task-map applies to an ONNX file; for a PyTorch checkpoint pass --model MODULE:FACTORY")
    common = dict(tasks=args.tasks, preprocessing=preprocessing(args), precisions=["fp32", *args.precision],
                  calibration_dir=args.calibration_dir, calibration_limit=args.calibration_limit, tolerance=args.tolerance)
    if is_onnx:
        return export_onnx(checkpoint, Path(args.task_map), out, **common)
    return export_network(checkpoint, out, args.model, parse_model_args(args.model_arg), **common)


def _export_brought_members(args: argparse.Namespace, scratch: Path) -> list[Path]:
    """Each brought checkpoint exported on its own (its parity proven) into ``scratch/<name>``."""
    folders = []
    names = [Path(c).name for c in args.checkpoint]
    for index, checkpoint in enumerate(args.checkpoint):
        name = names[index] if names.count(names[index]) == 1 else f"{index}-{names[index]}"
        export_brought(args, Path(checkpoint), scratch / name)  # the folder's name is the member's name
        folders.append(scratch / name)
    return folders


def export(args: argparse.Namespace, brought: bool) -> Manifest:
    tta = {"tta": args.tta or "none", "flip_rules": dict(args.flip_rule)}
    combined = len(args.checkpoint) > 1 or args.tta or args.flip_rule
    if brought and not combined:
        return export_brought(args, Path(args.checkpoint[0]), Path(args.out))
    if not combined:
        from exporter.api import export_checkpoint

        return export_checkpoint(args.checkpoint[0], args.out, **baseline_options(args))
    from exporter.ensemble import export_ensemble, export_with_tta

    with tempfile.TemporaryDirectory(prefix=".export-members-", dir=Path(args.out).absolute().parent) as scratch:
        members = _export_brought_members(args, Path(scratch)) if brought else list(args.checkpoint)
        options = {} if brought else baseline_options(args)  # exported folders are copied as they are
        if len(members) > 1:
            return export_ensemble(members, args.out, **tta, **options)
        return export_with_tta(members[0], args.out, **tta, **options)


def report(manifest: Manifest, out: Path, seconds: float) -> None:
    worst = max(manifest.parity.max_rel_error.values()) if manifest.parity else float("nan")
    size = manifest.model.preprocessing.input_size
    conditioned = " (task-conditioned)" if manifest.model.params.get("conditioned") else ""
    print(
        f"exported {len(manifest.tasks)} tasks ({manifest.model.encoder_name}{conditioned}, {size[0]}x{size[1]}) "
        f"to {out} in {seconds:.1f} s; graph sets: {', '.join(manifest.graph_sets)}; "
        f"max relative error vs PyTorch {worst:.2e}"
    )
    coverage = official_coverage(t.task_id for t in manifest.tasks)
    if coverage:
        print(f"  {coverage}")
    if manifest.members:
        print(f"  ensemble of {len(manifest.members)} members: "
              + ", ".join(m.source.get("name", m.path) for m in manifest.members))
    if manifest.tta is not None:
        flipped = [t for t, rule in manifest.tta.flip_rules.items() if rule.flips]
        print(f"  test-time augmentation: {manifest.tta.mode}; {len(flipped)} of {len(manifest.tasks)} tasks "
              "may be flipped (--flip-rule to change)")
    for name, graph_set in manifest.graph_sets.items():
        if graph_set.deviation_from_fp32:
            figures = ", ".join(f"{k} {v:.4g}" for k, v in graph_set.deviation_from_fp32.items())
            print(f"  {name} vs fp32: {figures}")


def run(args: argparse.Namespace, brought: bool) -> int:
    started = time.perf_counter()
    try:
        manifest = export(args, brought)
    except ExportError as exc:
        print(f"export.py: error: {exc}", file=sys.stderr)
        return exc.exit_code
    report(manifest, args.out, time.perf_counter() - started)
    if getattr(args, "check_cpu", False):
        from exporter.cpu_check import check_after_export

        return check_after_export(args.out, getattr(args, "check_images", None))
    return EXIT_OK
