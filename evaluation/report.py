"""The evaluator's result: pydantic models (written as JSON) and the plain-text table."""

from __future__ import annotations

import math
from typing import Optional

from pydantic import BaseModel, Field

# Metric names per kind, in table order; ``hd`` and ``mre*`` are lower-is-better.
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "segmentation": ("dice", "hd"),
    "classification": ("auc", "f1", "mcc", "accuracy"),
    "detection": ("iou",),
    "Regression": ("mre", "mre_pct_diag"),
}


class RowIssue(BaseModel):
    """A missing or malformed prediction (or an unusable label) for one CSV row.

    ``line`` is the row's line in the CSV file (the header is line 1), as the runtime
    and the review name rows; ``row`` is its 1-based data row (the header not counted).
    ``scope`` is ``prediction`` (no usable prediction: skipped by the official rules,
    the worst case by the strict ones) or ``label`` (the row cannot be scored and is left out).
    """

    csv_file: str
    line: int
    row: int
    image_path: str
    task_id: str
    scope: str = "prediction"
    reason: str

    def describe(self) -> str:
        return f"{self.csv_file} line {self.line} (image {self.image_path!r}, task {self.task_id!r}): {self.scope}: {self.reason}"


class TaskScore(BaseModel):
    """Scores of one task. Metric values are None where undefined (e.g. AUC with one class)."""

    task_id: str
    kind: str
    num_classes: int
    rows: int = Field(description="label rows scored (rows with a usable label)")
    missing: int = Field(description="rows whose prediction was missing or malformed (scored as worst case)")
    metrics: dict[str, Optional[float]]
    per_class: dict[str, dict[str, Optional[float]]] = Field(
        default_factory=dict, description="segmentation: class index -> {dice, hd} averaged over images"
    )
    notes: list[str] = Field(default_factory=list)


class KindScore(BaseModel):
    """Mean over the tasks of one kind of each metric (tasks where it is undefined are skipped)."""

    kind: str
    tasks: int
    rows: int
    missing: int
    metrics: dict[str, Optional[float]]


METRICS_MODES = {
    "official": "the challenge's evaluate.py rules: missing predictions skipped, AUC 0 when undefined, MRE in px",
    "strict": "missing predictions scored as worst case, AUC over the classes present, MRE also in % of diagonal",
}


class Report(BaseModel):
    metrics_mode: str = Field("strict", description="official or strict (see METRICS_MODES)")
    labels_dir: str
    predictions_dir: str
    tasks: list[TaskScore]
    kinds: list[KindScore]
    issues: list[RowIssue] = Field(default_factory=list)
    rows: int = 0
    missing_predictions: int = 0
    label_problems: int = 0
    unmatched_records: int = Field(0, description="prediction records that match no label row")
    notes: list[str] = Field(default_factory=list)

    def task(self, task_id: str) -> TaskScore:
        for score in self.tasks:
            if score.task_id == task_id:
                return score
        raise KeyError(f"no scores for task {task_id!r}; scored: {[t.task_id for t in self.tasks]}")

    def issues_of(self, scope: str) -> list[RowIssue]:
        return [i for i in self.issues if i.scope == scope]

    def kind(self, kind: str) -> KindScore:
        for score in self.kinds:
            if score.kind == kind:
                return score
        raise KeyError(f"no scores for kind {kind!r}; scored: {[k.kind for k in self.kinds]}")


def finite_or_none(value: float) -> Optional[float]:
    """NaN/inf become None so that the JSON stays standard."""
    return float(value) if value is not None and math.isfinite(value) else None


def summarize_kinds(tasks: list[TaskScore]) -> list[KindScore]:
    """Mean over tasks of each kind, in the SPEC's kind order."""
    out = []
    for kind, names in KIND_METRICS.items():
        of_kind = [t for t in tasks if t.kind == kind]
        if not of_kind:
            continue
        metrics: dict[str, Optional[float]] = {}
        for name in names:
            values = [t.metrics.get(name) for t in of_kind]
            values = [v for v in values if v is not None]
            metrics[name] = sum(values) / len(values) if values else None
        out.append(
            KindScore(
                kind=kind,
                tasks=len(of_kind),
                rows=sum(t.rows for t in of_kind),
                missing=sum(t.missing for t in of_kind),
                metrics=metrics,
            )
        )
    return out


def plural(count: int, noun: str) -> str:
    """``1 row``, ``2 rows``, ``1 class``, ``3 classes``."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}es" if noun.endswith(("s", "x", "ch", "sh")) else f"{count} {noun}s"


SHOWN_TASKS = 8


def headline(report: Report) -> list[str]:
    """The first lines of the output: how many rows had no usable prediction, by task, and what that does."""
    total = report.rows + (report.missing_predictions if report.metrics_mode == "official" else 0)
    lines = []
    if report.missing_predictions:
        by_task = {t.task_id: t.missing for t in report.tasks if t.missing}
        shown = ", ".join(f"{task} {n}" for task, n in list(by_task.items())[:SHOWN_TASKS])
        more = f" and {plural(len(by_task) - SHOWN_TASKS, 'more task')}" if len(by_task) > SHOWN_TASKS else ""
        effect = (f"the official rules skip them, so the scores below cover {plural(report.rows, 'row')} only"
                  if report.metrics_mode == "official" else "each is scored as the worst case")
        lines.append(f"MISSING: {report.missing_predictions} of {plural(total, 'row')} have no usable prediction "
                     f"(missing or malformed): {shown}{more}")
        lines.append(f"  {effect}; first: {report.issues_of('prediction')[0].describe()}")
    else:
        lines.append(f"{plural(report.rows, 'row')} scored, every one with a prediction")
    if report.label_problems:
        lines.append(f"LABELS: {plural(report.label_problems, 'row')} with an unusable label left out; "
                     f"first: {report.issues_of('label')[0].describe()}")
    if report.unmatched_records:
        lines.append(f"UNMATCHED: {plural(report.unmatched_records, 'prediction record')} match no CSV row "
                     "(another input folder, or rewritten image_path values?)")
    return lines


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_table(report: Report, max_issues: int = 20) -> str:
    """Plain-text table: one line per task, one per kind, then the issues (first ``max_issues``)."""
    lines = headline(report)
    lines.append(f"metrics: {report.metrics_mode} ({METRICS_MODES.get(report.metrics_mode, '')})")
    lines.append(f"{'task':<26} {'kind':<15} {'rows':>5} {'missing':>7}  metrics")
    for t in report.tasks:
        metrics = "  ".join(f"{k}={_fmt(v)}" for k, v in t.metrics.items())
        lines.append(f"{t.task_id:<26} {t.kind:<15} {t.rows:>5} {t.missing:>7}  {metrics}")
    lines.append("")
    lines.append(f"{'kind (mean over tasks)':<26} {'tasks':<15} {'rows':>5} {'missing':>7}  metrics")
    for k in report.kinds:
        metrics = "  ".join(f"{n}={_fmt(v)}" for n, v in k.metrics.items())
        lines.append(f"{k.kind:<26} {k.tasks:<15} {k.rows:>5} {k.missing:>7}  {metrics}")
    lines.append("")
    lines.append(
        f"{plural(report.rows, 'row')} scored, {report.missing_predictions} missing/malformed "
        f"{'prediction' if report.missing_predictions == 1 else 'predictions'} "
        f"({'skipped' if report.metrics_mode == 'official' else 'scored as worst case'}), "
        f"{plural(report.label_problems, 'label row')} left out, "
        f"{plural(report.unmatched_records, 'prediction record')} matching no row"
    )
    for note in report.notes:
        lines.append(f"note: {note}")
    for issue in report.issues[:max_issues]:
        lines.append(f"  {issue.describe()}")
    if len(report.issues) > max_issues:
        lines.append(f"  ... {len(report.issues) - max_issues} more issues (see the JSON report)")
    return "\n".join(lines)
