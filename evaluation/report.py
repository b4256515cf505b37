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

    ``row`` is the 1-based data row of the CSV (the header is not counted).
    ``scope`` is ``prediction`` (the row is scored as the worst case) or ``label``
    (the row cannot be scored and is left out).
    """

    csv_file: str
    row: int
    image_path: str
    task_id: str
    scope: str = "prediction"
    reason: str

    def line(self) -> str:
        return f"{self.csv_file} row {self.row} ({self.task_id}, {self.image_path}): {self.scope}: {self.reason}"


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


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_table(report: Report, max_issues: int = 20) -> str:
    """Plain-text table: one line per task, one per kind, then the issues (first ``max_issues``)."""
    lines = [f"metrics: {report.metrics_mode} ({METRICS_MODES.get(report.metrics_mode, '')})"]
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
        f"{report.rows} rows scored, {report.missing_predictions} missing/malformed predictions "
        f"({'skipped' if report.metrics_mode == 'official' else 'scored as worst case'}), "
        f"{report.label_problems} label rows skipped, "
        f"{report.unmatched_records} prediction records matching no row"
    )
    for note in report.notes:
        lines.append(f"note: {note}")
    for issue in report.issues[:max_issues]:
        lines.append(f"  {issue.line()}")
    if len(report.issues) > max_issues:
        lines.append(f"  ... {len(report.issues) - max_issues} more issues (see the JSON report)")
    return "\n".join(lines)
