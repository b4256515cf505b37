"""The challenge's batch layout: ``INPUT/csv_files/*.csv`` read into rows, checked against the model.

Paths in a CSV are relative to the ``csv_files/`` folder, as the challenge resolves
them. ``task_name`` and ``num_classes`` may be missing (the manifest supplies
them); when present they must agree with the manifest, else the row fails.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from contract.csv_layout import CsvLayoutError, CsvRecord, list_csv_files, open_csv_file, resolve
from inference.errors import FatalError, OutputPathError
from contract.kinds import spec_of
from contract.manifest import Manifest, TaskEntry
from contract.tasks import OFFICIAL_TASKS, TaskKind, UnknownTaskError
from inference.outputs.writers import OutputGuard

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image_path", "task_id")
OFFICIAL = {task.task_id: task for task in OFFICIAL_TASKS}


@dataclass(frozen=True)
class Row:
    """One CSV data row as written (strings unchanged), with its image resolved."""

    index: int  # position over all CSVs (sorted by name), the order of the outputs
    csv_name: str
    line: int  # line number in the CSV file (the header is line 1)
    image_path: str
    task_id: str
    task_name: str | None
    num_classes: str | None
    mask_path: str | None
    image_file: Path

    @property
    def where(self) -> str:
        return f"{self.csv_name} line {self.line} (image {self.image_path!r}, task {self.task_id!r})"


@dataclass(frozen=True)
class Job:
    """A row the model can predict: its task entry and, for segmentation, where its mask goes."""

    row: Row
    task: TaskEntry
    mask_target: Path | None = None
    stamp: tuple[int, int] | None = None  # the image's size and modification time (``batch_jobs.image_stamp``)

    @property
    def image_file(self) -> Path:
        return self.row.image_file


@dataclass(frozen=True)
class RowFailure:
    """A row that cannot be predicted, and what its fallback prediction needs (kind None: none possible)."""

    row: Row
    reason: str
    kind: TaskKind | None = None
    num_classes: int | None = None
    mask_target: Path | None = None
    unserved: bool = False  # an official task the model does not serve (a subset model): not a fault of the row


class InputRows:
    """The rows of ``input_dir/csv_files/*.csv``, streamed: read again on each iteration, never all held.

    ``scan`` reads every file once to count its rows and to find the files that cannot be used
    (unreadable, not UTF-8, malformed, without the required columns: each skipped whole, with one line
    in ``problems``); iterating then yields the rows of the usable files, ``index`` counting over all
    of them in file-name order. Memory stays the same whatever the number of rows.
    """

    def __init__(self, input_dir: Path, files: list[Path], problems: list[str], count: int):
        self.input_dir, self.files, self.problems, self.count = Path(input_dir), files, problems, count

    @classmethod
    def scan(cls, input_dir: Path) -> "InputRows":
        try:
            paths = list_csv_files(input_dir)
        except CsvLayoutError as exc:
            raise FatalError(str(exc)) from exc
        files: list[Path] = []
        problems: list[str] = []
        count = 0
        for path in paths:
            try:
                with open_csv_file(path) as (columns, records):
                    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
                    rows = 0 if missing else sum(1 for _ in records)
            except (OSError, UnicodeDecodeError, csv.Error) as exc:
                problems.append(f"{path.name}: cannot be read as CSV ({exc}); file skipped")
                continue
            if missing:
                problems.append(f"{path.name}: no column(s) {missing} (columns: {columns}); file skipped")
                continue
            files.append(path)
            count += rows
        return cls(input_dir, files, problems, count)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Row]:
        index = 0
        for path in self.files:
            try:
                with open_csv_file(path) as (_columns, records):
                    for record in records:
                        yield _make_row(self.input_dir, index, record)
                        index += 1
            except (OSError, UnicodeDecodeError, csv.Error) as exc:  # read fine by scan: changed since
                raise FatalError(f"{path.name} changed while the run read it ({exc}); run again") from exc
            log.debug("%s read", path.name)
        if index != self.count:
            raise FatalError(f"the CSV files changed while the run read them ({index} rows, {self.count} "
                             "before); run again")


def _make_row(input_dir: Path, index: int, record: CsvRecord) -> Row:
    image_path = record.cells.get("image_path") or ""
    return Row(
        index=index, csv_name=record.csv_name, line=record.line,
        image_path=image_path, task_id=(record.cells.get("task_id") or "").strip(),
        task_name=record.get("task_name"), num_classes=record.get("num_classes"),
        mask_path=record.get("mask_path"), image_file=resolve(input_dir, image_path),
    )


def read_rows(input_dir: Path) -> tuple[list[Row], list[str]]:
    """All data rows of ``input_dir/csv_files/*.csv`` in a list; also the problems of whole CSV files.

    For inputs of any size, iterate ``InputRows.scan(input_dir)`` instead (the rows streamed)."""
    rows = InputRows.scan(input_dir)
    return list(rows), rows.problems


def _parse_count(text: str) -> int:
    value = float(text.strip())
    if not value.is_integer() or value < 1:
        raise ValueError
    return int(value)


def check_row(row: Row, manifest: Manifest, guard: OutputGuard) -> Job | RowFailure:
    """Validate a row against the model; a RowFailure carries what its fallback needs."""
    if not row.image_path.strip():
        return RowFailure(row, "empty image_path")
    if not row.task_id:
        return RowFailure(row, "empty task_id")
    csv_kind: TaskKind | None = None
    csv_count: int | None = None
    if row.task_name is not None:
        try:
            csv_kind = TaskKind.parse(row.task_name)
        except ValueError as exc:
            return RowFailure(row, f"task_name: {exc}")
    if row.num_classes is not None:
        try:
            csv_count = _parse_count(row.num_classes)
        except ValueError:
            return RowFailure(row, f"num_classes {row.num_classes!r} is not a positive integer", csv_kind)

    def fallback_target(kind: TaskKind | None) -> tuple[Path | None, str]:
        if kind is None or not spec_of(kind).writes_mask:
            return None, ""
        if row.mask_path is None:
            return None, f"; a {kind.value} row needs a mask_path"
        try:
            return guard.mask_target(row.mask_path), ""
        except OutputPathError as exc:
            return None, f"; {exc}"

    try:
        task = manifest.task(row.task_id)
    except UnknownTaskError as exc:
        official = OFFICIAL.get(row.task_id)
        if official is not None and (csv_kind or official.kind) is official.kind:
            target, extra = fallback_target(official.kind)
            return RowFailure(row, f"task {row.task_id} is an official task this model does not serve{extra}",
                              official.kind, csv_count or official.num_classes, target, unserved=not extra)
        target, extra = fallback_target(csv_kind)
        return RowFailure(row, f"{exc}{extra}", csv_kind, csv_count, target)
    kind = csv_kind or task.kind
    count = csv_count or task.num_classes
    if kind is not task.kind or count != task.num_classes:
        target, extra = fallback_target(kind)
        return RowFailure(
            row,
            f"the CSV says {kind.value} with num_classes {count}, the model's task {task.task_id} is "
            f"{task.kind.value} with {task.num_classes}{extra}",
            kind, count, target,
        )
    if spec_of(task.kind).writes_mask:
        target, extra = fallback_target(task.kind)
        if target is None:  # no fallback either: Results.fail says it has no usable mask_path
            return RowFailure(row, extra.lstrip("; "), task.kind, task.num_classes)
        return Job(row, task, target)
    return Job(row, task)
