#!/usr/bin/env python
"""Export a PyTorch checkpoint to a verified ONNX model folder.

    python export.py best_model.pth --out my_model/
    python export.py run/checkpoint.pt --out my_model/ --precision fp16 --precision int8 --calibration-dir imgs/
    python export.py fold0.pt fold1.pt fold2.pt --out my_model/ --tta flip      # an ensemble (exporter.ensemble)

    python export.py team.pt --model path/to/net.py:build --model-arg width=32 --out my_model/   # your own network
    python export.py team.onnx --task-map map.json --out my_model/                            # your own ONNX file
    python export.py model_weights/ tuned.pt --select-on val/ --out chosen/   # chosen per task on labelled data
                                                                              # (options: python -m selection --help)

Accepts the official baseline's plain state_dict (encoder inferred from its
tensor shapes unless --encoder is given) and this project's training
checkpoints (which carry their configuration); with --model or an .onnx file, any
team's network, whose forward may return every task at once or one task per call,
keyed by the task's name or position (docs/bring-your-own-model.md). Several
checkpoints make an ensemble whose members are averaged (docs/ensembles.md).

The output folder (--out, required) must be new or empty. A folder that already holds a
model (its manifest.json) is replaced, atomically and only once the new model passed its
checks, when --force is given; a non-empty folder that is not a model folder is never
replaced. The model the image runs by default is model_weights/: export there only on
purpose (--out model_weights --force).

Exit codes: 0 exported; 1 the model cannot be exported as it is (one line names the
fix; the output folder is then untouched); 2 the command line is wrong (an option, a
missing file, an unknown task id, an --out that may not be written).
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--out", type=Path, required=True,
                        help="model folder to write: a new or empty folder (an existing model folder needs --force)")
    parser.add_argument("--force", action="store_true",
                        help="replace --out when it already holds a model (manifest.json); the old one stays "
                        "until the new one is complete. Other non-empty folders are never replaced")
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
    byom = parser.add_argument_group("bring your own model (docs/bring-your-own-model.md)")
    byom.add_argument("--model", metavar="MODULE:FACTORY", help="your network: FACTORY(**model_args) -> nn.Module "
                      "(MODULE importable, or path/to/net.py)")
    byom.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                      help="keyword argument of FACTORY (repeatable; VALUE read as JSON when it parses, else a string)")
    byom.add_argument("--task-map", type=Path, help="with CHECKPOINT = model.onnx: JSON mapping tasks to its outputs")
    byom.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="normalization mean (default ImageNet)")
    byom.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="normalization std (default ImageNet)")
    byom.add_argument("--channel-order", choices=["RGB", "BGR"], help="channel order the network expects (default RGB)")
    return parser


def occupied(out: Path, force: bool) -> str | None:
    """Why ``out`` may not be written (None: it may): a file, a non-empty folder, or a model without --force."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a folder; choose another --out"
    if not out.is_dir() or not any(out.iterdir()):
        return None
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return (f"--out {out}: not empty and not a model folder (no manifest.json); export never replaces it: "
                "choose a new or empty folder")
    if force:
        return None
    try:
        tasks = len(json.loads(manifest.read_text(encoding="utf-8")).get("tasks", []))
        held = f"a model of {tasks} task{'' if tasks == 1 else 's'}"
    except (OSError, ValueError, AttributeError):
        held = "a model folder"
    return f"--out {out}: already holds {held}; pass --force to replace it, or choose a new folder"


def main(argv: list[str] | None = None) -> int:
    if any(a == "--select-on" or a.startswith("--select-on=") for a in (sys.argv[1:] if argv is None else argv)):
        from selection.cli import main as select  # per-task choice on labelled data (docs/selection.md)

        return select(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    brought = bool(args.model or args.task_map or any(c.suffix == ".onnx" for c in args.checkpoint))
    if not brought and args.input_size and (min(args.input_size) < 32 or any(p % 32 for p in args.input_size)):
        size = "x".join(map(str, args.input_size))
        parser.error(f"--input-size {size}: the baseline's FPN needs multiples of 32 (e.g. 256x256)")
    problem = occupied(args.out, args.force)
    if problem:  # one line, as every other refusal (exporter.cli); nothing is touched
        print(f"export.py: error: {problem}", file=sys.stderr)
        return 2
    from exporter.cli import run  # heavy imports after argument parsing

    return run(args, brought)


if __name__ == "__main__":
    sys.exit(main())
