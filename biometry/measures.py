"""The measures of each task, from one mask or one set of points and the row's pixel spacing.

| task | input | measures |
|---|---|---|
| ``fetal_head`` | mask, all foreground | HC (ellipse perimeter, Ramanujan), BPD (minor axis), OFD (major axis) |
| ``fetal_abdomen_multi`` | mask, all foreground classes together | AC (ellipse perimeter, Ramanujan) |
| ``fetal_femur`` | points 1 and 2 | FL (distance between them) |
| ``head_symphysis_multi`` | mask, class 1 pubic symphysis, class 2 fetal head | AoP (degrees), HSD |

Geometry is done on points scaled by the spacing, so an anisotropic spacing is handled exactly;
the overlays are returned in pixel coordinates for drawing. Definitions and sources: docs/biometry.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import cv2
import numpy as np

from biometry.geometry import Ellipse, distance, far_tangent, fit_ellipse, nearest_point, principal_axis_ends
from biometry.model import MeasureError, Overlay
from biometry.regions import Region, largest_region
from biometry.spacing import Spacing

SYMPHYSIS_CLASS = 1
HEAD_CLASS = 2
#: Ellipse area / region area outside 1 +- this gives a note (the outline is not elliptical).
ELLIPSE_AREA_TOLERANCE = 0.1


@dataclass(frozen=True)
class Value:
    measure: str
    value: float
    unit: str
    overlay: Overlay


@dataclass
class Measured:
    """The values of one mask or point set, and the notes on how they were obtained."""

    values: list[Value] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _pt(p: np.ndarray) -> tuple[float, float]:
    return (round(float(p[0]), 2), round(float(p[1]), 2))


def _pts(points: np.ndarray) -> list[tuple[float, float]]:
    return [_pt(p) for p in np.asarray(points).reshape(-1, 2)]


def _segment(spacing: Spacing, p: np.ndarray, q: np.ndarray) -> Overlay:
    a, b = spacing.unscale(np.stack([p, q]))
    return Overlay("segment", _pts(np.stack([a, b])), _pt((a + b) / 2))


def _outline_ellipse(region: Region, spacing: Spacing, what: str, notes: list[str]) -> tuple[Ellipse, Overlay]:
    """The ellipse fitted to a whole outline (refused when the region touches the border)."""
    if region.touches_border:
        raise MeasureError(f"{what} touches the image border (cut off): its outline, hence the ellipse, is incomplete")
    ellipse = fit_ellipse(spacing.scale(region.contour))
    region_area = region.area * spacing.x * spacing.y
    ratio = np.pi * ellipse.a * ellipse.b / region_area
    if abs(ratio - 1.0) > ELLIPSE_AREA_TOLERANCE:
        notes.append(f"{what}: the outline is not elliptical (fitted ellipse area = {ratio:.2f} x the region's)")
    polygon = spacing.unscale(ellipse.polygon())
    top = polygon[int(np.argmin(polygon[:, 1]))]
    return ellipse, Overlay("ellipse", _pts(polygon), _pt(top))


def fetal_head(mask: np.ndarray, spacing: Spacing) -> Measured:
    """HC, BPD and OFD of the ellipse fitted to the head's outer contour."""
    region = largest_region(mask, None, "head")
    out = Measured(notes=list(region.notes))
    ellipse, overlay = _outline_ellipse(region, spacing, "the head", out.notes)
    unit = spacing.unit
    out.values += [
        Value("HC", ellipse.perimeter, unit, overlay),
        Value("BPD", 2 * ellipse.b, unit, _segment(spacing, *ellipse.minor_axis)),
        Value("OFD", 2 * ellipse.a, unit, _segment(spacing, *ellipse.major_axis)),
    ]
    return out


def fetal_abdomen(mask: np.ndarray, spacing: Spacing) -> Measured:
    """AC of the ellipse fitted to the outer contour of every foreground class together."""
    region = largest_region(mask, None, "abdomen")
    out = Measured(notes=list(region.notes))
    ellipse, overlay = _outline_ellipse(region, spacing, "the abdomen", out.notes)
    out.values.append(Value("AC", ellipse.perimeter, spacing.unit, overlay))
    return out


def fetal_femur(points: list[float], spacing: Spacing, size: tuple[int, int] | None = None) -> Measured:
    """FL: the distance between keypoints 1 and 2 (pixel coordinates, flat ``[x1, y1, x2, y2]``)."""
    flat = np.asarray(points, dtype=np.float64).reshape(-1)
    if flat.size < 4 or flat.size % 2:
        raise MeasureError(f"femur length needs two points, got {flat.size} coordinates")
    if not np.all(np.isfinite(flat)):
        raise MeasureError(f"femur points are not finite: {flat.tolist()}")
    pts = flat.reshape(-1, 2)
    out = Measured()
    if len(pts) > 2:
        out.notes.append(f"{len(pts)} points; the first two measured")
    p, q = pts[0], pts[1]
    if size is not None:
        height, width = size
        outside = [i + 1 for i, (x, y) in enumerate((p, q)) if not (0 <= x <= width and 0 <= y <= height)]
        if outside:
            out.notes.append(f"point(s) {outside} lie outside the {width}x{height} image")
    length = distance(*spacing.scale(np.stack([p, q])))
    if length == 0:
        raise MeasureError("the two femur points coincide")
    out.values.append(Value("FL", length, spacing.unit, _segment(spacing, *spacing.scale(np.stack([p, q])))))
    return out


def head_symphysis(mask: np.ndarray, spacing: Spacing) -> Measured:
    """AoP and HSD from the pubic symphysis (class 1) and the fetal head (class 2).

    The symphysis's long axis is the principal direction of its pixels, cut at its outline's
    extremes; of the two ends, the one nearer the head's outline is the inferior end. AoP: the
    angle at the inferior end between the axis (towards the superior end) and the tangent from
    the inferior end to the head's outline on its leading side (the widest of the two tangents; the
    head's convex hull is used, so a notch in the mask does not catch the line). HSD: the shortest
    distance from the inferior end to the head's outline.
    """
    symphysis = largest_region(mask, [SYMPHYSIS_CLASS], "pubic symphysis")
    head = largest_region(mask, [HEAD_CLASS], "fetal head")
    out = Measured(notes=symphysis.notes + head.notes)
    if symphysis.touches_border:
        raise MeasureError("the pubic symphysis touches the image border (cut off): its ends are unknown")
    ends = principal_axis_ends(spacing.scale(symphysis.pixel_points()), spacing.scale(symphysis.contour))
    if distance(*ends) == 0:
        raise MeasureError("the pubic symphysis has no length")
    outline = spacing.scale(head.contour)
    gaps = [nearest_point(end, outline)[0] for end in ends]
    inferior, superior = (ends[0], ends[1]) if gaps[0] <= gaps[1] else (ends[1], ends[0])
    hull_px = cv2.convexHull(head.contour.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    inferior_px = spacing.unscale(inferior)[0]
    if cv2.pointPolygonTest(hull_px.reshape(-1, 1, 2).astype(np.float32), _pt(inferior_px), False) >= 0:
        raise MeasureError("the symphysis's inferior end lies within the fetal head's (convex) outline: "
                           "the two overlap and no tangent exists")
    aop, tangent_index = far_tangent(inferior, superior, spacing.scale(hull_px))
    tangent = spacing.scale(hull_px[tangent_index])[0]
    if head.on_border(hull_px[tangent_index]):
        raise MeasureError("the tangent touches the fetal head where the head meets the image border (cut off)")
    hsd, near_index = nearest_point(inferior, outline)
    arms = spacing.unscale(np.stack([superior, inferior, tangent]))
    out.values += [
        Value("AoP", aop, "deg", Overlay("angle", _pts(arms), _pt(arms[1]))),
        Value("HSD", hsd, spacing.unit, _segment(spacing, inferior, outline[near_index])),
    ]
    return out


@dataclass(frozen=True)
class TaskMeasure:
    """How one task is measured: from its mask or from its points."""

    task_id: str
    input: Literal["mask", "points"]
    measures: tuple[str, ...]
    function: Callable[..., Measured]


TASKS: dict[str, TaskMeasure] = {t.task_id: t for t in (
    TaskMeasure("fetal_head", "mask", ("HC", "BPD", "OFD"), fetal_head),
    TaskMeasure("fetal_abdomen_multi", "mask", ("AC",), fetal_abdomen),
    TaskMeasure("fetal_femur", "points", ("FL",), fetal_femur),
    TaskMeasure("head_symphysis_multi", "mask", ("AoP", "HSD"), head_symphysis),
)}
