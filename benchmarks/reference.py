"""The yardstick: a PyTorch-eager pipeline that follows the baseline's published inference procedure.

    python -m benchmarks.reference --input DIR --output DIR --weights MODEL_DIR [--state-dict best_model.pth]
        [--device cpu|cuda]

Written here, by us, after the procedure the FMC_UIA baseline describes (not its
code): every CSV row of ``INPUT/csv_files/*.csv`` (files in name order) goes
through a ``torch.utils.data.DataLoader`` (batch 8, 4 worker processes, no
shuffling); each item is read with ``cv2.imread``, turned to RGB, resized to the
network's input with bilinear interpolation and normalized with the ImageNet
statistics. Each batch is split by task id and the task's rows go through the
PyTorch model with that task's head (``model(images, task_id)``), on ``--device``
(``cpu`` by default; ``cuda``: the model and each batch moved to the GPU, the outputs
copied back, PyTorch's default cuDNN settings). Then:

- segmentation: argmax over the classes at 256 x 256, the uint8 mask resized to
  the native size with nearest-neighbour interpolation, written with ``cv2.imwrite``
  at the CSV's ``mask_path`` without its leading ``../``;
- classification: softmax of the logits; the class is the argmax;
- detection: the box of the grid cell with the highest objectness, pixels = box x size;
- Regression: the normalized points, pixels = x * width, y * height;

and the three JSON files are written when every row is done (as plain floats:
the published code's float32 values would stop ``json`` half-way).

The network is built from the model folder's manifest (``network.build_model``);
its weights come from ``--state-dict`` (a plain ``state_dict``, as the baseline's
``best_model.pth``) or, without it, from the folder's own graphs.

For the benchmark it logs ``first predictions ready at unix time T`` once and
``batch done: TASK KIND N images at unix time T`` (debug, ``-v``) per task group,
the same lines the runtime writes.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from contract.manifest import Preprocessing, load_manifest

log = logging.getLogger("reference")
JSON_FILES = {
    "classification": "classification_predictions.json",
    "detection": "detection_predictions.json",
    "Regression": "regression_predictions.json",
}


def read_csv_rows(input_dir: Path) -> list[dict[str, str]]:
    csv_dir = Path(input_dir) / "csv_files"
    rows: list[dict[str, str]] = []
    for path in sorted(csv_dir.glob("*.csv")):
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows.extend(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"reference: no CSV rows under {csv_dir}")
    return rows


class CsvRows(Dataset):
    """One item per CSV row: the normalized CHW tensor and the row's metadata."""

    def __init__(self, input_dir: Path, prep: Preprocessing):
        self.csv_dir = Path(input_dir) / "csv_files"
        self.rows = read_csv_rows(input_dir)
        self.size = (prep.input_size[1], prep.input_size[0])  # cv2 wants (width, height)
        self.scale = np.float32(prep.scale)
        self.mean = np.asarray(prep.mean, np.float32)
        self.std = np.asarray(prep.std, np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        path = os.path.normpath(self.csv_dir / row["image_path"])
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"reference: row {index}: cannot read image {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        resized = cv2.resize(rgb, self.size, interpolation=cv2.INTER_LINEAR)
        x = (resized.astype(np.float32) / self.scale - self.mean) / self.std
        return {
            "image": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))),
            "row": row,
            "size": (rgb.shape[0], rgb.shape[1]),
        }


def collate(items: list[dict]) -> dict:
    return {
        "image": torch.stack([item["image"] for item in items]),
        "rows": [item["row"] for item in items],
        "sizes": [item["size"] for item in items],
    }


def load_network(model_dir: Path, state_dict: Path | None) -> torch.nn.Module:
    from network import build_model

    manifest = load_manifest(model_dir)
    if state_dict is None:
        from network.weights import load_model_from_folder

        return load_model_from_folder(model_dir)[0]
    model = build_model(manifest.model)
    model.load_state_dict(torch.load(state_dict, map_location="cpu", weights_only=True))
    return model.eval()


def save_mask(output_dir: Path, row: dict[str, str], logits: np.ndarray, size: tuple[int, int]) -> None:
    mask = np.argmax(logits, axis=0).astype(np.uint8)
    mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    relative = row["mask_path"].replace("\\", "/")
    while relative.startswith("../"):
        relative = relative[3:]
    target = Path(output_dir) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(target), mask):
        raise OSError(f"reference: cannot write {target}")


def record(kind: str, row: dict[str, str], out: np.ndarray, size: tuple[int, int]) -> dict:
    height, width = size
    base = {"image_path": row["image_path"], "task_id": row["task_id"]}
    if kind == "classification":
        logits = out.astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        return {**base, "predicted_class": int(np.argmax(probs)), "predicted_probs": [float(p) for p in probs]}
    if kind == "detection":
        scores = out[4].reshape(-1)
        cell = int(np.argmax(scores))
        box = out[:4].reshape(4, -1)[:, cell].astype(np.float64)
        pixels = [box[0] * width, box[1] * height, box[2] * width, box[3] * height]
        return {**base, "bbox_normalized": [float(v) for v in box], "bbox_pixels": [float(v) for v in pixels]}
    coords = out.reshape(-1).astype(np.float64)
    pixels = [float(v * (width if i % 2 == 0 else height)) for i, v in enumerate(coords)]
    return {**base, "predicted_points_normalized": [float(v) for v in coords], "predicted_points_pixels": pixels}


def predict(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    manifest = load_manifest(args.weights)
    kinds = {task.task_id: task.kind.value for task in manifest.tasks}
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("reference: --device cuda, but torch.cuda.is_available() is False")
    model = load_network(args.weights, args.state_dict).to(device)
    log.info("device %s%s", device, f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    dataset = CsvRows(args.input, manifest.model.preprocessing)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
                        collate_fn=collate)
    results: dict[str, list[dict]] = {kind: [] for kind in JSON_FILES}
    first = True
    with torch.no_grad():
        for batch in loader:
            task_ids = [row["task_id"] for row in batch["rows"]]
            for task_id in dict.fromkeys(task_ids):
                picks = [i for i, t in enumerate(task_ids) if t == task_id]
                kind = kinds[task_id]
                outputs = model(batch["image"][picks].to(device), task_id).cpu().numpy()
                for out, i in zip(outputs, picks):
                    row, size = batch["rows"][i], batch["sizes"][i]
                    if kind == "segmentation":
                        save_mask(args.output, row, out, size)
                    else:
                        results[kind].append(record(kind, row, out, size))
                now = time.time()
                if first:
                    log.info("first predictions ready at unix time %.6f", now)
                    first = False
                log.debug("batch done: %s %s %d images at unix time %.6f", task_id, kind, len(picks), now)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    for kind, name in JSON_FILES.items():
        with open(Path(args.output) / name, "w", encoding="utf-8") as handle:
            json.dump(results[kind], handle, indent=1)
    log.info("%d rows in %.2f s", len(dataset), time.perf_counter() - started)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="folder with csv_files/*.csv")
    parser.add_argument("--output", type=Path, required=True, help="prediction folder to write")
    parser.add_argument("--weights", type=Path, required=True, help="model folder (manifest.json): the network")
    parser.add_argument("--state-dict", type=Path, default=None, help="plain state_dict to load (best_model.pth)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="DataLoader worker processes (default 4)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs (default cpu)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (one line per batch)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="reference: %(levelname)s: %(message)s")
    return predict(args)


if __name__ == "__main__":
    sys.exit(main())
