"""Overlays drawn with OpenCV: the prediction (and the truth, when labelled) on the image.

Colours: class c >= 1 of a mask uses ``PALETTE[(c - 1) % len(PALETTE)]`` (translucent fill +
contour); boxes and points use ``PRED_COLOUR`` for the prediction and ``TRUTH_COLOUR`` for
the ground truth. Everything is drawn on a BGR copy of the image at its native size. Titles
("prediction", "truth", the predicted class) go in a dark band ABOVE the image, never over
it, so the scanner's burnt-in text and the image's corners stay readable.
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


def draw_box(image: np.ndarray, box: Sequence[float], colour: Sequence[int]) -> None:
    thick, _ = _scale(image)
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    cv2.rectangle(image, (x1, y1), (x2, y2), _bgr(colour), thick + 1, cv2.LINE_AA)


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


def band_height(width: int) -> int:
    """Height of the title band: readable once the overlay is scaled to a thumbnail."""
    return max(22, round(width * 0.075))


def with_band(image: np.ndarray, parts: Sequence[tuple[str, Sequence[int]]]) -> np.ndarray:
    """The image below a dark band holding ``parts`` (text, RGB colour) side by side, scaled to fit."""
    height, width = band_height(image.shape[1]), image.shape[1]
    band = np.full((height, width, 3), 32, np.uint8)
    label = "  ".join(t for t, _ in parts)
    thick = max(1, height // 14)
    scale = height / 34
    text_width = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0]
    if text_width > width - 8:
        scale *= (width - 8) / text_width
    x = 4
    for words, colour in parts:
        cv2.putText(band, words, (x, round(height * 0.72)), cv2.FONT_HERSHEY_SIMPLEX, scale, _bgr(colour), thick, cv2.LINE_AA)
        x += cv2.getTextSize(words + "  ", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0]
    return np.vstack([band, image])


WHITE = (255, 255, 255)


def render(item: Item) -> np.ndarray:
    """Full-size overlay (BGR) of one row below its title band: prediction, and the truth when labelled."""
    image, problem = load_image(item.row.image_file)
    unreadable = [("image unreadable", WRONG_COLOUR)] if problem else []
    label = item.label
    if item.kind is TaskKind.SEGMENTATION:
        pred = cv2.imread(str(item.mask_file), cv2.IMREAD_GRAYSCALE) if item.mask_file and item.mask_file.is_file() else None
        left = draw_mask(image, pred, item.num_classes) if pred is not None else image.copy()
        left = with_band(left, unreadable + [("prediction", WHITE) if pred is not None else ("no prediction", WRONG_COLOUR)])
        if label is None:
            return left
        truth = cv2.imread(str(label.mask_file), cv2.IMREAD_GRAYSCALE) if label.mask_file else None
        right = draw_mask(image, truth, item.num_classes) if truth is not None else image.copy()
        right = with_band(right, [("truth", WHITE) if truth is not None else ("truth unreadable", WRONG_COLOUR)])
        gap = np.full((left.shape[0], max(4, image.shape[1] // 80), 3), 255, np.uint8)
        return np.hstack([left, gap, right])
    out = image.copy()
    pred = item.prediction
    titles: list[tuple[str, Sequence[int]]] = list(unreadable)
    if item.kind is TaskKind.DETECTION:
        if pred is not None:
            draw_box(out, pred["bbox_pixels"], PRED_COLOUR)
            titles.append(("prediction box", PRED_COLOUR))
        if label is not None:
            draw_box(out, label.box, TRUTH_COLOUR)
            titles.append(("truth box", TRUTH_COLOUR))
    elif item.kind is TaskKind.REGRESSION:
        if label is not None and pred is not None and len(label.points) == len(pred["predicted_points_pixels"]):
            thick, _ = _scale(out)
            for (px, py), (tx, ty) in zip(np.reshape(pred["predicted_points_pixels"], (-1, 2)), np.reshape(label.points, (-1, 2))):
                cv2.line(out, (int(px), int(py)), (int(tx), int(ty)), (255, 255, 255), max(1, thick // 2), cv2.LINE_AA)
        if label is not None:
            draw_points(out, label.points, TRUTH_COLOUR, cross=True)
        if pred is not None:
            draw_points(out, pred["predicted_points_pixels"], PRED_COLOUR, cross=False)
            titles.append(("prediction: dots", PRED_COLOUR))
        if label is not None:
            titles.append(("truth: crosses", TRUTH_COLOUR))
    elif pred is not None:
        cls = pred.get("predicted_class")
        probs = pred.get("predicted_probs") or []
        p = f" p={probs[cls]:.2f}" if isinstance(cls, int) and 0 <= cls < len(probs) else ""
        right = label is None or label.label == cls
        titles.append((f"prediction {cls}{p}", PRED_COLOUR if right else WRONG_COLOUR))
        if label is not None:
            titles.append((f"truth {label.label}", TRUTH_COLOUR))
    if pred is None:
        titles.append(("no prediction", WRONG_COLOUR))
    return with_band(out, titles)


def thumbnail_data_uri(image: np.ndarray, width: int, quality: int = 80) -> str:
    """A JPEG data: URI of the image scaled to ``width`` pixels (never enlarged)."""
    if image.shape[1] > width:
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")
