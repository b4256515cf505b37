"""The error of the run's measures against the same measures taken from the labels (seed 002's MAE).

A prediction and a label measurement pair up when they share the CSV file, the row and the
measure (the unit is the same: both sides use the row's spacing). Per measure and unit: the
pairs' mean absolute error, its median and maximum, the mean signed error (predicted - label:
a bias), the mean label value (for scale), how many label values had no predicted value (the predicted mask was unusable) and how
many predicted values had no label value.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np

from biometry.model import MEASURES, Measurement

log = logging.getLogger(__name__)

Key = tuple[str, int, str]  # csv file, row, measure


def _index(items: list[Measurement]) -> dict[Key, Measurement]:
    return {(m.csv_file, m.row, m.measure): m for m in items}


def error_summary(predicted: list[Measurement], labels: list[Measurement]) -> dict:
    """``{"measures": [per measure and unit], "rows": [per pair]}``; empty lists when there are no labels."""
    pred, truth = _index(predicted), _index(labels)
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)  # signed errors, predicted - label
    paired_labels: dict[tuple[str, str], list[float]] = defaultdict(list)
    label_only: dict[tuple[str, str], int] = defaultdict(int)
    prediction_only: dict[tuple[str, str], int] = defaultdict(int)
    rows = []
    for key, label in truth.items():
        group = (label.measure, label.unit)
        guess = pred.get(key)
        if guess is None:
            label_only[group] += 1
            continue
        error = guess.value - label.value
        groups[group].append(error)
        paired_labels[group].append(label.value)
        rows.append({"csv_file": label.csv_file, "row": label.row, "image_path": label.image_path,
                     "task_id": label.task_id, "measure": label.measure, "unit": label.unit,
                     "predicted": round(guess.value, 4), "label": round(label.value, 4),
                     "error": round(error, 4)})
    for key, guess in pred.items():
        if truth and key not in truth:
            prediction_only[(guess.measure, guess.unit)] += 1
    order = {m: i for i, m in enumerate(MEASURES)}
    measures = []
    for group in sorted(set(groups) | set(label_only) | set(prediction_only), key=lambda g: (order[g[0]], g[1])):
        signed = np.asarray(groups.get(group, []), dtype=np.float64)
        errors = np.abs(signed)
        measures.append({
            "measure": group[0], "unit": group[1], "n": int(errors.size),
            "mae": round(float(errors.mean()), 4) if errors.size else None,
            "mean_error": round(float(signed.mean()), 4) if errors.size else None,
            "median_abs_error": round(float(np.median(errors)), 4) if errors.size else None,
            "max_abs_error": round(float(errors.max()), 4) if errors.size else None,
            "mean_label": round(float(np.mean(paired_labels[group])), 4) if errors.size else None,
            "label_only": label_only.get(group, 0),
            "prediction_only": prediction_only.get(group, 0),
        })
    return {"measures": measures, "rows": rows}


def format_errors(summary: dict) -> str:
    """The summary's per-measure lines, for the log."""
    lines = []
    for m in summary["measures"]:
        missing = f", {m['label_only']} rows with a label value but no predicted one" if m["label_only"] else ""
        if m["n"]:
            lines.append(f"{m['measure']}: MAE {m['mae']:.3f} {m['unit']} over {m['n']} rows "
                         f"(median {m['median_abs_error']:.3f}, max {m['max_abs_error']:.3f}, "
                         f"mean signed {m['mean_error']:+.3f}){missing}")
        else:
            lines.append(f"{m['measure']}: no pair ({m['label_only']} rows with a label value but no predicted one)")
    return "\n".join(lines)
