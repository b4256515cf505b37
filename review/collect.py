"""What the review shows: every CSV row with its prediction, its label (when the input has
labels) and its own score, grouped by task; plus the run's failures.

Rows come from the runtime's CSV reader (``inference.layouts.batch_rows.read_rows``), labels from the
evaluator's reader (``evaluation.labels.read_labels``), per-image scores from the official
metric definitions (``evaluation.official_metrics``).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from evaluation import official_metrics as OM
from evaluation.labels import LabelLayoutError, LabelRow, read_labels
from evaluation.predictions import JSON_FILES, output_mask_path
from inference.layouts.batch_rows import Row, read_rows
from contract.kinds import spec_of
from contract.tasks import TaskKind, TaskRegistry

log = logging.getLogger(__name__)

#: Per kind: the name of the per-image score and whether higher is better.
SCORE_NAMES = {
    TaskKind.SEGMENTATION: ("Dice", True),
    TaskKind.CLASSIFICATION: ("p(true class)", True),
    TaskKind.DETECTION: ("IoU", True),
    TaskKind.REGRESSION: ("MRE px", False),
}
_FAILED_LINE = re.compile(r"row failed: (?P<csv>\S+) line (?P<line>\d+) \(image (?P<image>.*?), task (?P<task>.*?)\): (?P<reason>.*)$")


@dataclass
class Item:
    """One CSV row: its prediction (mask array or JSON record), label and score."""

    row: Row
    kind: TaskKind
    num_classes: int
    prediction: Any = None  # the JSON record (segmentation: None, the mask is read again to draw)
    mask_file: Optional[Path] = None  # segmentation: the predicted mask PNG
    label: Optional[LabelRow] = None
    score: Optional[float] = None
    detail: str = ""
    problem: Optional[str] = None  # why there is no prediction / no score
    label_problem: Optional[str] = None  # why a labelled folder has no usable label for this row (left out of scores)
    measurements: list = field(default_factory=list)  # biometry.Measurement of this row's prediction, to draw

    @property
    def flag(self) -> Optional[str]:
        """``missing`` (no usable prediction), ``skipped`` (label unusable: not scored), or None."""
        if self.problem:
            return "missing"
        return "skipped" if self.label_problem else None


@dataclass
class TaskView:
    task_id: str
    kind: TaskKind
    num_classes: int
    items: list[Item] = field(default_factory=list)

    @property
    def score_name(self) -> str:
        return SCORE_NAMES[self.kind][0]

    def ordered(self) -> list[Item]:
        """Missing and skipped rows first (CSV order), then the scored ones worst first, then the rest."""
        higher_better = SCORE_NAMES[self.kind][1]
        flagged = [i for i in self.items if i.flag]
        scored = [i for i in self.items if i.score is not None and not i.flag]
        scored.sort(key=lambda i: i.score if higher_better else -i.score)
        return flagged + scored + [i for i in self.items if i.score is None and not i.flag]

    @property
    def flagged(self) -> int:
        return sum(1 for i in self.items if i.flag)

    def scores(self) -> list[float]:
        return [i.score for i in self.items if i.score is not None]


@dataclass
class Failure:
    where: str
    reason: str
    source: str  # "runtime log" or "missing output"


@dataclass
class Review:
    input_dir: Path
    output_dir: Path
    tasks: list[TaskView]
    failures: list[Failure]
    labelled: bool
    notes: list[str] = field(default_factory=list)


def _records(output_dir: Path) -> dict[TaskKind, dict[tuple[str, str], dict]]:
    out: dict[TaskKind, dict[tuple[str, str], dict]] = {}
    for kind, name in JSON_FILES.items():
        path = output_dir / name
        records: dict[tuple[str, str], dict] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                log.warning("%s is not valid JSON (%s); its predictions are treated as missing", path, exc)
                data = []
            for rec in data if isinstance(data, list) else []:
                if isinstance(rec, dict):
                    records[(str(rec.get("image_path")), str(rec.get("task_id")))] = rec
        out[kind] = records
    return out


def _kind_and_size(row: Row, registry: TaskRegistry) -> Optional[tuple[TaskKind, int]]:
    try:
        kind = TaskKind.parse(row.task_name) if row.task_name else registry[row.task_id].kind
        size = int(float(row.num_classes)) if row.num_classes else registry[row.task_id].num_classes
    except (KeyError, ValueError):
        return None
    return kind, size


def _read_grey(path: Optional[Path]) -> Optional[np.ndarray]:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path is not None and path.is_file() else None


def _score_mask(item: Item, pred: Any, label: LabelRow) -> None:
    truth = _read_grey(label.mask_file)
    if truth is None:
        item.detail = "ground-truth mask unreadable"
        return
    if pred.shape != truth.shape:
        pred = cv2.resize(pred, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_NEAREST)
    item.score = OM.foreground_mean(OM.dice_per_class(pred, truth, item.num_classes))
    hd = OM.foreground_mean(OM.hausdorff_per_class(pred, truth, item.num_classes))
    item.detail = f"HD {hd:.1f} px"


def _score_class(item: Item, pred: Any, label: LabelRow) -> None:
    probs = pred.get("predicted_probs") or []
    item.score = float(probs[label.label]) if label.label < len(probs) else float(pred.get("predicted_class") == label.label)
    item.detail = f"truth {label.label}"


def _score_box(item: Item, pred: Any, label: LabelRow) -> None:
    item.score = OM.box_iou(pred["bbox_pixels"], label.box)


def _score_points(item: Item, pred: Any, label: LabelRow) -> None:
    try:
        item.score = OM.radial_error(pred["predicted_points_pixels"], label.points)
    except ValueError as exc:
        item.problem = str(exc)


#: Per kind: the per-image score (official definitions) of a prediction against its label.
SCORERS = {
    TaskKind.SEGMENTATION: _score_mask,
    TaskKind.CLASSIFICATION: _score_class,
    TaskKind.DETECTION: _score_box,
    TaskKind.REGRESSION: _score_points,
}


def _score(item: Item, pred: Any) -> None:
    """Fill the item's per-image score when prediction and label exist."""
    if pred is not None and item.label is not None:
        SCORERS[item.kind](item, pred, item.label)


def _failures_from_log(log_file: Path) -> list[Failure]:
    out = []
    for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _FAILED_LINE.search(line)
        if match:
            out.append(Failure(f"{match['csv']} line {match['line']} (image {match['image']}, task {match['task']})",
                               match["reason"], "runtime log"))
    return out


def collect(input_dir: Path, output_dir: Path, log_file: Optional[Path] = None,
            registry: Optional[TaskRegistry] = None) -> Review:
    """Read the input rows, the run's outputs and (when present) the labels."""
    registry = registry or TaskRegistry.official()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    rows, problems = read_rows(input_dir)
    notes = list(problems)
    try:
        label_rows, label_issues = read_labels(input_dir, registry)
        labels = {r.key: r for r in label_rows}
        unusable = {(i.csv_file, i.line): i.reason for i in label_issues}
    except LabelLayoutError as exc:
        labels, unusable = {}, {}
        notes.append(f"no labels shown: {exc}")
    records = _records(output_dir)
    tasks: dict[str, TaskView] = {}
    failures: list[Failure] = []
    for row in rows:
        spec = _kind_and_size(row, registry)
        if spec is None:
            failures.append(Failure(row.where, "unknown task kind or size", "missing output"))
            continue
        kind, size = spec
        view = tasks.setdefault(row.task_id, TaskView(row.task_id, kind, size))
        item = Item(row=row, kind=kind, num_classes=size, label=labels.get((row.image_path, row.task_id)))
        if spec_of(kind).writes_mask:
            relative = output_mask_path(row.mask_path or "")
            item.mask_file = output_dir / relative if relative else None
            pred = _read_grey(item.mask_file)
            if pred is None:
                item.problem = f"mask {relative or '(no mask_path)'} missing or unreadable"
        else:
            item.prediction = pred = records[kind].get((row.image_path, row.task_id))
            if pred is None:
                item.problem = f"no record in {JSON_FILES[kind]}"
        if item.problem:
            failures.append(Failure(row.where, item.problem, "missing output"))
        elif (row.csv_name, row.line) in unusable:
            item.label_problem = f"label unusable: {unusable[(row.csv_name, row.line)]}"
            failures.append(Failure(row.where, item.label_problem, "skipped (not scored)"))
        _score(item, pred)
        if item.detail == "ground-truth mask unreadable" and not item.flag:
            item.label_problem = item.detail
            failures.append(Failure(row.where, item.detail, "skipped (not scored)"))
        view.items.append(item)
    if log_file is not None:
        failures = _failures_from_log(Path(log_file)) + failures
    else:
        notes.append("failures are derived from missing outputs (the runtime writes no failure list; pass "
                     "--log with the run's saved stderr to list its logged failures and reasons, including rows "
                     "that got a fallback prediction)")
    order = [t for t in registry.ids if t in tasks] + sorted(t for t in tasks if t not in registry)
    return Review(input_dir, output_dir, [tasks[t] for t in order], failures, bool(labels), notes)
