"""Write phantom samples in the FMC_UIA input layout (SPEC.md "Input layout").

```
DIR/csv_files/<task_id>.csv
DIR/Segmentation/Two/<task_id>/images/<task_id>_<idx:04d>.<png|jpg|bmp>
DIR/Segmentation/Two/<task_id>/masks/<task_id>_<idx:04d>.png
DIR/Classification/<task_id>/images/...   DIR/Detection/<task_id>/images/...   DIR/Regression/<task_id>/images/...
```

CSV columns: ``image_path, task_id, task_name, num_classes`` then, per kind, ``mask_path``
(segmentation, always), ``mask`` (classification label), ``x_min, y_min, x_max, y_max`` (detection),
``point_1_xy`` ... ``point_N_xy`` (Regression, JSON ``"[x, y]"``). Paths are relative to
``csv_files/`` and start with ``../``. Without labels the label columns are left out and no masks are
written. Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np

from contract.atomic import atomic_write_bytes
from contract.kinds import spec_of
from contract.tasks import TaskSpec
from phantoms.kinds import KIND_PHANTOMS
from phantoms.render import Sample

KIND_DIRS = {kind: table.folder for kind, table in KIND_PHANTOMS.items()}
TOP_LEVEL = ("csv_files", "Segmentation", "Classification", "Detection", "Regression")
BASE_COLUMNS = ["image_path", "task_id", "task_name", "num_classes"]
JPEG_QUALITY = 95
PNG_COMPRESSION = 1  # fast; the noise-like content compresses little anyway


def columns(task: TaskSpec, labels: bool = True) -> list[str]:
    """The CSV header of one task."""
    cols = list(BASE_COLUMNS)
    if spec_of(task.kind).writes_mask:
        cols.append("mask_path")
    if not labels:
        return cols
    return cols + KIND_PHANTOMS[task.kind].label_columns(task)


def image_relpath(task: TaskSpec, stem: str, ext: str) -> str:
    """Image path relative to the dataset root (no leading ``../``)."""
    return f"{KIND_DIRS[task.kind]}/{task.task_id}/images/{stem}{ext}"


def mask_relpath(task: TaskSpec, stem: str) -> str:
    return f"{KIND_DIRS[task.kind]}/{task.task_id}/masks/{stem}.png"


def encode_image(image: np.ndarray, ext: str) -> bytes:
    """Encode with OpenCV: JPEG at quality 95, PNG at a fast compression level, BMP as is."""
    params: list[int] = []
    if ext == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    elif ext == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise OSError(f"OpenCV could not encode an image as {ext}")
    return buf.tobytes()


def write_sample(root: Path, sample: Sample, labels: bool = True) -> dict[str, str]:
    """Write a sample's image (and mask) under ``root``; return its CSV row."""
    task = sample.task
    img_rel = image_relpath(task, sample.stem, sample.ext)
    atomic_write_bytes(root / img_rel, encode_image(sample.image, sample.ext))
    row = {"image_path": f"../{img_rel}", "task_id": task.task_id, "task_name": task.kind.value,
           "num_classes": str(task.num_classes)}
    if spec_of(task.kind).writes_mask:
        m_rel = mask_relpath(task, sample.stem)
        row["mask_path"] = f"../{m_rel}"
        if labels:
            atomic_write_bytes(root / m_rel, encode_image(sample.mask, ".png"))
    if not labels:
        return row
    row.update(KIND_PHANTOMS[task.kind].label_values(sample))
    return row


def write_csv(root: Path, task: TaskSpec, rows: list[dict[str, str]], labels: bool = True) -> Path:
    """Write ``csv_files/<task_id>.csv`` atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(task, labels), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = root / "csv_files" / f"{task.task_id}.csv"
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return path
