"""A run to review (tests of ``python -m review``): test/expected_output with known faults.

- fetal_head_0000's mask deleted (a missing prediction);
- uterine_fibroid_det_0000's record removed (a missing prediction);
- thyroid_nodule_det_0001's box moved far from the truth (IoU 0);
- both lung masks cut to their top quarter of foreground rows (Dice about 0.4: a bad task).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
INPUT, EXPECTED = ROOT / "test" / "input", ROOT / "test" / "expected_output"
SEG = Path("Segmentation/Two")


def _cut_to_top_quarter(path: Path) -> None:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    rows = np.flatnonzero(mask.any(axis=1))
    keep = rows[0] + max(1, (rows[-1] - rows[0]) // 4)
    mask[keep:] = 0
    cv2.imwrite(str(path), mask)


def faulty_run(out: Path) -> Path:
    shutil.copytree(EXPECTED, out)
    (out / SEG / "fetal_head/masks/fetal_head_0000.png").unlink()
    for name in ("lung_0000.png", "lung_0001.png"):
        _cut_to_top_quarter(out / SEG / "lung/masks" / name)
    det = json.loads((out / "detection_predictions.json").read_text())
    for rec in det:
        if rec["image_path"].endswith("thyroid_nodule_det_0001.png"):
            rec["bbox_pixels"] = [0.0, 0.0, 10.0, 10.0]
    det = [r for r in det if not r["image_path"].endswith("uterine_fibroid_det_0000.png")]
    (out / "detection_predictions.json").write_text(json.dumps(det))
    return out
