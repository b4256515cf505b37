"""Reading a labelled input folder in the challenge layout (INPUT_DIR/csv_files/*.csv, read by ``contract.csv_layout``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from pydantic import BaseModel

from contract.csv_layout import CsvLayoutError, csv_folder, list_csv_files, read_csv_file
from contract.kinds import KIND_SPECS, spec_of
from contract.kinds.detection import BOX_COLUMNS  # noqa: F401  (a detection row's box, in pixels; evaluation.official)
from contract.tasks import TaskKind, TaskRegistry
from evaluation.report import RowIssue

log = logging.getLogger(__name__)




class LabelLayoutError(ValueError):
    """The label folder is not a labelled folder in the challenge layout."""


class LabelRow(BaseModel):
    """One labelled CSV row, with its paths resolved and its label parsed."""

    csv_file: str
    row: int  # 1-based data row (header not counted)
    line: int  # line in the CSV file (the header is line 1)
    image_path: str  # the CSV string, unchanged (the prediction key)
    task_id: str
    kind: TaskKind
    num_classes: int
    image_file: Path
    mask_path: Optional[str] = None
    mask_file: Optional[Path] = None
    label: Optional[int] = None  # classification
    points: Optional[list[float]] = None  # Regression, flat [x1, y1, ...] in pixels
    box: Optional[list[float]] = None  # detection, [x_min, y_min, x_max, y_max] in pixels

    @property
    def key(self) -> tuple[str, str]:
        return (self.image_path, self.task_id)


def _resolve(csv_dir: Path, relative: str) -> Path:
    return Path(os.path.normpath(csv_dir / relative))


def _kind_and_size(rec: dict[str, str], registry: TaskRegistry) -> tuple[TaskKind, int]:
    task_id = rec["task_id"]
    known = registry[task_id] if task_id in registry else None
    kind_text = (rec.get("task_name") or "").strip()
    size_text = (rec.get("num_classes") or "").strip()
    if kind_text:
        kind = TaskKind.parse(kind_text)
    elif known is not None:
        kind = known.kind
    else:
        raise ValueError(f"task {task_id!r} is not an official task and the row has no task_name")
    if size_text:
        size = int(float(size_text))
    elif known is not None:
        size = known.num_classes
    else:
        raise ValueError(f"task {task_id!r} is not an official task and the row has no num_classes")
    return kind, size


def _parse_row(rec: dict[str, str], csv_dir: Path, csv_name: str, where: tuple[int, int],
               registry: TaskRegistry) -> LabelRow:
    kind, size = _kind_and_size(rec, registry)
    fields: dict = dict(
        csv_file=csv_name,
        row=where[0],
        line=where[1],
        image_path=rec["image_path"],
        task_id=rec["task_id"],
        kind=kind,
        num_classes=size,
        image_file=_resolve(csv_dir, rec["image_path"]),
    )
    fields.update(spec_of(kind).read_label(rec, size))
    if "mask_path" in fields:
        fields["mask_file"] = _resolve(csv_dir, fields["mask_path"])
    return LabelRow(**fields)


_LABEL_COLUMNS = {kind: spec.label_columns for kind, spec in KIND_SPECS.items()}


def _check_columns(csv_file: Path, columns: list[str], records: list[dict[str, str]], registry: TaskRegistry) -> None:
    for needed in ("image_path", "task_id"):
        if needed not in columns:
            raise LabelLayoutError(f"{csv_file}: no {needed!r} column (columns: {columns})")
    kinds = set()
    for rec in records:
        try:
            kinds.add(_kind_and_size(rec, registry)[0])
        except ValueError:
            continue  # reported per row later
    for kind in kinds:
        absent = [c for c in _LABEL_COLUMNS[kind] if c not in columns]
        if absent:
            raise LabelLayoutError(
                f"{csv_file}: has {kind.value} rows but no label column(s) {absent}; "
                "the evaluator needs a labelled folder (a test-phase CSV without labels cannot be scored)"
            )


def read_labels(labels_dir: Path, registry: Optional[TaskRegistry] = None) -> tuple[list[LabelRow], list[RowIssue]]:
    """All labelled rows of INPUT_DIR/csv_files/*.csv, and the rows that could not be used.

    Raises LabelLayoutError when the folder is not in the challenge layout.
    """
    registry = registry or TaskRegistry.official()
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise LabelLayoutError(f"label folder {labels_dir} does not exist")
    try:
        csv_files = list_csv_files(labels_dir)
    except CsvLayoutError as exc:
        raise LabelLayoutError(str(exc)) from exc
    csv_dir = csv_folder(labels_dir)
    rows: list[LabelRow] = []
    issues: list[RowIssue] = []
    for csv_file in csv_files:
        table = read_csv_file(csv_file)
        records = [record.cells for record in table.records]
        _check_columns(csv_file, table.columns, records, registry)
        for record in table.records:
            rec = record.cells
            try:
                rows.append(_parse_row(rec, csv_dir, csv_file.name, (record.row, record.line), registry))
            except ValueError as exc:
                issues.append(
                    RowIssue(
                        csv_file=csv_file.name,
                        row=record.row,
                        line=record.line,
                        image_path=rec.get("image_path") or "",
                        task_id=rec.get("task_id") or "",
                        scope="label",
                        reason=str(exc),
                    )
                )
        log.info("%s: %d rows", csv_file.name, len(records))
    if not rows:
        raise LabelLayoutError(f"no usable labelled rows in {csv_dir} ({len(issues)} rows rejected)")
    return rows, issues
