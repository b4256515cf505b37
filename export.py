#!/usr/bin/env python
"""Export a PyTorch checkpoint to a verified ONNX model folder.

    python export.py best_model.pth --out model_weights/
    python export.py run/checkpoint.pt --out model_weights/ --precision fp16 --precision int8 --calibration-dir imgs/

    python export.py team.pt --model path/to/net.py:build --model-arg width=32 --out my_model/   # your own network
    python export.py team.onnx --task-map map.json --out my_model/                            # your own ONNX file

Accepts the official baseline's plain state_dict (encoder inferred from its
tensor shapes unless --encoder is given) and this project's training
checkpoints (which carry their configuration); with --model or an .onnx file, any
team's network (README: Bring your own model).
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
    if len(parts) != 2 or min(parts) < 16:
        raise argparse.ArgumentTypeError(f"input size {text!r}: expected N or HxW, at least 16 (e.g. 256x256)")
    return parts[0], parts[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="best_model.pth (official state_dict) or a training checkpoint")
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
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    byom = parser.add_argument_group("bring your own model (README: Bring your own model)")
    byom.add_argument("--model", metavar="MODULE:FACTORY", help="your network: FACTORY(**model_args) -> nn.Module "
                      "(MODULE importable, or path/to/net.py)")
    byom.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                      help="keyword argument of FACTORY (repeatable; VALUE read as JSON when it parses, else a string)")
    byom.add_argument("--task-map", type=Path, help="with CHECKPOINT = model.onnx: JSON mapping tasks to its outputs")
    byom.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="normalization mean (default ImageNet)")
    byom.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="normalization std (default ImageNet)")
    byom.add_argument("--channel-order", choices=["RGB", "BGR"], help="channel order the network expects (default RGB)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from exporter import ExportError, export_checkpoint  # heavy imports after argument parsing

    started = time.perf_counter()
    if args.model or args.task_map or args.checkpoint.suffix == ".onnx":
        from exporter.byom_cli import run_byom

        return run_byom(args, started)  # any input size the team's network takes (e.g. 518 for patch 14)
    if args.input_size and (min(args.input_size) < 32 or any(p % 32 for p in args.input_size)):
        size = "x".join(map(str, args.input_size))
        build_parser().error(f"--input-size {size}: the baseline's FPN needs multiples of 32 (e.g. 256x256)")
    try:
        manifest = export_checkpoint(
            args.checkpoint,
            args.out,
            encoder=args.encoder,
            tasks=args.tasks,
            input_size=args.input_size,
            precisions=["fp32", *args.precision],
            calibration_dir=args.calibration_dir,
            calibration_limit=args.calibration_limit,
            tolerance=args.tolerance,
        )
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
    for name, graph_set in manifest.graph_sets.items():
        if graph_set.deviation_from_fp32:
            figures = ", ".join(f"{k} {v:.4g}" for k, v in graph_set.deviation_from_fp32.items())
            print(f"  {name} vs fp32: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
