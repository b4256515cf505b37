"""``python -m review --input IN --output OUT_RUN [--report review.html] [--overlays DIR] [--max-per-task N]``.

Writes one self-contained HTML file (no network needed to open it): per task a grid of
thumbnails with the prediction drawn on each image and, when the input CSVs carry labels,
the truth beside or over it and each image's own score, worst first; the run's failures;
a histogram of the per-image scores. ``--overlays DIR`` also writes full-size overlay PNGs.

Exit status: 0 on success, 2 when the input or output folder cannot be read.
"""

from __future__ import annotations

import argparse
import html
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import cv2

from evaluation.labels import LabelLayoutError
from evaluation.official import evaluate_official
from evaluation.report import METRICS_MODES, Report
from contract.atomic import atomic_write_bytes, atomic_write_text
from inference.errors import FatalError
from contract.tasks import TaskKind, TaskRegistry
from review.collect import Item, Review, collect
from review.draw import render, thumbnail_data_uri
from review.page import build_page

log = logging.getLogger("review")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m review", description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("--input", required=True, type=Path, help="the run's input folder (INPUT/csv_files/*.csv)")
    p.add_argument("--output", required=True, type=Path, help="the run's output folder")
    p.add_argument("--report", type=Path, default=Path("review.html"), help="HTML file to write (default review.html)")
    p.add_argument("--overlays", type=Path, default=None, help="also write full-size overlay PNGs here")
    p.add_argument("--max-per-task", type=int, default=24, help="thumbnails per task (default 24; the rest are counted)")
    p.add_argument("--thumb-width", type=int, default=220, help="thumbnail width in pixels (default 220)")
    p.add_argument("--log", type=Path, default=None, help="the run's saved stderr: list its 'row failed' lines")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _scores_table(report: Report) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(t.task_id)}</td><td>{t.rows}</td><td>{t.missing}</td><td>"
        + ", ".join(f"{e(k)}={v:.4f}" for k, v in t.metrics.items() if v is not None) + "</td></tr>"
        for t in report.tasks)
    notes = "".join(f"<li>{e(n)}</li>" for n in report.notes)
    return (f'<h2 id="scores">Scores ({e(report.metrics_mode)} metrics: {e(METRICS_MODES[report.metrics_mode])})</h2>'
            f"<table><tr><th>task</th><th>rows</th><th>skipped</th><th>metrics</th></tr>{rows}</table>"
            f'<ul class="note">{notes}</ul>')


class Thumbnails:
    """Renders each shown item once: the thumbnail for the page, the full-size PNG when asked."""

    def __init__(self, width: int, overlays: Optional[Path]):
        self.width, self.overlays, self.written = width, overlays, 0

    def __call__(self, item: Item) -> str:
        image = render(item)
        if self.overlays is not None:
            name = f"{item.row.task_id}__{Path(item.row.image_path).stem}__{item.row.index}.png"
            ok, data = cv2.imencode(".png", image)
            if ok:
                atomic_write_bytes(self.overlays / name, data.tobytes())
                self.written += 1
        wide = item.kind is TaskKind.SEGMENTATION and item.label is not None
        return thumbnail_data_uri(image, self.width * (2 if wide else 1))


def write_report(review: Review, report_file: Path, cap: int, width: int, overlays: Optional[Path]) -> int:
    """Write the page (and overlays); return the number of overlay PNGs written."""
    table = None
    if review.labelled:
        try:
            table = _scores_table(evaluate_official(review.input_dir, review.output_dir,
                                                    order=TaskRegistry.official().ids))
        except LabelLayoutError as exc:
            review.notes.append(f"no score table: {exc}")
    thumbs = Thumbnails(width, overlays)
    atomic_write_text(report_file, build_page(review, thumbs, cap, table))
    return thumbs.written


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="review: %(levelname)s %(message)s")
    if not args.output.is_dir():
        print(f"error: output folder {args.output} does not exist", file=sys.stderr)
        return 2
    if args.max_per_task < 1:
        print("error: --max-per-task must be at least 1", file=sys.stderr)
        return 2
    try:
        review = collect(args.input, args.output, log_file=args.log)
    except (FatalError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    written = write_report(review, args.report, args.max_per_task, args.thumb_width, args.overlays)
    size_kb = args.report.stat().st_size / 1024
    shown = sum(min(len(t.items), args.max_per_task) for t in review.tasks)
    print(f"review written to {args.report} ({size_kb:.0f} KiB, {len(review.tasks)} tasks, {shown} images shown, "
          f"{len(review.failures)} failures)" + (f"; {written} overlays in {args.overlays}" if args.overlays else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
