"""The selection report: per task, every candidate's score, the choice, the gain and the run-time cost.

Written into the chosen model folder as ``selection_report.json`` (the data) and
``selection_report.md`` (the same as tables). Per task:

- ``candidates``: each configuration tried, its official metrics on all the validation rows,
  its model runs per image and its measured seconds per image (model runs, plus decoding
  and postprocessing);
- ``default``, ``chosen``: the configuration without a choice and the one written into the
  manifest; ``on_all_rows``: what scored best on all the rows, before the guard;
- ``gain``: chosen minus default on all rows (optimistic: chosen on the same rows), and the
  guard's held-out comparison (``held_out``: the procedure's score on rows it was not chosen
  on, against the default's) when it ran;
- ``cost``: the chosen configuration's model runs and seconds per image against the default's;
- ``reason``: why the choice was made or the default kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from contract.atomic import atomic_write_text
from selection.candidates import Candidate
from selection.choose import Decision, Selector
from selection.score import LOWER_IS_BETTER

JSON_NAME = "selection_report.json"
MARKDOWN_NAME = "selection_report.md"


@dataclass
class TaskReport:
    task_id: str
    kind: str
    metric: str
    rows: int
    serving: list[str]
    reason: str
    chosen: Candidate
    record: dict[str, Any] = field(default_factory=dict)


def _candidate(selector: Selector, candidate: Candidate, names: Sequence[str]) -> dict[str, Any]:
    metrics = selector.metrics(candidate)
    model = selector.data.model_seconds(candidate)
    decode = selector.decode_seconds.get(candidate, 0.0)
    return {**candidate.as_dict(names), "label": candidate.label(names), "metrics": metrics,
            "seconds_per_image": model + decode, "model_seconds_per_image": model, "decode_seconds_per_image": decode}


def task_report(selector: Selector, decision: Decision, names: Sequence[str], serving: Sequence[int]) -> TaskReport:
    """The report of a task that had validation rows."""
    data = selector.data
    tried = list(dict.fromkeys([*selector.bases, *[decision.on_all_rows.with_postprocess(p) for p in selector.postprocess],
                                selector.default, decision.chosen]))
    candidates = [_candidate(selector, c, names) for c in sorted(tried, key=Candidate.cost_key)]
    chosen, default = _candidate(selector, decision.chosen, names), _candidate(selector, decision.default, names)
    metric = selector.metric
    record = {
        "task_id": data.entry.task_id, "kind": data.entry.kind.value, "metric": metric,
        "lower_is_better": metric in LOWER_IS_BETTER, "rows": len(data.rows), "serving": [names[m] for m in serving],
        "candidates": candidates, "default": default, "chosen": chosen,
        "on_all_rows": decision.on_all_rows.label(names),
        "gain": {"all_rows": chosen["metrics"][metric] - default["metrics"][metric],
                 "held_out": None if decision.held_out is None else decision.held_out},
        "cost": {"runs_per_image": [default["runs_per_image"], chosen["runs_per_image"]],
                 "seconds_per_image": [default["seconds_per_image"], chosen["seconds_per_image"]]},
        "reason": decision.reason,
        "failed_members": {names[m]: why for m, why in data.failed.items()},
    }
    return TaskReport(data.entry.task_id, data.entry.kind.value, metric, len(data.rows), record["serving"],
                      decision.reason, decision.chosen, record)


def untested_report(task_id: str, kind: str, metric: str, default: Candidate, names: Sequence[str],
                    serving: Sequence[int], reason: str) -> TaskReport:
    """A task without usable validation rows: it keeps the default."""
    record = {"task_id": task_id, "kind": kind, "metric": metric, "rows": 0, "serving": [names[m] for m in serving],
              "candidates": [], "default": default.as_dict(names) | {"label": default.label(names)},
              "chosen": default.as_dict(names) | {"label": default.label(names)}, "gain": None, "cost": None,
              "reason": reason}
    return TaskReport(task_id, kind, metric, 0, record["serving"], reason, default, record)


def write_reports(folder: Path, reports: Sequence[TaskReport], header: dict[str, Any]) -> tuple[Path, Path]:
    data = {**header, "tasks": [r.record for r in reports]}
    json_path = atomic_write_text(Path(folder) / JSON_NAME, json.dumps(data, indent=2) + "\n")
    md_path = atomic_write_text(Path(folder) / MARKDOWN_NAME, markdown(data))
    return json_path, md_path


def _figure(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def markdown(data: dict[str, Any]) -> str:
    lines = ["# Selection report", "",
             f"Validation folder: `{data.get('validation', '')}`; members: "
             + ", ".join(f"`{m['name']}`" for m in data.get("members", [])) + ".", "",
             "| task | metric | rows | default | chosen | gain (all rows) | held out: choice vs default | "
             "runs/image | s/image | why |", "|---|---|---:|---|---|---:|---|---|---|---|"]
    untested = [t for t in data["tasks"] if not t["candidates"]]
    for task in (t for t in data["tasks"] if t["candidates"]):
        gain, cost = task.get("gain"), task.get("cost")
        held = gain.get("held_out") if gain else None
        held_text = f"{_figure(held['choice'])} vs {_figure(held['default'])}" if held else ""
        runs = " -> ".join(str(r) for r in cost["runs_per_image"]) if cost else ""
        seconds = " -> ".join(f"{s:.3f}" for s in cost["seconds_per_image"]) if cost else ""
        lines.append(f"| {task['task_id']} | {task['metric']} | {task['rows']} | {task['default']['label']} | "
                     f"{task['chosen']['label']} | {_figure(gain['all_rows']) if gain else ''} | {held_text} | {runs} | "
                     f"{seconds} | {task['reason']} |")
    if untested:
        lines += ["", "Tasks without a choice (the default kept): "
                  + "; ".join(f"{t['task_id']} ({t['reason']})" for t in untested) + "."]
    for task in data["tasks"]:
        if not task["candidates"]:
            continue
        names = sorted({m for c in task["candidates"] for m in c["metrics"]})
        lines += ["", f"## {task['task_id']} ({task['kind']}, chosen on {task['metric']})", "",
                  "| candidate | runs/image | s/image | " + " | ".join(names) + " |",
                  "|---|---:|---:|" + "---:|" * len(names)]
        for c in task["candidates"]:
            mark = " **(chosen)**" if c["label"] == task["chosen"]["label"] else ""
            lines.append(f"| {c['label']}{mark} | {c['runs_per_image']} | {c['seconds_per_image']:.4f} | "
                         + " | ".join(_figure(c["metrics"].get(n)) for n in names) + " |")
    return "\n".join(lines) + "\n"
