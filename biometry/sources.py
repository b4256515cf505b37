"""Reading what a row is measured on: a class mask file, the run's keypoint records, a row's label points.

The run's outputs are only read, never changed. Prediction masks lie at the CSV's ``mask_path``
without its leading ``../`` under the prediction folder (SPEC.md, "Output layout"); label masks at
the CSV's ``mask_path`` under the input folder. Every failure is a ``MeasureError`` naming the file.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from pydantic import ValidationError

from contract.csv_layout import output_mask_path as csv_output_mask_path
from contract.kinds import PREDICTION_FILES, RegressionRecord
from contract.tasks import OFFICIAL_TASKS

from biometry.model import MeasureError

log = logging.getLogger(__name__)

SITK_MASK_SUFFIXES = (".mha", ".mhd", ".nii", ".nii.gz", ".nrrd", ".tif", ".tiff")
#: The JSON file the femur's points are in (the file of the fetal_femur task's kind).
POINTS_FILE = PREDICTION_FILES[next(t.kind for t in OFFICIAL_TASKS if t.task_id == "fetal_femur")]


def output_mask_path(mask_path: str) -> str:
    """The CSV's ``mask_path`` with its leading ``../`` and ``./`` parts removed (where the runtime writes it)."""
    relative = csv_output_mask_path(mask_path.strip())
    if ".." in PurePosixPath(relative).parts:
        raise MeasureError(f"mask_path {mask_path!r} climbs out of the folder")
    return relative


def read_mask(path: Path) -> np.ndarray:
    """A single-channel integer class mask (PNG/BMP by OpenCV; .mha/.nii/... by SimpleITK)."""
    path = Path(path)
    if not path.is_file():
        raise MeasureError(f"mask file {path} is missing")
    if path.name.lower().endswith(SITK_MASK_SUFFIXES):
        import SimpleITK as sitk  # lazy: only medical formats need it

        try:
            mask = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        except RuntimeError as exc:
            raise MeasureError(f"mask file {path} cannot be read ({str(exc).strip().splitlines()[-1]})") from None
        if mask.ndim == 3 and mask.shape[0] == 1:
            mask = mask[0]
    else:
        data = np.fromfile(path, dtype=np.uint8)
        mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if mask is None:
            raise MeasureError(f"mask file {path} cannot be read as an image")
    if mask.ndim == 3:
        if not all(np.array_equal(mask[..., 0], mask[..., c]) for c in range(1, mask.shape[2])):
            raise MeasureError(f"mask {path} has {mask.shape[2]} differing channels; expected class indices")
        mask = mask[..., 0]
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
        raise MeasureError(f"mask {path} is not a 2D integer class mask (shape {mask.shape}, {mask.dtype})")
    return mask


class PredictionFolder:
    """A run's output folder: its masks, and its keypoint records indexed by (image_path, task_id)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._points: dict[tuple[str, str], dict] | None = None
        self._points_problem: str | None = None

    def mask_file(self, mask_path: str) -> Path:
        relative = output_mask_path(mask_path)
        if not relative:
            raise MeasureError(f"mask_path {mask_path!r} names no file")
        return self.root / relative

    def mask(self, mask_path: str) -> np.ndarray:
        return read_mask(self.mask_file(mask_path))

    def _load_points(self) -> None:
        self._points = {}
        path = self.root / POINTS_FILE
        if not path.is_file():
            self._points_problem = f"{POINTS_FILE} is missing in {self.root}"
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._points_problem = f"{path} is not readable JSON ({exc})"
            return
        if not isinstance(data, list):
            self._points_problem = f"{path} is not a JSON list of records"
            return
        for item in data:
            if not isinstance(item, dict):
                continue
            key = (item.get("image_path"), item.get("task_id"))
            if isinstance(key[0], str) and isinstance(key[1], str):
                self._points.setdefault((key[0], key[1]), item)
        log.info("%s: %d records", path, len(self._points))

    def points(self, image_path: str, task_id: str) -> list[float]:
        """``predicted_points_pixels`` of the row's record (validated as the contract's RegressionRecord)."""
        if self._points is None:
            self._load_points()
        if self._points_problem:
            raise MeasureError(self._points_problem)
        item = (self._points or {}).get((image_path, task_id))
        if item is None:
            raise MeasureError(f"no record for this image and task in {POINTS_FILE}")
        try:
            record = RegressionRecord.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise MeasureError(f"malformed record in {POINTS_FILE}: {first['loc']}: {first['msg']}") from None
        return [float(v) for v in record.predicted_points_pixels]


def label_points(cells: dict[str, str], count: int) -> list[float] | None:
    """The row's ``point_1_xy`` .. ``point_N_xy`` (JSON ``"[x, y]"``) flattened; None when it has none."""
    texts = [(cells.get(f"point_{k}_xy") or "").strip() for k in range(1, count + 1)]
    if not any(texts):
        return None
    flat: list[float] = []
    for k, text in enumerate(texts, start=1):
        try:
            value = json.loads(text) if text else None
        except json.JSONDecodeError:
            value = None
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
            raise MeasureError(f"label column point_{k}_xy={text!r} is not '[x, y]'")
        if not all(math.isfinite(v) for v in value):
            raise MeasureError(f"label column point_{k}_xy={text!r} is not finite")
        flat += [float(v) for v in value]
    return flat
