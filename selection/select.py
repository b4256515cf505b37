"""``select_model``: member folders + a labelled validation folder -> the chosen model folder and its report.

Steps: open the members (exported model folders; ``selection.cli`` exports checkpoints and
brought models first) and check they can share a folder; read the validation labels
(``evaluation.labels.read_labels``); then task by task: run each serving member once
(``selection.cache``), score the candidates and decide (``selection.choose``); finally write
the folder with the choices in its manifest and the report (``selection.compose``,
``selection.report``). Every member's engine (ONNX Runtime, its sessions) is made once and
kept for all the tasks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from contract.flip import FlipRule, resolve_rules
from contract.kinds import spec_of
from contract.manifest import Manifest, ManifestError, ModelFolder, TaskEntry
from contract.postprocess import NONE
from contract.tasks import TaskKind, TaskRegistry
from evaluation.labels import LabelLayoutError, LabelRow, read_labels
from selection.cache import compute_task
from selection.candidates import DEFAULT_POSTPROCESS, Candidate, default_candidate, postprocess_candidates
from selection.choose import Guard, Selector
from selection.compose import write_folder
from selection.report import TaskReport, task_report, untested_report, write_reports
from selection.score import SCORERS, check_metric, default_metric

log = logging.getLogger(__name__)


class SelectionError(ValueError):
    """Members that cannot be chosen among, or a validation folder that cannot be used; the message says why."""


@dataclass
class SelectOptions:
    metrics: dict[TaskKind, str] = field(default_factory=dict)  # --select-metric KIND=METRIC
    max_runs: float | None = None  # --max-runs: model runs per image a task's configuration may cost
    guard: Guard = field(default_factory=Guard)
    postprocess: Sequence[str] = DEFAULT_POSTPROCESS
    flip_rules: Mapping[str, FlipRule] = field(default_factory=dict)
    tta_mode: str = "none"  # the folder's tta.mode: what tasks without a choice do under --tta auto
    batch_size: int = 8
    device: str = "cpu"
    threads: int | None = None

    def metric(self, kind: TaskKind) -> str:
        return check_metric(kind, self.metrics.get(kind, default_metric(kind)))


def open_members(member_dirs: Sequence[Path]) -> list[ModelFolder]:
    """The members' folders (hashes checked); SelectionError when one is an ensemble or they cannot share a folder."""
    folders = []
    for path in member_dirs:
        try:
            folder = ModelFolder.open(Path(path), verify_hashes=True)
        except ManifestError as exc:
            raise SelectionError(f"member {path}: {exc}") from None
        if folder.manifest.members:
            raise SelectionError(f"member {path} is an ensemble folder; pass its members (or their checkpoints) instead")
        folders.append(folder)
    first = folders[0].manifest
    seen: dict[str, tuple[int, TaskEntry]] = {}
    for index, folder in enumerate(folders):
        manifest = folder.manifest
        if manifest.model.preprocessing != first.model.preprocessing:
            raise SelectionError(f"member {index} ({folder.path}) preprocesses images differently from member 0; "
                                 "members of one folder must share the input size and normalization")
        for entry in manifest.tasks:
            earlier = seen.setdefault(entry.task_id, (index, entry))[1]
            if earlier.spec != entry.spec:
                raise SelectionError(f"task {entry.task_id}: member {index} ({folder.path}) has it as "
                                     f"{entry.kind.value} {entry.num_classes}, member {seen[entry.task_id][0]} as "
                                     f"{earlier.kind.value} {earlier.num_classes}")
    return folders


def _union(folders: Sequence[ModelFolder]) -> dict[str, TaskEntry]:
    union: dict[str, TaskEntry] = {}
    for folder in folders:
        for entry in folder.manifest.tasks:
            union.setdefault(entry.task_id, entry)
    return union


def _rows_by_task(val_dir: Path, union: Mapping[str, TaskEntry]) -> dict[str, list[LabelRow]]:
    registry = TaskRegistry.official()
    extra = [e.spec for e in union.values() if e.task_id not in registry]
    try:
        rows, issues = read_labels(Path(val_dir), registry.extend(extra))
    except LabelLayoutError as exc:
        raise SelectionError(f"--select-on {val_dir}: {exc}") from None
    for issue in issues:
        log.warning("validation row left out: %s", issue.line())
    grouped: dict[str, list[LabelRow]] = {}
    for row in rows:
        entry = union.get(row.task_id)
        if entry is None:
            log.info("validation rows of task %s: no member serves it; ignored", row.task_id)
        elif (row.kind, row.num_classes) != (entry.kind, entry.num_classes):
            log.warning("validation row %s row %d: task %s is %s %d in the CSV but %s %d in the members; left out",
                        row.csv_file, row.row, row.task_id, row.kind.value, row.num_classes, entry.kind.value,
                        entry.num_classes)
        else:
            grouped.setdefault(row.task_id, []).append(row)
    return grouped


def select_model(member_dirs: Sequence[Path], val_dir: Path, out_dir: Path, options: SelectOptions,
                 names: Sequence[str] | None = None) -> tuple[Manifest, list[TaskReport]]:
    """Choose per task among ``member_dirs`` on ``val_dir``, write ``out_dir`` (module docstring)."""
    from inference.engines.fallback import FallbackEngine

    if not member_dirs:
        raise SelectionError("selection needs at least one member")
    started = time.perf_counter()
    folders = open_members(member_dirs)
    names = list(names or [Path(p).name for p in member_dirs])
    union = _union(folders)
    rules = resolve_rules([e.spec for e in union.values()], options.flip_rules)
    grouped = _rows_by_task(val_dir, union)
    engines = [FallbackEngine(f, "auto", options.device, "fp32", options.threads) for f in folders]
    prep = folders[0].manifest.model.preprocessing
    choices: dict[str, Candidate] = {}
    untested: set[str] = set()
    reports: list[TaskReport] = []
    for task_id, entry in union.items():
        serving = [k for k, f in enumerate(folders) if task_id in {t.task_id for t in f.manifest.tasks}]
        metric = options.metric(entry.kind)
        rows = grouped.get(task_id, [])
        writes_mask = spec_of(entry.kind).writes_mask
        data = compute_task(entry, rows, writes_mask, rules[task_id] if rules[task_id].flips else None,
                            {k: (folders[k], engines[k]) for k in serving}, prep, options.batch_size) if rows else None
        if data is None or not data.rows or not data.serving:
            why = "no usable validation rows" if data is None or not data.rows else "no member ran without a fault"
            choices[task_id] = default_candidate(serving)
            if options.max_runs is None or choices[task_id].runs <= options.max_runs:
                untested.add(task_id)  # the manifest says nothing: the default
                why += ": the default is kept"
            else:
                choices[task_id] = Candidate(((serving[0], 1.0),))
                why += f": the default is over --max-runs {options.max_runs:g}, the first member serving it alone"
            reports.append(untested_report(task_id, entry.kind.value, metric, choices[task_id], names, serving, why))
            continue
        postprocess = postprocess_candidates(options.postprocess, entry.num_classes) if writes_mask else [NONE]
        selector = Selector(data, SCORERS[entry.kind], metric, postprocess, data.serving, options.max_runs)
        decision = selector.decide(options.guard)
        choices[task_id] = decision.chosen
        reports.append(task_report(selector, decision, names, serving))
        log.info("task %s: %s (%s)", task_id, decision.chosen.label(names), decision.reason)
    header = {"validation": str(val_dir), "seconds": None,
              "members": [{"name": n, "folder": str(f.path), "tasks": [t.task_id for t in f.manifest.tasks]}
                          for n, f in zip(names, folders)],
              "options": {"metrics": {e.kind.value: options.metric(e.kind) for e in union.values()},
                          "max_runs": options.max_runs, "min_rows": options.guard.min_rows,
                          "folds": options.guard.folds, "seed": options.guard.seed,
                          "postprocess_candidates": list(options.postprocess)}}

    def report(folder: Path) -> tuple[Path, Path]:
        header["seconds"] = round(time.perf_counter() - started, 2)
        return write_reports(folder, reports, header)

    manifest = write_folder(Path(out_dir), [f.path for f in folders], choices, untested, options.tta_mode,
                            dict(options.flip_rules),
                            report)
    return manifest, reports
