"""Independent reference for the bring-your-own-model tests: what the team's network predicts in PyTorch.

Written from the challenge's contract, not from the runtime's code: each image is read
with OpenCV, resized bilinearly to the network input, normalized, run through the
network in PyTorch; segmentation logits are resized to the native size with
``torch.nn.functional.interpolate(bilinear, align_corners=False)`` before the argmax,
classification logits go through a softmax, boxes and points scale with width/height.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "test" / "input"
TASK_IDS = ("fetal_head", "cardiac_multi", "breast_3cls", "thyroid_nodule_det", "IUGC")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def sample_input(tmp_path: Path, task_ids=TASK_IDS) -> Path:
    """test/input (phantoms, challenge layout) with only the CSVs of ``task_ids``."""
    target = tmp_path / "input"
    shutil.copytree(SAMPLE, target)
    for csv_file in (target / "csv_files").glob("*.csv"):
        if csv_file.stem not in task_ids:
            csv_file.unlink()
    return target


def rows(input_dir: Path) -> list[dict[str, str]]:
    found = []
    for csv_file in sorted((input_dir / "csv_files").glob("*.csv")):
        with open(csv_file, newline="") as handle:
            found.extend(csv.DictReader(handle))
    return found


def network_input(path: Path, size: int, mean, std, bgr: bool) -> torch.Tensor:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # B, G, R
    if not bgr:
        image = image[:, :, ::-1]
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    small = (small - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))[None]


@torch.no_grad()
def reference_outputs(net, image: torch.Tensor, task_id: str, position: int | None) -> torch.Tensor:
    if position is None:
        return net(image)[task_id]
    return net(image, torch.tensor([position], dtype=torch.int64))[task_id]


def _records(out_dir: Path) -> dict[tuple[str, str], dict]:
    found = {}
    for name in ("classification", "detection", "regression"):
        for record in json.loads((out_dir / f"{name}_predictions.json").read_text()):
            found[(record["image_path"], record["task_id"])] = record
    return found


def check_predictions(net, input_dir: Path, out_dir: Path, size: int = 64, mean=IMAGENET[0], std=IMAGENET[1],
                      bgr: bool = False, positions: dict[str, int] | None = None) -> dict[str, float]:
    """Assert the runtime's files match the reference; return the worst figures per kind."""
    records, worst = _records(out_dir), {"mask_agreement": 1.0, "prob": 0.0, "box_px": 0.0, "point_px": 0.0}
    kinds = {t["task_id"]: t["kind"] for t in net.tasks}
    for row in rows(input_dir):
        task_id, image_path = row["task_id"], row["image_path"]
        file = input_dir / "csv_files" / image_path
        height, width = cv2.imread(str(file), cv2.IMREAD_UNCHANGED).shape[:2]
        output = reference_outputs(net, network_input(file, size, mean, std, bgr), task_id,
                                   None if positions is None else positions[task_id])
        kind = kinds[task_id]
        if kind == "segmentation":
            native = F.interpolate(output, size=(height, width), mode="bilinear", align_corners=False)
            expected = native.argmax(dim=1)[0].numpy()
            mask = cv2.imread(str(out_dir / row["mask_path"].replace("../", "", 1)), cv2.IMREAD_UNCHANGED)
            agreement = float(np.mean(mask == expected))
            assert agreement >= 0.99, f"{image_path}: {agreement:.4f} of the mask's pixels agree"
            worst["mask_agreement"] = min(worst["mask_agreement"], agreement)
            continue
        record = records[(image_path, task_id)]
        if kind == "classification":
            probs = torch.softmax(output, dim=1)[0].numpy()
            diff = float(np.max(np.abs(np.array(record["predicted_probs"]) - probs)))
            assert diff <= 1e-3 and record["predicted_class"] == int(probs.argmax()), (image_path, record, probs)
            worst["prob"] = max(worst["prob"], diff)
        elif kind == "detection":
            box = output[0].numpy() * np.array([width, height, width, height])
            diff = float(np.max(np.abs(np.array(record["bbox_normalized"]) * [width, height, width, height] - box)))
            assert diff <= 1.0, (image_path, record, box)
            worst["box_px"] = max(worst["box_px"], diff)
        else:
            points = output[0].numpy().reshape(-1, 2) * np.array([width, height])
            diff = float(np.max(np.abs(np.array(record["predicted_points_pixels"]).reshape(-1, 2) - points)))
            assert diff <= 1.0, (image_path, record, points)
            worst["point_px"] = max(worst["point_px"], diff)
    return worst


def seeded(net, seed: int):
    """Non-trivial BatchNorm statistics (so that parity covers them), eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, buffer in net.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return net.eval()
