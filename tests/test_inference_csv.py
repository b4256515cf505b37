"""inference.layouts.batch_rows: CSV rows read as the challenge writes them, and checked against the model."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from inference.layouts.batch_rows import Job, RowFailure, check_row, read_rows
from inference.errors import FatalError
from contract.manifest import GraphFile, GraphSet, Manifest, ModelConfig, TaskEntry
from contract.kinds import spec_of
from contract.tasks import TaskKind, TaskRegistry
from inference.outputs.writers import OutputGuard

TASKS = TaskRegistry.official().select(["fetal_head", "lung_2cls", "IUGC", "thyroid_nodule_det"])


def _manifest() -> Manifest:
    """A manifest in memory (no graph files: nothing here runs a model)."""
    names = ["encoder", "fpn"] + [f"head.{t.task_id}" for t in TASKS]
    graphs = {n: GraphFile(path=f"{n}.onnx", sha256="0", bytes=0, inputs=[], outputs=[]) for n in names}
    entries = []
    for t in TASKS:
        path = ["encoder", "fpn", f"head.{t.task_id}"] if spec_of(t.kind).dense else ["encoder", f"head.{t.task_id}"]
        role = {"segmentation": "logits", "classification": "probs", "detection": "grid", "Regression": "points"}
        entries.append(TaskEntry(task_id=t.task_id, kind=t.kind, num_classes=t.num_classes, path=path,
                                 outputs={role[t.kind.value]: f"{t.task_id}.x"}))
    return Manifest(model=ModelConfig(tasks=list(TASKS)), tasks=entries,
                    graph_sets={"fp32": GraphSet(precision="fp32", graphs=graphs, providers=["CPUExecutionProvider"])})


def _write_csv(folder: Path, name: str, rows: list[dict], columns: list[str] | None = None) -> None:
    (folder / "csv_files").mkdir(parents=True, exist_ok=True)
    columns = columns or list(rows[0])
    with (folder / "csv_files" / name).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _check(tmp_path: Path, **fields) -> Job | RowFailure:
    row = {"image_path": "../img/a.png", "task_id": "lung_2cls", "task_name": "", "num_classes": "", "mask_path": ""}
    row.update(fields)
    _write_csv(tmp_path / "in", "t.csv", [row])
    rows, problems = read_rows(tmp_path / "in")
    assert not problems and len(rows) == 1
    return check_row(rows[0], _manifest(), OutputGuard(tmp_path / "out", tmp_path / "in"))


def test_paths_resolve_relative_to_csv_files_and_strings_stay_unchanged(tmp_path):
    _write_csv(tmp_path, "b.csv", [{"image_path": "../Classification/x/a.png", "task_id": "lung_2cls"}])
    _write_csv(tmp_path, "a.csv", [{"image_path": "../img/b.png", "task_id": "IUGC"}])
    rows, problems = read_rows(tmp_path)
    assert not problems
    assert [r.csv_name for r in rows] == ["a.csv", "b.csv"] and [r.index for r in rows] == [0, 1]
    assert rows[1].image_path == "../Classification/x/a.png"
    assert rows[1].image_file == tmp_path / "Classification/x/a.png"
    assert rows[0].line == 2 and "a.csv line 2" in rows[0].where


def test_missing_task_name_and_num_classes_come_from_the_model(tmp_path):
    job = _check(tmp_path)
    assert isinstance(job, Job) and job.task.kind is TaskKind.CLASSIFICATION and job.task.num_classes == 2
    assert isinstance(_check(tmp_path, task_name="classification", num_classes="2.0"), Job)


def test_disagreeing_row_fails_with_the_csv_view_for_its_fallback(tmp_path):
    failure = _check(tmp_path, task_name="classification", num_classes="3")
    assert isinstance(failure, RowFailure) and "num_classes 3" in failure.reason
    assert failure.kind is TaskKind.CLASSIFICATION and failure.num_classes == 3
    failure = _check(tmp_path, task_name="detection")
    assert isinstance(failure, RowFailure) and "detection" in failure.reason


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"task_id": "no_such_task", "task_name": "classification", "num_classes": "4"}, "unknown task id"),
        ({"task_name": "sorting"}, "unknown task kind"),
        ({"num_classes": "two"}, "not a positive integer"),
        ({"task_id": ""}, "empty task_id"),
        ({"image_path": ""}, "empty image_path"),
        ({"task_id": "fetal_head", "mask_path": ""}, "needs a mask_path"),
        ({"task_id": "fetal_head", "mask_path": "/abs/m.png"}, "absolute"),
        ({"task_id": "fetal_head", "mask_path": "../S/../../../m.png"}, "escapes"),
    ],
)
def test_bad_rows(tmp_path, fields, reason):
    failure = _check(tmp_path, **fields)
    assert isinstance(failure, RowFailure) and reason in failure.reason


def test_unknown_task_keeps_the_csv_kind_for_its_fallback(tmp_path):
    failure = _check(tmp_path, task_id="no_such_task", task_name="classification", num_classes="4")
    assert failure.kind is TaskKind.CLASSIFICATION and failure.num_classes == 4


def test_segmentation_job_has_its_mask_target(tmp_path):
    job = _check(tmp_path, task_id="fetal_head", mask_path="../Segmentation/ds/MASKS/a.png")
    assert job.mask_target == (tmp_path / "out/Segmentation/ds/MASKS/a.png").resolve()


def test_csv_without_required_columns_is_skipped_and_no_csv_is_fatal(tmp_path):
    _write_csv(tmp_path, "bad.csv", [{"path": "a.png", "task_id": "x"}])
    _write_csv(tmp_path, "good.csv", [{"image_path": "a.png", "task_id": "IUGC"}])
    rows, problems = read_rows(tmp_path)
    assert len(rows) == 1 and len(problems) == 1 and "bad.csv" in problems[0]
    (tmp_path / "empty" / "csv_files").mkdir(parents=True)
    with pytest.raises(FatalError, match="no .csv"):
        read_rows(tmp_path / "empty")
    with pytest.raises(FatalError, match="csv_files"):
        read_rows(tmp_path / "nothing")
