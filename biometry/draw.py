"""Drawing measurements on an image (OpenCV): the fitted ellipse, calipers, the AoP lines, with values.

``draw_measurements(image, measurements)`` returns a BGR copy of ``image`` with every measurement's
overlay (``Measurement.overlay``, pixel coordinates) and its value as text. The pieces are usable
alone: ``draw_ellipse``, ``draw_caliper``, ``draw_angle``, ``draw_value``.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import cv2
import numpy as np

from biometry.model import Measurement, Overlay, Point

Colour = tuple[int, int, int]
#: BGR colour of each measure.
COLOURS: dict[str, Colour] = {
    "HC": (0, 255, 255), "BPD": (255, 200, 0), "OFD": (255, 0, 255), "AC": (0, 255, 255),
    "FL": (0, 255, 0), "AoP": (0, 165, 255), "HSD": (255, 255, 0),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _style(image: np.ndarray) -> tuple[int, float]:
    """Line thickness and font scale for the image's size."""
    side = min(image.shape[:2])
    return max(1, round(side / 350)), max(0.4, side / 900)


def _ints(points: Sequence[Point] | np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(points, dtype=np.float64).reshape(-1, 2)).astype(np.int32)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A BGR uint8 copy of a grey or BGR image."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image[:, :, :3].copy()


def draw_ellipse(image: np.ndarray, polygon: Sequence[Point], colour: Colour, thickness: int = 2) -> None:
    """The fitted ellipse, as its closed polygon."""
    cv2.polylines(image, [_ints(polygon)], True, colour, thickness, cv2.LINE_AA)


def draw_caliper(image: np.ndarray, p: Point, q: Point, colour: Colour, thickness: int = 2) -> None:
    """A line between two points with a cross at each end (a caliper)."""
    a, b = _ints([p, q])
    cv2.line(image, tuple(int(v) for v in a), tuple(int(v) for v in b), colour, thickness, cv2.LINE_AA)
    size = 4 * thickness + 4
    for end in (a, b):
        cv2.drawMarker(image, (int(end[0]), int(end[1])), colour, cv2.MARKER_TILTED_CROSS, size, thickness)


def draw_angle(image: np.ndarray, arm1: Point, vertex: Point, arm2: Point, colour: Colour, thickness: int = 2,
               extend: float = 1.4, degrees: float | None = None) -> None:
    """Two arms from ``vertex`` (the second, the tangent, drawn ``extend`` times longer) and an arc between them.

    The arc goes the short way round unless ``degrees`` (the measured angle) exceeds 180.
    """
    v = np.asarray(vertex, dtype=np.float64)
    a1, a2 = np.asarray(arm1, dtype=np.float64) - v, np.asarray(arm2, dtype=np.float64) - v
    ends = _ints([v + a1, v, v + extend * a2])
    cv2.line(image, tuple(map(int, ends[1])), tuple(map(int, ends[0])), colour, thickness, cv2.LINE_AA)
    cv2.line(image, tuple(map(int, ends[1])), tuple(map(int, ends[2])), colour, thickness, cv2.LINE_AA)
    radius = 0.25 * min(np.linalg.norm(a1), np.linalg.norm(a2))
    if radius >= 2:
        t1, t2 = math.degrees(math.atan2(a1[1], a1[0])), math.degrees(math.atan2(a2[1], a2[0]))
        sweep = (t2 - t1 + 180.0) % 360.0 - 180.0  # the short way round
        if degrees is not None and degrees > 180.0:
            sweep -= math.copysign(360.0, sweep)
        arc = [v + radius * np.array([math.cos(math.radians(t)), math.sin(math.radians(t))])
               for t in np.linspace(t1, t1 + sweep, 32)]
        cv2.polylines(image, [_ints(arc)], False, colour, thickness, cv2.LINE_AA)
    cv2.circle(image, tuple(map(int, ends[1])), thickness + 2, colour, -1, cv2.LINE_AA)


def value_text(m: Measurement) -> str:
    unit = " deg" if m.unit == "deg" else f" {m.unit}"
    return f"{m.measure} {m.value:.1f}{unit}"


def draw_value(image: np.ndarray, text: str, anchor: Point, colour: Colour, line: int = 0) -> None:
    """Text on a dark box, its baseline ``line`` text lines below a point just above ``anchor`` (negative:
    above), moved inside the image."""
    thickness, scale = _style(image)
    (width, height), base = cv2.getTextSize(text, FONT, scale, thickness)
    step = height + base + 4
    x = int(min(max(anchor[0], 2), image.shape[1] - width - 2))
    y = int(min(max(anchor[1] - 8 - base + line * step, height + 2), image.shape[0] - base - 2))
    cv2.rectangle(image, (x - 2, y - height - 2), (x + width + 2, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), FONT, scale, colour, thickness, cv2.LINE_AA)


def draw_overlay(image: np.ndarray, overlay: Overlay, colour: Colour, thickness: int = 2,
                 degrees: float | None = None) -> None:
    """One overlay; ``degrees``: the measured angle of an ``angle`` overlay (for its arc)."""
    if overlay.kind == "ellipse":
        draw_ellipse(image, overlay.points, colour, thickness)
    elif overlay.kind == "segment":
        draw_caliper(image, overlay.points[0], overlay.points[1], colour, thickness)
    elif overlay.kind == "angle":
        draw_angle(image, overlay.points[0], overlay.points[1], overlay.points[2], colour, thickness,
                   degrees=degrees)
    else:
        raise ValueError(f"unknown overlay kind {overlay.kind!r}")


def draw_measurements(image: np.ndarray, measurements: Iterable[Measurement]) -> np.ndarray:
    """A BGR copy of ``image`` with each measurement's overlay and value (one image's measurements)."""
    out = as_bgr(image)
    thickness, _ = _style(out)
    items = [m for m in measurements if m.overlay is not None]
    for m in items:
        draw_overlay(out, m.overlay, COLOURS.get(m.measure, (255, 255, 255)), thickness,
                     degrees=m.value if m.unit == "deg" else None)
    first = items[0].overlay.anchor if items else (0.0, 0.0)
    for line, m in enumerate(items):  # the values stacked above the first anchor, so they do not overlap
        draw_value(out, value_text(m), first, COLOURS.get(m.measure, (255, 255, 255)), line - len(items) + 1)
    return out
