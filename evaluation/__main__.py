"""``python -m evaluation --labels INPUT_DIR --predictions PRED_DIR [--metrics official|strict] [--json F]``.

``--metrics official`` (the default) gives the numbers of the challenge's own evaluate.py
(``evaluation.official``); ``--metrics strict`` the better-defined variants (``evaluation.scoring``).

Exit status: 0 when scoring completed (missing/malformed predictions are counted,
not fatal), 2 when the label folder is not a labelled folder in the challenge
layout, a requested task has no rows, or the prediction folder does not exist.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from contract.atomic import atomic_write_text
from contract.tasks import TaskRegistry
from evaluation.labels import LabelLayoutError
from evaluation.official import evaluate_official
from evaluation.report import Report, format_table
from evaluation.scoring import TaskSelectionError, evaluate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation",
        description=(
            "Score a prediction folder against a labelled input folder with the FMC_UIA 2026 metrics "
            "(Dice/HD, AUC/F1/MCC/accuracy, IoU, MRE). --metrics official (default) follows the "
            "challenge's evaluate.py: rows without a prediction are skipped, AUC is 0 where undefined. "
            "--metrics strict scores missing or malformed predictions as the worst case (Dice 0, HD = "
            "diagonal, IoU 0, wrong class with probability 1, points off by the image diagonal) and "
            "averages AUC over the classes present."
        ),
    )
    parser.add_argument("--labels", required=True, type=Path, help="labelled input folder (INPUT_DIR/csv_files/*.csv)")
    parser.add_argument("--predictions", required=True, type=Path, help="prediction folder (the container's /output)")
    parser.add_argument("--json", type=Path, default=None, help="write the full report as JSON here")
    parser.add_argument("--metrics", choices=("official", "strict"), default="official",
                        help="official: the challenge's evaluate.py rules (default); strict: our variants")
    parser.add_argument("--tasks", nargs="+", default=None, metavar="TASK_ID", help="score only these task ids")
    parser.add_argument("--max-issues", type=int, default=20, help="issues printed in the table (all are in the JSON)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def write_json(report: Report, path: Path) -> None:
    """Write the report atomically (temp file in the same folder, then os.replace)."""
    atomic_write_text(path, report.model_dump_json(indent=2))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.predictions.is_dir():
        print(f"error: prediction folder {args.predictions} does not exist", file=sys.stderr)
        return 2
    try:
        if args.metrics == "official":
            report = evaluate_official(args.labels, args.predictions, tasks=args.tasks, order=TaskRegistry.official().ids)
        else:
            report = evaluate(args.labels, args.predictions, tasks=args.tasks)
    except (LabelLayoutError, TaskSelectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(report, max_issues=args.max_issues))
    if args.json is not None:
        write_json(report, args.json)
        print(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
