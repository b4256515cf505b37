"""Challenge metrics of FMC_UIA 2026 and the evaluator ``python -m evaluation``.

Public API::

    from evaluation import evaluate, Report
    report = evaluate_official("test/input", "test/output")   # the challenge's evaluate.py rules
    report = evaluate("test/input", "test/output", tasks=None)  # strict variants
    report.task("fetal_head").metrics["dice"]; report.kind("detection").metrics["iou"]

Pure metric functions: ``dice``, ``hausdorff``, ``iou``, ``mre``, ``radial_errors``,
``classification_metrics``, ``multiclass_auc`` (see ``evaluation.metrics``).
"""

from evaluation.labels import LabelLayoutError, LabelRow, read_labels
from evaluation.metrics import (
    ClassificationScores,
    classification_metrics,
    dice,
    hausdorff,
    image_diagonal,
    iou,
    mre,
    multiclass_auc,
    radial_errors,
)
from evaluation.official import evaluate_official
from evaluation.report import KindScore, Report, RowIssue, TaskScore, format_table
from evaluation.scoring import TaskSelectionError, evaluate

__all__ = [
    "ClassificationScores",
    "KindScore",
    "LabelLayoutError",
    "LabelRow",
    "Report",
    "RowIssue",
    "TaskScore",
    "TaskSelectionError",
    "classification_metrics",
    "dice",
    "evaluate",
    "evaluate_official",
    "format_table",
    "hausdorff",
    "image_diagonal",
    "iou",
    "mre",
    "multiclass_auc",
    "radial_errors",
    "read_labels",
]
