"""The top of the review page: the rows that are missing or skipped (first), then a summary per kind.

Tasks are ordered within each kind (kinds in the SPEC's order): tasks with missing or skipped
rows first, then by the kind's headline metric (``contract.kinds``: Dice, AUC, IoU, MRE),
worst first; a task whose headline is undefined (the official AUC 0 with its reason) comes
after the measured ones. Scores in [0, 1] are coloured from red (0) to green (1), so a Dice
of 0.49 never looks like one of 0.98; pixel distances (HD, MRE) are lower-is-better and left
uncoloured (no fixed scale), the order says which is worst.
"""

from __future__ import annotations

import html
from typing import Optional

from contract.kinds import KIND_SPECS
from contract.tasks import TaskKind
from evaluation.report import METRICS_MODES, Report, TaskScore, plural
from review.collect import Review, SCORE_NAMES, TaskView

LOWER_IS_BETTER = frozenset({"hd", "mre", "mre_pct_diag"})
SIGNED = frozenset({"mcc"})  # in [-1, 1]; coloured on max(0, value)
KIND_ORDER = list(KIND_SPECS)


def colour(value: Optional[float], metric: str) -> Optional[str]:
    """CSS background for a score: red (0) -> amber -> green (1); None for unbounded or missing values."""
    if value is None or metric in LOWER_IS_BETTER:
        return None
    unit = max(0.0, min(1.0, value))
    return f"hsl({round(120 * unit)}, 70%, 80%)"


def headline(kind: TaskKind) -> str:
    return KIND_SPECS[kind].metrics[0]


def undefined_reason(score: Optional[TaskScore], metric: str) -> Optional[str]:
    """The official evaluator's reason when a metric is 0 for want of a definition (AUC), else None."""
    if score is None or metric != "auc" or score.metrics.get("auc") not in (0.0, None):
        return None
    note = next((n for n in score.notes if "AUC" in n), None)
    return note.split(": official AUC")[0] if note else None


def _sort_key(view: TaskView, score: Optional[TaskScore]) -> tuple:
    metric = headline(view.kind)
    value = score.metrics.get(metric) if score and score.rows else None
    if value is None and view.scores():  # no official score (unlabelled or no report): the per-image mean
        value = sum(view.scores()) / len(view.scores())
        metric = "dice" if SCORE_NAMES[view.kind][1] else "mre"
    undefined = value is None or undefined_reason(score, metric) is not None
    badness = 0.0 if value is None else (-value if metric in LOWER_IS_BETTER else value)
    return (0 if view.flagged else 1, 1 if undefined else 0, badness)


def ordered_tasks(review: Review, report: Optional[Report]) -> list[TaskView]:
    """Kinds in SPEC order; within a kind, flagged tasks first, then worst headline score first."""
    scores = {t.task_id: t for t in report.tasks} if report else {}
    out: list[TaskView] = []
    for kind in KIND_ORDER:
        views = [v for v in review.tasks if v.kind is kind]
        out += sorted(views, key=lambda v: _sort_key(v, scores.get(v.task_id)))
    return out + [v for v in review.tasks if v.kind not in KIND_ORDER]


def flagged_rows(review: Review) -> str:
    """The missing and skipped rows (and the runtime's logged failures): the page's first table."""
    e = html.escape
    if not review.failures:
        return '<section id="flagged"><h2>Missing and skipped rows</h2><p class="meta">none: every row has a prediction</p></section>'
    rows = "".join(f'<tr class="flag"><td>{e(f.where)}</td><td>{e(f.reason)}</td><td>{e(f.source)}</td></tr>'
                   for f in review.failures)
    return (f'<section id="flagged" class="alert"><h2>Missing and skipped rows ({len(review.failures)})</h2>'
            '<p class="meta">the official evaluator skips a row without a prediction: its task is scored on the '
            f'other rows only</p><table><tr><th>row</th><th>reason</th><th>from</th></tr>{rows}</table></section>')


def _cell(value: Optional[float], metric: str, reason: Optional[str] = None) -> str:
    if value is None:
        return '<td class="num">n/a</td>'
    if reason:
        return (f'<td class="num undefined" data-metric="{metric}">{value:.4f} '
                f'<span class="why">undefined: {html.escape(reason)}</span></td>')
    background = colour(value, metric)
    style = f' style="background:{background}"' if background else ""
    return f'<td class="num" data-metric="{metric}"{style}>{value:.4f}</td>'


def _mean_cell(value: Optional[float], metric: str, scores: list[Optional[TaskScore]]) -> str:
    undefined = sum(1 for s in scores if s is not None and s.rows and undefined_reason(s, metric))
    if not undefined or value is None:
        return _cell(value, metric)
    return _cell(value, metric)[:-5] + f' <span class="why">includes {undefined} undefined (0)</span></td>'


def _kind_table(kind: TaskKind, views: list[TaskView], report: Optional[Report]) -> str:
    e = html.escape
    scores = {t.task_id: t for t in report.tasks} if report else {}
    metrics = _metrics_of(views, scores)
    head = "".join(f"<th>{e(m)}{' (lower is better)' if m in LOWER_IS_BETTER else ''}</th>" for m in metrics)
    mean = next((k for k in report.kinds if k.kind == kind.value), None) if report else None
    rows = []
    for view in views:
        score = scores.get(view.task_id)
        flag = (f'<td class="flag">{plural(view.flagged, "row")} missing or skipped</td>' if view.flagged
                else "<td></td>")
        cells = "".join(_cell(score.metrics.get(m) if score and score.rows else None, m, undefined_reason(score, m))
                        for m in metrics)
        rows.append(f'<tr data-task="{e(view.task_id)}"><td><a href="#task-{e(view.task_id)}">{e(view.task_id)}</a></td>'
                    f"<td>{len(view.items)}</td>{flag}{cells}</tr>")
    if mean is not None:
        cells = "".join(_mean_cell(mean.metrics.get(m), m, [scores.get(v.task_id) for v in views]) for m in metrics)
        rows.append(f'<tr class="mean"><td>mean of {plural(mean.tasks, "task")}</td><td>{mean.rows}</td><td></td>{cells}</tr>')
    return (f'<h3>{e(kind.value)} <span class="meta">({plural(len(views), "task")}, '
            f'{plural(sum(len(v.items) for v in views), "row")}{"; worst first" if report else ""})</span></h3>'
            f'<table class="kind" data-kind="{e(kind.value)}"><tr><th>task</th><th>rows</th><th>flagged</th>{head}</tr>'
            f'{"".join(rows)}</table>')


def _metrics_of(views: list[TaskView], scores: dict[str, TaskScore]) -> list[str]:
    for view in views:
        if view.task_id in scores:
            return list(scores[view.task_id].metrics)
    return []


def kind_summary(review: Review, report: Optional[Report]) -> str:
    """Per kind: its tasks, worst first, each metric coloured, the kind's mean last."""
    ordered = ordered_tasks(review, report)
    mode = (f" ({html.escape(report.metrics_mode)} metrics: {html.escape(METRICS_MODES[report.metrics_mode])})"
            if report else " (no labels: no scores)")
    tables = "".join(_kind_table(kind, [v for v in ordered if v.kind is kind], report)
                     for kind in KIND_ORDER if any(v.kind is kind for v in ordered))
    return f'<section id="summary"><h2>Summary by kind{mode}</h2>{tables}</section>'
