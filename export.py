#!/usr/bin/env python
"""Export a PyTorch checkpoint to a verified ONNX model folder.

    python export.py best_model.pth --out model_weights/
    python export.py run/checkpoint.pt --out model_weights/ --precision fp16 --precision int8 --calibration-dir imgs/
    python export.py fold0.pt fold1.pt fold2.pt --out model_weights/ --tta flip      # an ensemble (exporter.ensemble)

    python export.py team.pt --model path/to/net.py:build --model-arg width=32 --out my_model/   # your own network
    python export.py team.onnx --task-map map.json --out my_model/                            # your own ONNX file

Accepts the official baseline's plain state_dict (encoder inferred from its
tensor shapes unless --encoder is given) and this project's training
checkpoints (which carry their configuration); with --model or an .onnx file, any
team's network (README: Bring your own model). Several checkpoints make an
ensemble whose members are averaged (README: Ensembles and test-time augmentation).
"""

from __future__ import annotations

import argparse
import logging
import sys
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
    parser.add_argument("--check-cpu", action="store_true",
                        help="after the export, check the CPU variants (bf16 with OpenVINO) against fp32 on held-out "
                        "images and record the result in the manifest; --precision auto uses a variant only for the "
                        "task kinds that passed (docs/cpu.md; for an exported folder: python -m exporter.cpu_check DIR)")
    parser.add_argument("--check-images", type=Path, metavar="DIR",
                        help="with --check-cpu: held-out images in the challenge layout, labelled for the official "
                        "metrics (default: phantoms of seed 7)")
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
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    brought = bool(args.model or args.task_map or any(c.suffix == ".onnx" for c in args.checkpoint))
    if not brought and args.input_size and (min(args.input_size) < 32 or any(p % 32 for p in args.input_size)):
        size = "x".join(map(str, args.input_size))
        parser.error(f"--input-size {size}: the baseline's FPN needs multiples of 32 (e.g. 256x256)")
    from exporter.cli import run  # heavy imports after argument parsing

    return run(args, brought)


if __name__ == "__main__":
    sys.exit(main())
