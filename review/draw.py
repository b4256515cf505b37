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
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from biometry.draw import draw_measurements
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
    return KIND_DRAWING[item.kind].render(item, image, unreadable)


Titles = list[tuple[str, Sequence[int]]]


def _render_mask(item: Item, image: np.ndarray, unreadable: Titles) -> np.ndarray:
    """Two panels: the predicted mask, and the truth's when labelled."""
    label = item.label
    pred = cv2.imread(str(item.mask_file), cv2.IMREAD_GRAYSCALE) if item.mask_file and item.mask_file.is_file() else None
    left = draw_mask(image, pred, item.num_classes) if pred is not None else image.copy()
    if item.measurements:  # the clinical measurements of the prediction (review.biometry)
        left = draw_measurements(left, item.measurements)
    left = with_band(left, unreadable + [("prediction", WHITE) if pred is not None else ("no prediction", WRONG_COLOUR)])
    if label is None:
        return left
    truth = cv2.imread(str(label.mask_file), cv2.IMREAD_GRAYSCALE) if label.mask_file else None
    right = draw_mask(image, truth, item.num_classes) if truth is not None else image.copy()
    right = with_band(right, [("truth", WHITE) if truth is not None else ("truth unreadable", WRONG_COLOUR)])
    gap = np.full((left.shape[0], max(4, image.shape[1] // 80), 3), 255, np.uint8)
    return np.hstack([left, gap, right])


def _one_panel(item: Item, out: np.ndarray, titles: Titles) -> np.ndarray:
    if item.prediction is None:
        titles.append(("no prediction", WRONG_COLOUR))
    return with_band(out, titles)


def _render_box(item: Item, image: np.ndarray, unreadable: Titles) -> np.ndarray:
    out, pred, label, titles = image.copy(), item.prediction, item.label, list(unreadable)
    if pred is not None:
        draw_box(out, pred["bbox_pixels"], PRED_COLOUR)
        titles.append(("prediction box", PRED_COLOUR))
    if label is not None:
        draw_box(out, label.box, TRUTH_COLOUR)
        titles.append(("truth box", TRUTH_COLOUR))
    return _one_panel(item, out, titles)


def _render_points(item: Item, image: np.ndarray, unreadable: Titles) -> np.ndarray:
    out, pred, label, titles = image.copy(), item.prediction, item.label, list(unreadable)
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
    if item.measurements:
        out = draw_measurements(out, item.measurements)
    return _one_panel(item, out, titles)


def _predicted_class(item: Item) -> tuple[object, str]:
    """The predicted class and its probability text (empty when unknown)."""
    cls = item.prediction.get("predicted_class")
    probs = item.prediction.get("predicted_probs") or []
    return cls, (f"{probs[cls]:.2f}" if isinstance(cls, int) and 0 <= cls < len(probs) else "")


def _render_class(item: Item, image: np.ndarray, unreadable: Titles) -> np.ndarray:
    out, label, titles = image.copy(), item.label, list(unreadable)
    if item.prediction is not None:
        cls, p = _predicted_class(item)
        right = label is None or label.label == cls
        titles.append((f"prediction {cls}{' p=' + p if p else ''}", PRED_COLOUR if right else WRONG_COLOUR))
        if label is not None:
            titles.append((f"truth {label.label}", TRUTH_COLOUR))
    return _one_panel(item, out, titles)


def _class_caption(item: Item) -> Optional[str]:
    if item.prediction is None:
        return None
    cls, p = _predicted_class(item)
    return f"pred class {cls}{f' (p={p})' if p else ''}"


def _mask_legend(num_classes: int) -> list[tuple[Sequence[int], str]]:
    return [(class_colour(c), f"class {c}") for c in range(1, num_classes)]


def _marks_legend(pred: str, truth: str) -> Callable[[int], list[tuple[Sequence[int], str]]]:
    return lambda num_classes: [(PRED_COLOUR, pred), (TRUTH_COLOUR, truth)]


@dataclass(frozen=True)
class KindDrawing:
    """How the review shows one kind: the overlay, the legend's swatches, a text caption of the prediction."""

    render: Callable[[Item, np.ndarray, Titles], np.ndarray]
    legend: Callable[[int], list[tuple[Sequence[int], str]]]  # num_classes -> [(RGB, text)]
    caption: Callable[[Item], Optional[str]] = lambda item: None
    wide: bool = False  # two panels side by side when labelled (prediction | truth)


KIND_DRAWING: dict[TaskKind, KindDrawing] = {
    TaskKind.SEGMENTATION: KindDrawing(_render_mask, _mask_legend, wide=True),
    TaskKind.CLASSIFICATION: KindDrawing(_render_class, lambda num_classes: [], _class_caption),
    TaskKind.DETECTION: KindDrawing(_render_box, _marks_legend("prediction", "truth")),
    TaskKind.REGRESSION: KindDrawing(_render_points, _marks_legend("prediction (numbered dots)",
                                                                    "truth (numbered crosses)")),
}


def thumbnail_data_uri(image: np.ndarray, width: int, quality: int = 80) -> str:
    """A JPEG data: URI of the image scaled to ``width`` pixels (never enlarged)."""
    if image.shape[1] > width:
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")
