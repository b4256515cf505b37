"""training.data: a labelled challenge-layout folder -> per-task arrays; bad folders stop with file/row/reason.

``write_layout`` (also used by test_training_run.py) writes a tiny labelled folder with cv2.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract.tasks import TaskKind
from training.cli import main
from training.data import TrainingDataError, load_dataset

W, H = 80, 60  # native size of the synthetic images (not square, to catch x/y mix-ups)


def _disk_image(rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    image = (rng.random((H, W)) * 40).astype(np.uint8)
    cv2.circle(image, (int(cx), int(cy)), int(r), 200, -1)
    return image


def write_layout(root: Path, rows_per_task: int = 3, seed: int = 0) -> Path:
    """One task per kind: seg (disk mask), cls (bright vs dark), Regression (2 points), detection (disk box)."""
    rng = np.random.default_rng(seed)
    csv_dir = root / "csv_files"
    csv_dir.mkdir(parents=True)
    tables: dict[str, list[dict]] = {"seg": [], "cls": [], "reg": [], "det": []}
    for i in range(rows_per_task):
        cx, cy, r = rng.uniform(25, 55), rng.uniform(20, 40), rng.uniform(8, 14)
        for kind in tables:
            folder = root / kind
            folder.mkdir(exist_ok=True)
            name = f"{kind}_{i}.png"
            image = _disk_image(rng, cx, cy, r)
            row = {"image_path": f"../{kind}/{name}"}
            if kind == "seg":
                mask = np.zeros((H, W), np.uint8)
                cv2.circle(mask, (int(cx), int(cy)), int(r), 1, -1)
                cv2.imwrite(str(folder / f"mask_{i}.png"), mask)
                row.update(task_id="toy_seg", task_name="segmentation", num_classes=2, mask_path=f"../seg/mask_{i}.png")
            elif kind == "cls":
                label = i % 2
                image = np.full((H, W), 30 + 180 * label, np.uint8)
                row.update(task_id="toy_cls", task_name="classification", num_classes=2, mask=label)
            elif kind == "reg":
                row.update(task_id="toy_reg", task_name="Regression", num_classes=2,
                           point_1_xy=json.dumps([cx - r, cy]), point_2_xy=json.dumps([cx + r, cy]))
            else:
                row.update(task_id="toy_det", task_name="detection", num_classes=1,
                           x_min=cx - r, y_min=cy - r, x_max=cx + r, y_max=cy + r)
            cv2.imwrite(str(folder / name), image)
            tables[kind].append(row)
    for kind, rows in tables.items():
        with open(csv_dir / f"{kind}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return root


def test_targets_are_resized_and_normalized_by_the_original_size(tmp_path):
    root = write_layout(tmp_path / "d")
    data = load_dataset(root, (32, 48))
    assert set(data) == {"toy_seg", "toy_cls", "toy_reg", "toy_det"}
    seg, reg, det, cls = data["toy_seg"], data["toy_reg"], data["toy_det"], data["toy_cls"]
    assert seg.images.shape == (3, 32, 48, 3) and seg.images.dtype == np.uint8
    assert seg.target.shape == (3, 32, 48) and set(np.unique(seg.target)) == {0, 1}
    assert (seg.sizes == [H, W]).all()
    with open(root / "csv_files" / "reg.csv") as handle:
        first = next(csv.DictReader(handle))
    x1, y1 = json.loads(first["point_1_xy"])
    np.testing.assert_allclose(reg.target[0][:2], [x1 / W, y1 / H], rtol=1e-6)
    with open(root / "csv_files" / "det.csv") as handle:
        rec = next(csv.DictReader(handle))
    box = [float(rec[c]) for c in ("x_min", "y_min", "x_max", "y_max")]
    np.testing.assert_allclose(det.target[0], [box[0] / W, box[1] / H, box[2] / W, box[3] / H], rtol=1e-6)
    assert cls.target.tolist() == [0, 1, 0] and cls.spec.kind is TaskKind.CLASSIFICATION


def test_cache_file_gives_the_same_arrays(tmp_path):
    root = write_layout(tmp_path / "d")
    first = load_dataset(root, (32, 32), cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    second = load_dataset(root, (32, 32), cache_dir=tmp_path / "cache")
    for task_id, task in first.items():
        assert second[task_id].spec == task.spec
        np.testing.assert_array_equal(second[task_id].images, task.images)
        np.testing.assert_array_equal(second[task_id].target, task.target)


def test_missing_image_names_the_csv_row(tmp_path):
    root = write_layout(tmp_path / "d")
    (root / "det" / "det_1.png").unlink()
    with pytest.raises(TrainingDataError, match=r"det\.csv row 2: image file .*det_1\.png not found"):
        load_dataset(root, (32, 32))


def test_mask_with_too_many_classes_is_rejected(tmp_path):
    root = write_layout(tmp_path / "d")
    cv2.imwrite(str(root / "seg" / "mask_0.png"), np.full((H, W), 3, np.uint8))
    with pytest.raises(TrainingDataError, match=r"seg\.csv row 1: mask holds class 3 but the task has 2 classes"):
        load_dataset(root, (32, 32))


def test_unknown_task_selection_is_rejected(tmp_path):
    root = write_layout(tmp_path / "d")
    with pytest.raises(TrainingDataError, match="no rows for task"):
        load_dataset(root, (32, 32), tasks=["fetal_head"])


@pytest.mark.parametrize("breakage, message", [
    ("no_csv_dir", "no csv_files/ folder"),
    ("no_csv", "holds no .csv files"),
    ("no_label_column", "no label column"),
    ("missing_image", "image file .* not found"),
])
def test_cli_stops_on_a_folder_not_in_the_layout(tmp_path, capsys, breakage, message):
    root = write_layout(tmp_path / "d")
    if breakage == "no_csv_dir":
        for f in (root / "csv_files").iterdir():
            f.unlink()
        (root / "csv_files").rmdir()
    elif breakage == "no_csv":
        for f in (root / "csv_files").iterdir():
            f.unlink()
    elif breakage == "no_label_column":
        text = (root / "csv_files" / "cls.csv").read_text().replace(",mask", ",label")
        (root / "csv_files" / "cls.csv").write_text(text)
    else:
        (root / "seg" / "seg_2.png").unlink()
    code = main(["--train", str(root), "--out", str(tmp_path / "run"), "--steps", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and re.search(message, err[-1])
    assert not (tmp_path / "run" / "last.pt").exists()
