"""``python export.py MEMBER... --select-on VAL_DIR --out DIR`` (also ``python -m selection ...``).

Members are exported model folders (used as they are), checkpoints (exported first with
``exporter.export_checkpoint`` and the export options given: ``--encoder``, ``--tasks``,
``--input-size``, ``--precision``, ...) or brought models (``--model``/``--task-map``, exported
as ``export.py`` exports them), each into a temporary folder beside ``--out``. Then
``selection.select.select_model`` chooses per task and writes ``--out``. See docs/selection.md.

Errors: one line ``export.py: error: ...`` and exit status 2; ``--out`` is left as it was.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import tempfile
from pathlib import Path

from contract.tasks import TaskKind

log = logging.getLogger(__name__)


def _metric(text: str) -> tuple[TaskKind, str]:
    kind, sep, metric = text.partition("=")
    try:
        if not sep:
            raise ValueError("expected KIND=METRIC")
        return TaskKind.parse(kind), metric.strip()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--select-metric {text!r}: {exc} "
                                         "(e.g. segmentation=hd, classification=f1)") from None


def _positive(text: str) -> float:
    value = float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection on a labelled validation folder (docs/selection.md)")
    group.add_argument("--select-on", type=Path, required=True, metavar="VAL_DIR",
                       help="labelled folder in the challenge layout (VAL_DIR/csv_files/*.csv) to choose on")
    group.add_argument("--select-metric", type=_metric, action="append", default=[], metavar="KIND=METRIC",
                       help="metric a kind's tasks are chosen on (repeatable; default: the official headline: "
                       "segmentation=dice, classification=auc, detection=iou, Regression=mre)")
    group.add_argument("--max-runs", type=_positive, default=None, metavar="N",
                       help="run-time budget: at most N model runs per image for a task (a member = 1, with flip = 2)")
    group.add_argument("--min-rows", type=int, default=8, metavar="N",
                       help="a task with fewer validation rows keeps the default (default 8)")
    group.add_argument("--folds", type=int, default=4, metavar="K",
                       help="folds of the check that a choice beats the default on rows it was not chosen on (default 4)")
    group.add_argument("--select-seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    group.add_argument("--postprocess-candidates", nargs="+", metavar="STEPS", default=None,
                       help="mask postprocessing options to try (default: largest_per_class largest_foreground "
                       "fill_holes largest_per_class+fill_holes largest_foreground+fill_holes; 'none': no postprocessing)")
    group.add_argument("--select-device", choices=["cpu", "auto", "cuda"], default="cpu",
                       help="where the members run during the selection (default cpu)")


def build_parser() -> argparse.ArgumentParser:
    import export

    parser = export.build_parser()
    parser.prog = "export.py"
    add_arguments(parser)
    return parser


def _member_folders(args: argparse.Namespace, scratch: Path) -> tuple[list[Path], list[str]]:
    """Each member as a model folder: folders as they are, checkpoints and brought models exported into ``scratch``."""
    from exporter import export_checkpoint
    from exporter.cli import baseline_options

    brought = bool(args.model or args.task_map or any(Path(c).suffix == ".onnx" for c in args.checkpoint))
    folders, names = [], []
    raw = [Path(c).name for c in args.checkpoint]
    longer = [f"{Path(c).absolute().parent.name}-{Path(c).name}" for c in args.checkpoint]  # run/last.pt: run-last.pt
    for index, source in enumerate(Path(c) for c in args.checkpoint):
        name = raw[index] if raw.count(raw[index]) == 1 else (
            longer[index] if longer.count(longer[index]) == 1 else f"{index}-{raw[index]}")
        names.append(name)
        if source.is_dir():
            folders.append(source)
            continue
        target = scratch / name
        log.info("member %d: exporting %s", index, source)
        if brought:
            from exporter.byom_cli import export_brought

            member_args = copy.copy(args)
            member_args.checkpoint, member_args.out = source, target
            export_brought(member_args)
        else:
            export_checkpoint(source, target, **baseline_options(args))
        folders.append(target)
    return folders, names


def options_from(args: argparse.Namespace):
    from selection.candidates import DEFAULT_POSTPROCESS
    from selection.choose import Guard
    from selection.select import SelectOptions

    postprocess = args.postprocess_candidates if args.postprocess_candidates is not None else DEFAULT_POSTPROCESS
    return SelectOptions(metrics=dict(args.select_metric), max_runs=args.max_runs,
                         guard=Guard(min_rows=max(1, args.min_rows), folds=max(2, args.folds), seed=args.select_seed),
                         postprocess=[p for p in postprocess if p != "none"], flip_rules=dict(args.flip_rule),
                         tta_mode=args.tta or "none", device=args.select_device)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from contract.csv_layout import CsvLayoutError, list_csv_files
    from contract.postprocess import PostprocessError, parse_postprocess
    from exporter.errors import ExportError
    from selection.score import ScoreError
    from selection.select import SelectionError, select_model

    try:
        options = options_from(args)
        for kind in TaskKind:  # mistakes fail before any work
            options.metric(kind)
        for text in options.postprocess:
            parse_postprocess(text)
        try:
            list_csv_files(args.select_on)
        except CsvLayoutError as exc:
            raise SelectionError(f"--select-on {args.select_on}: {exc}") from None
        out = Path(args.out)
        try:
            out.absolute().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SelectionError(f"--out {out}: cannot make its parent folder ({exc.strerror or exc})") from None
        with tempfile.TemporaryDirectory(prefix=".select-members-", dir=out.absolute().parent) as scratch:
            folders, names = _member_folders(args, Path(scratch))
            manifest, reports = select_model(folders, args.select_on, out, options, names)
    except (SelectionError, ExportError, ScoreError, PostprocessError) as exc:
        print(f"export.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"selected per task on {args.select_on}: {len(manifest.members or [None])} member(s) in {out}; "
          f"report: {out / 'selection_report.md'}")
    for report in reports:
        print(f"  {report.task_id}: {report.chosen.label(names)} ({report.reason})")
    return 0
