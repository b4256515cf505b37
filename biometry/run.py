"""Measuring a whole run: every CSV row of a measured task, from the run's outputs and from its label.

``measure_run(input_dir, predictions_dir, pixel_spacing=None)`` reads ``input_dir/csv_files/*.csv``
(``contract.csv_layout``), measures each row of ``fetal_head``, ``fetal_abdomen_multi``,
``fetal_femur`` and ``head_symphysis_multi`` (``biometry.measures.TASKS``) on the run's mask or
keypoint record, and, where the input folder holds the row's label (the label mask at ``mask_path``,
the ``point_k_xy`` columns), on the label too. A side that cannot be measured becomes a ``Problem``;
the other rows go on. Other tasks' rows are skipped.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from contract.csv_layout import CsvLayoutError, CsvRecord, list_csv_files, open_csv_file, resolve
from contract.imaging import image_size
from contract.tasks import TaskRegistry

from biometry.labels import error_summary
from biometry.measures import TASKS, Measured, TaskMeasure
from biometry.model import MeasureError, Measurement, Problem, Source
from biometry.sources import PredictionFolder, label_points, read_mask
from biometry.spacing import COLUMN, Spacing, parse_spacing, resolve_spacing

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_ROWS_FAILED = 3


class BiometryInputError(Exception):
    """The run cannot be measured at all (a missing folder, no CSV): exit code 1."""


@dataclass
class BiometryResult:
    """Everything one run gave: the predicted measurements, the label ones, the problems, counts."""

    measurements: list[Measurement] = field(default_factory=list)
    label_measurements: list[Measurement] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0  # rows of measured tasks
    skipped_rows: int = 0  # rows of other tasks
    spacing_sources: Counter = field(default_factory=Counter)

    @property
    def has_labels(self) -> bool:
        return bool(self.label_measurements) or any(p.source == "label" for p in self.problems)

    @property
    def errors(self) -> dict:
        """The MAE summary against the labels (``biometry.labels.error_summary``)."""
        return error_summary(self.measurements, self.label_measurements)

    @property
    def exit_code(self) -> int:
        return EXIT_ROWS_FAILED if self.problems else EXIT_OK

    def notes(self) -> list[dict]:
        seen, out = set(), []
        for m in self.measurements + self.label_measurements:
            key = (m.csv_file, m.row, m.source)
            if m.note and key not in seen:
                seen.add(key)
                out.append({"csv_file": m.csv_file, "row": m.row, "image_path": m.image_path,
                            "task_id": m.task_id, "source": m.source, "note": m.note})
        return out


def _as_spacing(value: Spacing | float | str | None) -> Spacing | None:
    if value is None or isinstance(value, Spacing):
        return value
    if isinstance(value, (int, float)):
        return Spacing(float(value), float(value), "flag")
    return parse_spacing(str(value), "flag")


class _Run:
    def __init__(self, input_dir: Path, predictions: PredictionFolder, flag: Spacing | None, labels: bool,
                 overlays: bool):
        self.input_dir, self.predictions, self.flag, self.labels = input_dir, predictions, flag, labels
        self.overlays = overlays
        self.result = BiometryResult()

    def problem(self, rec: CsvRecord, source: Source, reason: str) -> None:
        p = Problem(rec.csv_name, rec.row, rec.get("image_path") or "", rec.get("task_id") or "", source, reason)
        self.result.problems.append(p)
        log.warning("%s", p.line())

    def measure(self, task: TaskMeasure, rec: CsvRecord, source: Source, spacing: Spacing) -> list[Measurement]:
        cells = rec.cells
        if task.input == "mask":
            mask_path = rec.get("mask_path")
            if mask_path is None:
                raise MeasureError("the CSV row has no mask_path")
            if source == "prediction":
                mask = self.predictions.mask(mask_path)
            else:
                mask = read_mask(resolve(self.input_dir, mask_path))
            measured: Measured = task.function(mask, spacing)
        else:
            count = TaskRegistry.official()[task.task_id].num_points
            if source == "prediction":
                points = self.predictions.points(cells.get("image_path", ""), task.task_id)
            else:
                points = label_points(cells, count) or []
            size = image_size(resolve(self.input_dir, cells.get("image_path", "")))
            measured = task.function(points, spacing, size)
        note = "; ".join(measured.notes)
        return [Measurement(task.task_id, cells.get("image_path", ""), v.measure, float(v.value), v.unit,
                            rec.csv_name, rec.row, source, spacing.source, note, v.overlay if self.overlays else None)
                for v in measured.values]

    def has_label(self, task: TaskMeasure, rec: CsvRecord) -> bool:
        if not self.labels:
            return False
        if task.input == "mask":
            mask_path = rec.get("mask_path")
            return mask_path is not None and resolve(self.input_dir, mask_path).is_file()
        return rec.get("point_1_xy") is not None

    def row(self, task: TaskMeasure, rec: CsvRecord) -> None:
        self.result.rows += 1
        image_path = rec.get("image_path")
        if image_path is None:
            self.problem(rec, "prediction", "the CSV row has no image_path")
            return
        try:
            spacing = resolve_spacing(self.flag, rec.get(COLUMN), resolve(self.input_dir, image_path))
        except ValueError as exc:
            self.problem(rec, "prediction", str(exc))
            return
        self.result.spacing_sources[spacing.source] += 1
        sides: list[Source] = ["prediction"] + (["label"] if self.has_label(task, rec) else [])
        for source in sides:
            try:
                found = self.measure(task, rec, source, spacing)
            except MeasureError as exc:
                self.problem(rec, source, str(exc))
                continue
            (self.result.measurements if source == "prediction" else self.result.label_measurements).extend(found)
            if found and found[0].note:
                log.info("%s row %d (%s), %s: %s", rec.csv_name, rec.row, image_path, source, found[0].note)


def measure_run(input_dir: Path, predictions_dir: Path, pixel_spacing: Spacing | float | str | None = None,
                labels: bool = True, overlays: bool = True) -> BiometryResult:
    """Measure every row of the measured tasks (module docstring); BiometryInputError when nothing can be read.

    ``pixel_spacing``: mm per pixel for every row (a number, ``"x,y"`` text or a ``Spacing``),
    overriding the CSV's ``pixel_spacing`` column and the images' headers. ``labels=False`` skips
    the label side even where the input folder has labels. ``overlays=False`` keeps no drawing
    geometry (an ellipse's polygon is a few kB: the command line, which draws nothing, leaves them out).
    """
    input_dir, predictions_dir = Path(input_dir), Path(predictions_dir)
    if not input_dir.is_dir():
        raise BiometryInputError(f"input folder {input_dir} does not exist")
    if not predictions_dir.is_dir():
        raise BiometryInputError(f"predictions folder {predictions_dir} does not exist")
    try:
        csv_files = list_csv_files(input_dir)
    except CsvLayoutError as exc:
        raise BiometryInputError(str(exc)) from None
    run = _Run(input_dir, PredictionFolder(predictions_dir), _as_spacing(pixel_spacing), labels, overlays)
    for path in csv_files:
        try:
            with open_csv_file(path) as (_columns, records):
                for rec in records:
                    task = TASKS.get((rec.get("task_id") or "").strip())
                    if task is None:
                        run.result.skipped_rows += 1
                        continue
                    run.row(task, rec)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise BiometryInputError(f"{path}: cannot read the CSV ({exc})") from None
    result = run.result
    log.info("%d rows of measured tasks (%d rows of other tasks skipped): %d values, %d label values, %d problems",
             result.rows, result.skipped_rows, len(result.measurements), len(result.label_measurements),
             len(result.problems))
    return result
