"""Command line: ``python -m phantoms --out DIR --seed N [--per-task N | --counts id=N,...] ...``."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from contract.tasks import TaskRegistry, UnknownTaskError
from phantoms.generate import PhantomError, generate_dataset, resolve_counts


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _counts(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in _csv_list(text):
        key, sep, value = item.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(f"bad --counts item {item!r}; expected task_id=N")
        out[key.strip()] = int(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m phantoms", description="Synthetic ultrasound phantoms in the "
                                "FMC_UIA layout (deterministic from --seed).")
    p.add_argument("--out", required=True, help="output folder (must be empty unless --overwrite)")
    p.add_argument("--seed", type=int, required=True, help="random seed; same seed and options give identical files")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--per-task", type=int, default=None, help="images per task (default 8)")
    group.add_argument("--counts", type=_counts, default=None, help="images per task as task_id=N,...")
    p.add_argument("--tasks", type=_csv_list, default=None, help="only these task ids (comma separated)")
    p.add_argument("--kinds", type=_csv_list, default=None,
                   help="only these kinds: segmentation,classification,detection,Regression")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty folder (replaces its dataset)")
    p.add_argument("--no-labels", dest="labels", action="store_false", help="leave out label columns and masks")
    p.add_argument("--size-scale", type=float, default=1.0,
                   help="scale the native image sizes (e.g. 0.5 for a small sample set; default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        counts = resolve_counts(TaskRegistry.official(), args.per_task, args.counts, args.tasks, args.kinds)
        start = time.perf_counter()
        root = generate_dataset(args.out, args.seed, counts, labels=args.labels, workers=max(1, args.workers),
                                overwrite=args.overwrite, progress=not args.quiet,
                                size_scale=args.size_scale)
    except (PhantomError, UnknownTaskError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(counts.values())
    took = time.perf_counter() - start
    print(f"wrote {total} images for {len(counts)} tasks to {root} in {took:.1f} s "
          f"({1000 * took / max(total, 1):.1f} ms/image)")
    return 0
