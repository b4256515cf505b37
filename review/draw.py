"""Overlays drawn with OpenCV: the prediction (and the truth, when labelled) on the image.

Colours: class c >= 1 of a mask uses ``PALETTE[(c - 1) % len(PALETTE)]`` (translucent fill +
contour); boxes and points use ``PRED_COLOUR`` for the prediction and ``TRUTH_COLOUR`` for
the ground truth. Everything is drawn on a BGR copy of the image at its native size.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from contract.imaging import ImageReadError, read_image
from contract.tasks import TaskKind
from review.collect import Item

# RGB, distinct on grey ultrasound
PALETTE = [(255, 64, 64), (64, 220, 64), (64, 160, 255), (255, 220, 0), (255, 0, 255), (0, 230, 230),
           (255, 140, 0), (170, 110, 255)]
PRED_COLOUR = (255, 140, 0)
TRUTH_COLOUR = (40, 230, 40)
WRONG_COLOUR = (255, 60, 60)


def _bgr(rgb: Sequence[int]) -> tuple[int, int, int]:
    return int(rgb[2]), int(rgb[1]), int(rgb[0])


def class_colour(c: int) -> tuple[int, int, int]:
    """RGB colour of mask class c (c >= 1)."""
    return PALETTE[(c - 1) % len(PALETTE)]


def hex_colour(rgb: Sequence[int]) -> str:
    return "#%02x%02x%02x" % tuple(int(v) for v in rgb)


def _scale(image: np.ndarray) -> tuple[int, float]:
    side = min(image.shape[:2])
    return max(1, round(side / 160)), max(0.4, side / 500)


def load_image(path: Path) -> tuple[np.ndarray, Optional[str]]:
    """The image as BGR uint8, or a grey placeholder and the reason it could not be read."""
    try:
        return cv2.cvtColor(read_image(path), cv2.COLOR_RGB2BGR), None
    except ImageReadError as exc:
        return np.full((240, 320, 3), 96, np.uint8), str(exc)


def text(image: np.ndarray, label: str, org: tuple[int, int], colour: Sequence[int], scale: float = 0.0) -> None:
    """Text with a dark outline so it reads on any background."""
    thick, default = _scale(image)
    scale = scale or default
    cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, _bgr(colour), thick, cv2.LINE_AA)


def draw_mask(image: np.ndarray, mask: np.ndarray, num_classes: int, alpha: float = 0.35) -> np.ndarray:
    out = image.copy()
    if mask.shape[:2] != image.shape[:2]:
        mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    thick, _ = _scale(image)
    for c in range(1, max(num_classes, int(mask.max()) + 1)):
        region = (mask == c).astype(np.uint8)
        if not region.any():
            continue
        colour = np.array(_bgr(class_colour(c)), np.float32)
        out[region > 0] = ((1 - alpha) * out[region > 0] + alpha * colour).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, _bgr(class_colour(c)), thick, cv2.LINE_AA)
    return out


def draw_box(image: np.ndarray, box: Sequence[float], colour: Sequence[int], label: str) -> None:
    thick, _ = _scale(image)
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    cv2.rectangle(image, (x1, y1), (x2, y2), _bgr(colour), thick + 1, cv2.LINE_AA)
    text(image, label, (min(x1, x2), max(12, min(y1, y2) - 4)), colour)


def draw_points(image: np.ndarray, flat: Sequence[float], colour: Sequence[int], cross: bool) -> None:
    thick, scale = _scale(image)
    radius = 2 * thick + 2
    points = np.asarray(flat, dtype=float).reshape(-1, 2)
    for k, (x, y) in enumerate(points, start=1):
        centre = (int(round(x)), int(round(y)))
        if cross:
            cv2.drawMarker(image, centre, _bgr(colour), cv2.MARKER_CROSS, 3 * radius, thick + 1, cv2.LINE_AA)
        else:
            cv2.circle(image, centre, radius, _bgr(colour), -1, cv2.LINE_AA)
        text(image, str(k), (centre[0] + radius + 1, centre[1] - radius), colour, scale * 0.9)


def _titled(image: np.ndarray, title: str) -> np.ndarray:
    out = image.copy()
    text(out, title, (6, 6 + int(24 * _scale(image)[1])), (255, 255, 255))
    return out


def render(item: Item) -> np.ndarray:
    """Full-size overlay (BGR) of one row: prediction, and the truth when the row is labelled."""
    image, problem = load_image(item.row.image_file)
    label = item.label
    if problem:
        text(image, "image unreadable", (10, 40), WRONG_COLOUR)
    if item.kind is TaskKind.SEGMENTATION:
        pred = cv2.imread(str(item.mask_file), cv2.IMREAD_GRAYSCALE) if item.mask_file and item.mask_file.is_file() else None
        left = draw_mask(image, pred, item.num_classes) if pred is not None else image.copy()
        left = _titled(left, "prediction" if pred is not None else "no prediction")
        if label is None:
            return left
        truth = cv2.imread(str(label.mask_file), cv2.IMREAD_GRAYSCALE) if label.mask_file else None
        right = draw_mask(image, truth, item.num_classes) if truth is not None else image.copy()
        gap = np.full((image.shape[0], max(4, image.shape[1] // 80), 3), 255, np.uint8)
        return np.hstack([left, gap, _titled(right, "truth" if truth is not None else "truth unreadable")])
    out = image.copy()
    pred = item.prediction
    if item.kind is TaskKind.DETECTION:
        if label is not None:
            draw_box(out, label.box, TRUTH_COLOUR, "truth")
        if pred is not None:
            draw_box(out, pred["bbox_pixels"], PRED_COLOUR, "pred")
    elif item.kind is TaskKind.REGRESSION:
        if label is not None and pred is not None and len(label.points) == len(pred["predicted_points_pixels"]):
            thick, _ = _scale(out)
            for (px, py), (tx, ty) in zip(np.reshape(pred["predicted_points_pixels"], (-1, 2)), np.reshape(label.points, (-1, 2))):
                cv2.line(out, (int(px), int(py)), (int(tx), int(ty)), (255, 255, 255), max(1, thick // 2), cv2.LINE_AA)
        if label is not None:
            draw_points(out, label.points, TRUTH_COLOUR, cross=True)
        if pred is not None:
            draw_points(out, pred["predicted_points_pixels"], PRED_COLOUR, cross=False)
    elif pred is not None:
        cls = pred.get("predicted_class")
        probs = pred.get("predicted_probs") or []
        p = f" p={probs[cls]:.2f}" if isinstance(cls, int) and 0 <= cls < len(probs) else ""
        right = label is None or label.label == cls
        text(out, f"pred {cls}{p}", (8, 8 + int(26 * _scale(out)[1])), PRED_COLOUR if right else WRONG_COLOUR)
        if label is not None:
            text(out, f"truth {label.label}", (8, 16 + int(56 * _scale(out)[1])), TRUTH_COLOUR)
    if pred is None:
        text(out, "no prediction", (8, 8 + int(26 * _scale(out)[1])), WRONG_COLOUR)
    return out


def thumbnail_data_uri(image: np.ndarray, width: int, quality: int = 80) -> str:
    """A JPEG data: URI of the image scaled to ``width`` pixels (never enlarged)."""
    if image.shape[1] > width:
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")
