#!/usr/bin/env python
"""Export a PyTorch checkpoint to a verified ONNX model folder.

    python export.py best_model.pth --out model_weights/
    python export.py run/checkpoint.pt --out model_weights/ --precision fp16 --precision int8 --calibration-dir imgs/
    python export.py fold0.pt fold1.pt fold2.pt --out model_weights/ --tta flip      # an ensemble (exporter.ensemble)

Accepts the official baseline's plain state_dict (encoder inferred from its
tensor shapes unless --encoder is given) and this project's training
checkpoints (which carry their configuration).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def parse_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().replace("x", ",").split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size {text!r}: expected N or HxW, e.g. 256 or 256x256") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 32 or any(p % 32 for p in parts):
        raise argparse.ArgumentTypeError(f"input size {text!r}: expected N or HxW, multiples of 32 (e.g. 256x256)")
    return parts[0], parts[1]


def _flip_rule(text: str):
    from contract.flip import FlipRuleError, parse_assignment

    try:
        return parse_assignment(text)
    except FlipRuleError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, nargs="+",
                        help="best_model.pth (official state_dict) or a training checkpoint; several: an ensemble "
                        "whose members are averaged (a member may also be an exported model folder)")
    parser.add_argument("--out", type=Path, default=Path("model_weights"), help="model folder to write (replaced atomically)")
    parser.add_argument("--encoder", help="smp encoder name (default: inferred from the checkpoint)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK_ID", help="export only these tasks (default: all in the checkpoint)")
    parser.add_argument("--input-size", type=parse_size, help="network input HxW (default: the checkpoint's, else 256x256)")
    parser.add_argument(
        "--precision", action="append", choices=["fp32", "fp16", "int8"], default=[],
        help="graph sets to write besides fp32 (repeatable): fp16 for CUDA, int8 for CPU (needs --calibration-dir)",
    )
    parser.add_argument("--calibration-dir", type=Path, help="folder of images to calibrate int8 on")
    parser.add_argument(
        "--tolerance", type=float, default=1e-4,
        help="largest relative error of ONNX Runtime vs PyTorch accepted at fp32 (default 1e-4)",
    )
    parser.add_argument("--calibration-limit", type=int, default=64, help="at most this many calibration images")
    parser.add_argument("--tta", choices=["none", "flip"], default=None,
                        help="test-time augmentation the runtime applies by default (python -m inference --tta auto)")
    parser.add_argument("--flip-rule", action="append", default=[], type=_flip_rule, metavar="TASK=RULE",
                        help="what a horizontal flip does to a task (repeatable): safe, unsafe, permute_classes:P, "
                        "permute_points:P (defaults: contract/flip.py)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from exporter import ExportError, export_checkpoint  # heavy imports after argument parsing

    started = time.perf_counter()
    options = dict(
        encoder=args.encoder,
        tasks=args.tasks,
        input_size=args.input_size,
        precisions=["fp32", *args.precision],
        calibration_dir=args.calibration_dir,
        calibration_limit=args.calibration_limit,
        tolerance=args.tolerance,
    )
    tta = {"tta": args.tta or "none", "flip_rules": dict(args.flip_rule)}
    try:
        if len(args.checkpoint) > 1:
            from exporter.ensemble import export_ensemble

            manifest = export_ensemble(args.checkpoint, args.out, **tta, **options)
        elif args.tta or args.flip_rule:
            from exporter.ensemble import export_with_tta

            manifest = export_with_tta(args.checkpoint[0], args.out, **tta, **options)
        else:
            manifest = export_checkpoint(args.checkpoint[0], args.out, **options)
    except ExportError as exc:
        print(f"export.py: error: {exc}", file=sys.stderr)
        return 2
    worst = max(manifest.parity.max_rel_error.values()) if manifest.parity else float("nan")
    print(
        f"exported {len(manifest.tasks)} tasks ({manifest.model.encoder_name}, "
        f"{manifest.model.preprocessing.input_size[0]}x{manifest.model.preprocessing.input_size[1]}) "
        f"to {args.out} in {time.perf_counter() - started:.1f} s; graph sets: {', '.join(manifest.graph_sets)}; "
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
