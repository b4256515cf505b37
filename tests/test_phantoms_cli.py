"""Phantom dataset on disk: layout, CSV columns, determinism, refusal of a non-empty folder."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from contract.tasks import TaskKind, TaskRegistry
from phantoms import generate_dataset
from phantoms.cli import main

REGISTRY = TaskRegistry.official()
ROOT = Path(__file__).resolve().parents[1]
KIND_DIR = {TaskKind.SEGMENTATION: "Segmentation/Two", TaskKind.CLASSIFICATION: "Classification",
            TaskKind.DETECTION: "Detection", TaskKind.REGRESSION: "Regression"}


def _rows(root: Path, task_id: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(root / "csv_files" / f"{task_id}.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _expected_columns(task, labels: bool) -> list[str]:
    cols = ["image_path", "task_id", "task_name", "num_classes"]
    if task.kind is TaskKind.SEGMENTATION:
        cols.append("mask_path")
    if labels:
        cols += {TaskKind.SEGMENTATION: [], TaskKind.CLASSIFICATION: ["mask"],
                 TaskKind.DETECTION: ["x_min", "y_min", "x_max", "y_max"],
                 TaskKind.REGRESSION: [f"point_{i + 1}_xy" for i in range(task.num_classes)]}[task.kind]
    return cols


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ph") / "data"
    assert main(["--out", str(out), "--seed", "7", "--per-task", "2", "--quiet"]) == 0
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_columns_for_all_tasks(dataset: Path) -> None:
    assert sorted(p.stem for p in (dataset / "csv_files").glob("*.csv")) == sorted(REGISTRY.ids)
    for task in REGISTRY:
        header, rows = _rows(dataset, task.task_id)
        assert header == _expected_columns(task, labels=True)
        assert len(rows) == 2
        for i, row in enumerate(rows):
            assert row["task_id"] == task.task_id and row["task_name"] == task.kind.value
            assert int(row["num_classes"]) == task.num_classes
            prefix = f"../{KIND_DIR[task.kind]}/{task.task_id}/images/{task.task_id}_{i:04d}."
            assert row["image_path"].startswith(prefix)
            img = cv2.imread(str(dataset / "csv_files" / row["image_path"]), cv2.IMREAD_UNCHANGED)
            assert img is not None and img.dtype.name == "uint8"
            h, w = img.shape[:2]
            if task.kind is TaskKind.SEGMENTATION:
                assert row["mask_path"] == f"../{KIND_DIR[task.kind]}/{task.task_id}/masks/{task.task_id}_{i:04d}.png"
                mask = cv2.imread(str(dataset / "csv_files" / row["mask_path"]), cv2.IMREAD_UNCHANGED)
                assert mask.shape == (h, w) and int(mask.max()) == task.num_classes - 1
            elif task.kind is TaskKind.CLASSIFICATION:
                assert int(row["mask"]) == i % task.num_classes
            elif task.kind is TaskKind.DETECTION:
                x0, y0, x1, y1 = (float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
                assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            else:
                for k in range(task.num_classes):
                    x, y = json.loads(row[f"point_{k + 1}_xy"])
                    assert 0 <= x < w and 0 <= y < h


def test_same_seed_gives_identical_bytes_and_subsets_are_stable(dataset: Path, tmp_path: Path) -> None:
    again = generate_dataset(tmp_path / "again", 7, {t: 2 for t in REGISTRY.ids}, workers=2, progress=False)
    assert _files(again) == _files(dataset)
    subset = generate_dataset(tmp_path / "sub", 7, {"fetal_head": 1, "IUGC": 2}, progress=False)
    full = _files(dataset)
    for name, data in _files(subset).items():
        if not name.startswith("csv_files"):
            assert full[name] == data, name
    other = _files(generate_dataset(tmp_path / "other", 8, {"fetal_head": 1}, progress=False))
    img = next(k for k in other if "/images/" in k)
    assert other.get(img) != full.get(img)


def test_no_labels_omits_label_columns_and_masks(tmp_path: Path) -> None:
    out = tmp_path / "nolab"
    ids = ["cardiac_multi", "organ_cls", "uterine_fibroid_det", "FUGC"]
    assert main(["--out", str(out), "--seed", "1", "--per-task", "1", "--tasks", ",".join(ids), "--no-labels",
                 "--quiet"]) == 0
    for task_id in ids:
        header, _ = _rows(out, task_id)
        assert header == _expected_columns(REGISTRY[task_id], labels=False)
    assert not list(out.rglob("masks"))


def test_kinds_and_counts_select_tasks(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path / "a"), "--seed", "1", "--per-task", "1", "--kinds", "Regression",
                 "--quiet"]) == 0
    assert sorted(p.stem for p in (tmp_path / "a" / "csv_files").iterdir()) == ["FUGC", "IUGC", "fetal_femur"]
    assert main(["--out", str(tmp_path / "b"), "--seed", "1", "--counts", "lung=3,breast_2cls=2", "--quiet"]) == 0
    assert len(_rows(tmp_path / "b", "lung")[1]) == 3 and len(_rows(tmp_path / "b", "breast_2cls")[1]) == 2


def test_refuses_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    cmd = [sys.executable, "-m", "phantoms", "--out", str(out), "--seed", "1", "--per-task", "1",
           "--tasks", "fetal_head", "--quiet"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not empty" in lines[0] and "--overwrite" in lines[0]
    assert not (out / "csv_files").exists()
    assert subprocess.run(cmd + ["--overwrite"], cwd=ROOT, capture_output=True, timeout=60).returncode == 0
    assert (out / "csv_files" / "fetal_head.csv").exists() and (out / "keep.txt").exists()


def test_unknown_task_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["--out", str(tmp_path / "x"), "--seed", "1", "--counts", "no_such_task=2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no_such_task" in err and "fetal_head" in err
