"""``--biometry``: clinical measurements (HC, AC, FL, AoP, ...) from a finished batch run's outputs.

Runs the ``biometry`` package on the input folder and the output folder after the three JSON
files are written, and writes ``OUTPUT/biometry.json`` with its CSV, report and label-error files
beside them (``biometry.output``). It only reads the run's outputs: they are never altered. Rows
that cannot be measured (an empty mask, a head touching the border) are listed in the report and
counted in one WARNING; they do not fail the run. A biometry file that cannot be written does.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "biometry.json"


def write_biometry(input_dir: Path, output_dir: Path) -> tuple[list[Path], str | None]:
    """Measure the run in ``output_dir``; returns (files written, a problem line when none could be written)."""
    from biometry.output import write_measurements
    from biometry.run import BiometryInputError, measure_run

    try:
        result = measure_run(Path(input_dir), Path(output_dir), overlays=False)
        paths = write_measurements(result, Path(output_dir) / FILE_NAME)
    except (BiometryInputError, OSError, ValueError) as exc:
        log.error("biometry not written: %s", exc)
        return [], f"biometry: {exc}"
    if result.problems:
        log.warning("biometry: %d row(s) could not be measured (reasons in %s)", len(result.problems),
                    paths["report"].name)
    log.info("biometry: %d values from %d rows in %s", len(result.measurements), result.rows, paths["json"])
    return list(paths.values()), None
