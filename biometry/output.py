"""Writing a run's measurements: the JSON list, a CSV beside it, the report and the label errors.

For ``--out DIR/NAME.json``:

- ``NAME.json``: a JSON list of ``{"task_id", "image_path", "measure", "value", "unit"}``;
- ``NAME.csv``: the same records, one a line, those five columns;
- ``NAME_report.json``: rows measured, the problems (rows without a value, and why), the notes
  (several components, a non-elliptical outline, points outside the image), spacing sources;
- ``NAME_errors.json``: the error per measure against the labels (``biometry.labels``; empty
  lists when the input folder holds no labels) and the pair of values of every row.

Every file is written atomically (``contract.atomic``): a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from contract.atomic import atomic_write_text

from biometry.model import Measurement
from biometry.run import BiometryResult

log = logging.getLogger(__name__)

RECORD_FIELDS = ("task_id", "image_path", "measure", "value", "unit")


def output_paths(out_file: Path) -> dict[str, Path]:
    """The four files written for ``out_file`` (which must end in ``.json``)."""
    out_file = Path(out_file)
    if out_file.suffix.lower() != ".json":
        raise ValueError(f"--out {out_file}: the measurements file must end in .json")
    stem = out_file.with_suffix("")
    return {"json": out_file, "csv": out_file.with_suffix(".csv"),
            "report": stem.with_name(stem.name + "_report.json"),
            "errors": stem.with_name(stem.name + "_errors.json")}


def records_json(measurements: list[Measurement]) -> str:
    return json.dumps([m.record() for m in measurements], indent=1, allow_nan=False) + "\n"


def records_csv(measurements: list[Measurement]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RECORD_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(m.record() for m in measurements)
    return buffer.getvalue()


def report(result: BiometryResult) -> dict:
    measured_rows = {(m.csv_file, m.row) for m in result.measurements}
    return {
        "rows": result.rows,
        "rows_measured": len(measured_rows),
        "values": len(result.measurements),
        "label_values": len(result.label_measurements),
        "skipped_rows_of_other_tasks": result.skipped_rows,
        "spacing_sources": dict(sorted(result.spacing_sources.items())),
        "problems": [p.to_dict() for p in result.problems],
        "notes": result.notes(),
    }


def write_measurements(result: BiometryResult, out_file: Path) -> dict[str, Path]:
    """Write the four files for ``out_file`` (module docstring); returns them by role."""
    paths = output_paths(out_file)
    atomic_write_text(paths["json"], records_json(result.measurements))
    atomic_write_text(paths["csv"], records_csv(result.measurements))
    atomic_write_text(paths["report"], json.dumps(report(result), indent=1, allow_nan=False) + "\n")
    errors = dict(result.errors, labelled=result.has_labels)
    atomic_write_text(paths["errors"], json.dumps(errors, indent=1, allow_nan=False) + "\n")
    log.info("wrote %s (%d values), %s, %s, %s", paths["json"], len(result.measurements), paths["csv"].name,
             paths["report"].name, paths["errors"].name)
    return paths
