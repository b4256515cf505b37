"""What ``export.py`` does once its arguments are parsed: one model, an ensemble, with or without TTA.

- one baseline checkpoint: ``exporter.api.export_checkpoint``;
- one brought model (``--model`` or ``model.onnx --task-map``): ``exporter.byom_cli``;
- several checkpoints, or ``--tta``/``--flip-rule``: ``exporter.ensemble``. Brought members
  are exported one by one into a temporary folder, then joined as exported folders.

Errors: one line ``export.py: error: ...`` and exit status 2; nothing half-written.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

from contract.manifest import Manifest
from exporter.errors import ExportError


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


def _export_brought_members(args: argparse.Namespace, scratch: Path) -> list[Path]:
    """Each brought checkpoint exported on its own (its parity proven) into ``scratch/<k>``."""
    from exporter.byom_cli import export_brought

    folders = []
    names = [Path(c).name for c in args.checkpoint]
    for index, checkpoint in enumerate(args.checkpoint):
        member_args = copy.copy(args)
        name = names[index] if names.count(names[index]) == 1 else f"{index}-{names[index]}"
        member_args.checkpoint, member_args.out = checkpoint, scratch / name  # the member's name in the manifest
        export_brought(member_args)
        folders.append(member_args.out)
    return folders


def export(args: argparse.Namespace, brought: bool) -> Manifest:
    tta = {"tta": args.tta or "none", "flip_rules": dict(args.flip_rule)}
    combined = len(args.checkpoint) > 1 or args.tta or args.flip_rule
    if brought and not combined:
        from exporter.byom_cli import export_brought

        single = copy.copy(args)
        single.checkpoint = args.checkpoint[0]
        return export_brought(single)
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
        return 2
    report(manifest, args.out, time.perf_counter() - started)
    if getattr(args, "check_cpu", False):
        from exporter.cpu_check import check_after_export

        return check_after_export(args.out, getattr(args, "check_images", None))
    return 0
