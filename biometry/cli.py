"""``python -m biometry --input IN --predictions PRED --out FILE.json [--pixel-spacing MM]``.

Exit codes:

==== ==================================================================================
0    every row of a measured task got its values
1    fatal: a missing input or predictions folder, no CSV, an unreadable CSV, an unwritable output
2    usage: bad arguments (``--out`` not ``.json``, inside the input folder, or the name of one of
     the run's own files; a malformed ``--pixel-spacing``)
3    some rows (prediction or label side) could not be measured: each is named in the log and in
     ``FILE_report.json`` with its reason; every other row was measured and written
==== ==================================================================================
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from contract.kinds import PREDICTION_FILES

from biometry.labels import format_errors
from biometry.output import output_paths, write_measurements
from biometry.run import EXIT_FATAL, EXIT_USAGE, BiometryInputError, measure_run
from biometry.spacing import Spacing, parse_spacing

log = logging.getLogger("biometry")


def _spacing(text: str) -> Spacing:
    try:
        return parse_spacing(text, "flag")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m biometry",
        description="Clinical biometry from a run's outputs: HC, BPD, OFD (fetal_head masks), AC "
                    "(fetal_abdomen_multi masks), FL (fetal_femur points), the angle of progression and the "
                    "head-symphysis distance (head_symphysis_multi masks), in mm where the pixel spacing is known. "
                    "With labels in the input folder, also the error of each measure against the labels.")
    p.add_argument("--input", required=True, type=Path, help="the run's input folder (INPUT/csv_files/*.csv)")
    p.add_argument("--predictions", required=True, type=Path,
                   help="the run's output folder (masks and regression_predictions.json); only read")
    p.add_argument("--out", required=True, type=Path,
                   help="measurements file (.json); NAME.csv, NAME_report.json and NAME_errors.json go beside it")
    p.add_argument("--pixel-spacing", type=_spacing, default=None, metavar="MM",
                   help="mm per pixel for every row (one value, or X,Y); overrides the CSV's pixel_spacing "
                        "column and the images' own spacing (.mha/.nii/DICOM headers)")
    p.add_argument("--no-labels", dest="labels", action="store_false",
                   help="do not measure the labels even where the input folder has them")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _check_out(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        paths = output_paths(args.out)
    except ValueError as exc:
        parser.error(str(exc))
    if args.input.is_dir() and _inside(args.out, args.input):
        parser.error(f"--out {args.out} lies inside the input folder {args.input}; write it elsewhere")
    own = {(args.predictions / name).resolve() for name in PREDICTION_FILES.values()}
    clash = [str(p) for p in paths.values() if p.resolve() in own]
    if clash:
        parser.error(f"--out would overwrite the run's own file(s) {clash}; choose another name")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for bad arguments, 0 for --help
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="biometry: %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        _check_out(parser, args)
    except SystemExit:
        return EXIT_USAGE
    try:
        result = measure_run(args.input, args.predictions, args.pixel_spacing, labels=args.labels, overlays=False)
    except BiometryInputError as exc:
        log.error("%s", exc)
        return EXIT_FATAL
    try:
        write_measurements(result, args.out)
    except OSError as exc:
        log.error("cannot write %s: %s", args.out, exc)
        return EXIT_FATAL
    if result.has_labels:
        summary = result.errors
        log.info("error against the labels:\n%s", format_errors(summary) or "no measure on both sides")
    if result.problems:
        log.warning("%d of %d rows had a side that could not be measured (listed above and in the report)",
                    len({(p.csv_file, p.row) for p in result.problems}), result.rows)
    return result.exit_code
