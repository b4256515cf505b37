"""``python -m review --input IN --predictions PRED [--out FILE] [--max-per-task N] [--log RUN_LOG]``.

Writes an HTML page (no network needed to open it) and, beside it, the folder of full-size
overlays its thumbnails link to. At the top: the rows without a prediction or a usable label,
then a summary per kind (tasks worst first, scores coloured); then per task a grid of
thumbnails with the prediction drawn on each image and, when the input CSVs carry labels, the
truth beside it and each image's own score: missing and skipped rows first, then worst first.

Exit status: 0 written; 1 the page or its overlay folder could not be written; 2 bad
arguments, an input or prediction folder that cannot be read, or an overlay folder in the way.
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
from evaluation.options import add_deprecated, add_folder_options, resolve_aliases, resolve_folder_options
from evaluation.report import Report, plural
from inference.errors import FatalError
from review.biometry import attach_measurements
from review.collect import Item, Review, collect
from review.draw import KIND_DRAWING, render, thumbnail_data_uri
from review.overlays import OverlayFolder, OverlayFolderInTheWay, overlay_name
from review.page import build_page

log = logging.getLogger("review")

EXIT_OK, EXIT_WRITE, EXIT_USAGE = 0, 1, 2
OLD_FOLDERS = {"--output": "predictions"}  # review's --output named the run's output folder, which it READS
OLD_OPTIONS = {"--report": "out"}
OUT_HELP = ("the page to write (default: PRED-review/review.html, a folder beside the prediction folder, never inside "
            "it: the prediction folder is what gets zipped for upload); the full-size overlays go beside the page "
            "in FILE_files/ (e.g. review_files/), replaced whole on each run")


def _parser() -> argparse.ArgumentParser:
    doc = __doc__.split("\n\n")
    p = argparse.ArgumentParser(prog="python -m review", description=doc[1].replace("\n", " "),
                                epilog=doc[2].replace("\n", " "))
    add_folder_options(p, OLD_FOLDERS)
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help=OUT_HELP)
    p.add_argument("--max-per-task", type=int, default=24, help="thumbnails per task (default 24; the rest are counted)")
    p.add_argument("--thumb-width", type=int, default=220, help="thumbnail width in pixels (default 220)")
    p.add_argument("--log", type=Path, default=None, help="the run's saved stderr: list its 'row failed' lines")
    p.add_argument("-v", "--verbose", action="store_true")
    add_deprecated(p, "--report", "out", metavar="FILE")
    p.add_argument("--overlays", dest="deprecated_overlays", type=Path, default=None, metavar="DIR",
                   help="deprecated: the overlays always go to FILE_files/ beside the page; DIR replaces that folder")
    return p


def default_page(predictions: Path) -> Path:
    """PRED-review/review.html, beside the prediction folder."""
    folder = predictions if predictions.name else predictions.resolve()
    return folder.parent / f"{folder.name}-review" / "review.html"


def overlay_folder(page: Path) -> Path:
    return page.with_name(f"{page.stem}_files")


class Thumbnails:
    """Renders each shown item once: the page's thumbnail and the full-size PNG its link opens."""

    def __init__(self, width: int, folder: OverlayFolder, page: Path):
        self.width, self.folder = width, folder
        self.prefix = Path(os.path.relpath(folder.target, page.absolute().parent)).as_posix()
        self.names: dict[int, str] = {}

    def __call__(self, item: Item) -> str:
        image = render(item)
        name = overlay_name(item.row.index, item.row.task_id, item.row.image_path)
        self.folder.add(name, image)
        self.names[id(item)] = name
        wide = KIND_DRAWING[item.kind].wide and item.label is not None
        return thumbnail_data_uri(image, self.width * (2 if wide else 1))

    def link(self, item: Item) -> str:
        return f"{self.prefix}/{self.names[id(item)]}"


def _scores(review: Review) -> Optional[Report]:
    if not review.labelled:
        return None
    try:
        return evaluate_official(review.input_dir, review.output_dir, order=TaskRegistry.official().ids)
    except LabelLayoutError as exc:
        review.notes.append(f"no score table: {exc}")
        return None


def write_report(review: Review, page: Path, cap: int, width: int, overlays: Path) -> int:
    """Write the overlay folder, then the page (each atomically); return the number of overlays."""
    report = _scores(review)
    with OverlayFolder(overlays) as folder:
        thumbs = Thumbnails(width, folder, page)
        html = build_page(review, thumbs, cap, report, link=thumbs.link)
        folder.commit()
    atomic_write_text(page, html)
    return folder.written


def _check(args: argparse.Namespace) -> Optional[str]:
    for name in ("input", "predictions"):
        folder = getattr(args, name)
        if not folder.is_dir():
            return f"--{name} {folder} {'is not a folder' if folder.exists() else 'does not exist'}"
    if args.max_per_task < 1:
        return "--max-per-task must be at least 1"
    inside = args.predictions.resolve() in args.out.absolute().parents
    if inside:
        print(f"python -m review: warning: --out {args.out} is inside the prediction folder: zipping that folder "
              "for upload would include the page", file=sys.stderr)
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    resolve_folder_options(parser, args, OLD_FOLDERS)
    resolve_aliases(parser, args, OLD_OPTIONS)
    if args.deprecated_overlays is not None:
        print(f"{parser.prog}: warning: --overlays is deprecated: full-size overlays are always written, by default "
              "to FILE_files/ beside the page", file=sys.stderr)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="review: %(levelname)s %(message)s")
    args.out = args.out or default_page(args.predictions)
    problem = _check(args)
    if problem:
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    overlays = args.deprecated_overlays or overlay_folder(args.out)
    try:
        review = collect(args.input, args.predictions, log_file=args.log)
    except (FatalError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    attach_measurements(review, args.input, args.predictions)
    try:
        written = write_report(review, args.out, args.max_per_task, args.thumb_width, overlays)
    except OverlayFolderInTheWay as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{parser.prog}: error: cannot write {args.out} ({exc.strerror or exc})", file=sys.stderr)
        return EXIT_WRITE
    size_kb = args.out.stat().st_size / 1024
    shown = sum(min(len(t.items), args.max_per_task) for t in review.tasks)
    flagged = sum(t.flagged for t in review.tasks)
    print(f"review written to {args.out} ({size_kb:.0f} KiB, {plural(len(review.tasks), 'task')}, "
          f"{plural(shown, 'image')} shown, {plural(flagged, 'row')} missing or skipped); "
          f"full-size overlays in {overlays}/ ({plural(written, 'image')})")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
