"""Command line: ``python -m training --train DIR --val DIR --out runs/NAME [options]``."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from contract.defaults import DEFAULT_INPUT_SIZE
from training.checkpoint import CheckpointError
from training.data import TrainingDataError
from training.options import DEFAULT_ENCODER, DEFAULT_EPOCHS, DEFAULT_PARAMS, TrainingError, TrainOptions

log = logging.getLogger("training")


def _value(text: str) -> int | float | bool | str | None:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def _pairs(items: list[str] | None, what: str) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"{what}: expected key=value, got {item!r}")
        out[key.strip()] = _value(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the multi-task network with the seed-000 recipe on a labelled folder in the challenge "
                    "layout (DIR/csv_files/*.csv). Writes OUT/last.pt every epoch, OUT/best.pt on a better "
                    "validation score, OUT/metrics.jsonl and OUT/config.json.")
    p.add_argument("--train", required=True, help="labelled training folder (challenge layout)")
    p.add_argument("--val", default=None, help="labelled validation folder (challenge layout)")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")
    p.add_argument("--encoder", default=None, help=f"smp encoder name (default {DEFAULT_ENCODER})")
    p.add_argument("--params", nargs="*", metavar="KEY=VALUE",
                   help=f"network builder options, e.g. pyramid_channels=128 (default {DEFAULT_PARAMS})")
    p.add_argument("--tasks", nargs="+", default=None, help="train only these task ids (default: all in --train)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="total optimizer steps")
    budget.add_argument("--epochs", type=int, default=None, help=f"epochs (default {DEFAULT_EPOCHS})")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="pause at this step (checkpointed) without shortening the schedule; continue with --resume")
    p.add_argument("--steps-per-epoch", type=int, default=100, help="steps per epoch (validation after each)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE[0], help="square network input size")
    p.add_argument("--lr-backbone", type=float, default=1e-4, help="encoder + FPN decoder learning rate")
    p.add_argument("--lr-heads", type=float, default=1e-3, help="task heads learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--warmup", type=float, default=0.0, help="fraction of the run with linear lr warmup")
    p.add_argument("--min-lr-ratio", type=float, default=0.0, help="final lr as a fraction of the initial one")
    p.add_argument("--grad-clip", type=float, default=5.0, help="max gradient norm (0 disables)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="warm start from another run's checkpoint: tensors with the same name and shape are copied")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="stop after this many minutes of training (the lr schedule ends on time)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no brightness/contrast/noise")
    p.add_argument("--seg-ce", type=float, default=1.0, help="cross-entropy weight added to the Dice loss")
    p.add_argument("--det-l1", type=float, default=8.0, help="lambda of the detection box L1")
    p.add_argument("--det-negative", type=float, default=1.0, help="BCE weight toward 0 on non-target cells")
    p.add_argument("--kind-weights", nargs="*", metavar="KIND=W", help="loss weight per kind, e.g. Regression=4")
    p.add_argument("--task-sampling", nargs="*", metavar="KIND=W",
                   help="draw tasks of a kind W times as often as the recipe's uniform sampling, e.g. detection=2")
    p.add_argument("--cache-dir", default=None, help="decoded-image cache folder (default OUT/cache)")
    p.add_argument("--val-batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(
        train_dir=args.train, val_dir=args.val, out_dir=args.out, encoder=args.encoder,
        params=None if args.params is None else _pairs(args.params, "--params"), tasks=args.tasks,
        input_size=args.input_size, steps=args.steps, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        stop_at=args.stop_at,
        batch_size=args.batch_size, lr_backbone=args.lr_backbone, lr_heads=args.lr_heads,
        weight_decay=args.weight_decay, warmup=args.warmup, min_lr_ratio=args.min_lr_ratio,
        grad_clip=args.grad_clip or None, device=args.device, resume=args.resume, init_from=args.init_from, seed=args.seed,
        time_limit=args.time_limit, augment=args.augment, seg_ce=args.seg_ce, det_l1=args.det_l1,
        det_negative=args.det_negative, kind_weights=_pairs(args.kind_weights, "--kind-weights"),
        task_sampling=_pairs(args.task_sampling, "--task-sampling"),
        cache_dir=args.cache_dir, val_batch_size=args.val_batch_size, threads=args.threads,
        progress=not args.quiet)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("evaluation").setLevel(logging.WARNING)  # one line per CSV is noise here
    try:
        options = options_from_args(args)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"error: option {'.'.join(map(str, first['loc']))}: {first['msg']}", file=sys.stderr)
        return 2
    from training.trainer import train  # heavy imports after the arguments are known to be fine

    try:
        metrics = train(options)
    except (TrainingDataError, TrainingError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume (from the last epoch's checkpoint)", file=sys.stderr)
        return 130
    if "score" in metrics:
        print(f"done: {options.out_dir}/last.pt, validation score {metrics['score']:.4f}")
    else:
        print(f"done: {options.out_dir}/last.pt")
    return 0
