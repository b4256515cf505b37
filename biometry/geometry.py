"""Pure geometry on contours and points (numpy and OpenCV only; no files, no masks).

Coordinates are (x, y) pairs in any unit: the measures call these functions on points
already scaled to millimetres (or left in pixels), so lengths come back in that unit.
Angles are in degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from biometry.model import MeasureError

#: Fewer contour points than this give no ellipse (OpenCV needs 5; a handful of pixels is noise).
MIN_CONTOUR_POINTS = 12
#: An ellipse whose minor / major axis ratio is below this is a line, not a head or an abdomen.
MIN_AXIS_RATIO = 0.2


@dataclass(frozen=True)
class Ellipse:
    """Centre, semi-axes (``a`` >= ``b``) and the major axis's direction (degrees from +x, towards +y)."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float

    @property
    def perimeter(self) -> float:
        return ramanujan_perimeter(self.a, self.b)

    @property
    def major_axis(self) -> tuple[np.ndarray, np.ndarray]:
        """The two ends of the major axis (the OFD caliper of a head)."""
        return self._axis(self.a, self.angle)

    @property
    def minor_axis(self) -> tuple[np.ndarray, np.ndarray]:
        """The two ends of the minor axis (the BPD caliper of a head)."""
        return self._axis(self.b, self.angle + 90.0)

    def _axis(self, half: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
        t = math.radians(angle)
        d = np.array([math.cos(t), math.sin(t)]) * half
        c = np.array([self.cx, self.cy])
        return c - d, c + d

    def polygon(self, n: int = 90) -> np.ndarray:
        """``n`` points on the ellipse, in order (n x 2)."""
        s = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
        t = math.radians(self.angle)
        x, y = self.a * np.cos(s), self.b * np.sin(s)
        return np.stack([self.cx + x * math.cos(t) - y * math.sin(t), self.cy + x * math.sin(t) + y * math.cos(t)], 1)


def ramanujan_perimeter(a: float, b: float) -> float:
    """Perimeter of an ellipse of semi-axes a, b by Ramanujan's second approximation.

    pi (a + b) (1 + 3h / (10 + sqrt(4 - 3h))), h = ((a - b) / (a + b))^2; exact for a circle; against
    numerical integration its relative error is under 1e-9 for b/a >= 0.5 (heads, abdomens) and about
    1e-6 at b/a = 0.2 (the narrowest ellipse ``fit_ellipse`` accepts).
    """
    if a < 0 or b < 0:
        raise ValueError(f"semi-axes must be non-negative, got {a}, {b}")
    if a + b == 0:
        return 0.0
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1.0 + 3.0 * h / (10.0 + math.sqrt(4.0 - 3.0 * h)))


def fit_ellipse(points: np.ndarray) -> Ellipse:
    """Least-squares ellipse (``cv2.fitEllipse``) through contour points (n x 2); MeasureError if degenerate."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) < MIN_CONTOUR_POINTS:
        raise MeasureError(f"too few contour points for an ellipse ({len(pts)} < {MIN_CONTOUR_POINTS})")
    # fit about the centroid: float32 keeps ~7 digits, so large coordinates lose precision otherwise
    origin = pts.mean(axis=0)
    try:
        (cx, cy), (w, h), angle = cv2.fitEllipse((pts - origin).astype(np.float32))
    except cv2.error as exc:
        raise MeasureError(f"no ellipse fits the contour ({str(exc).strip().splitlines()[-1]})") from None
    values = (cx, cy, w, h, angle)
    if not all(math.isfinite(v) for v in values) or min(w, h) <= 0:
        raise MeasureError(f"degenerate ellipse (axes {w:.3g} x {h:.3g})")
    if w >= h:  # OpenCV: the first size is along ``angle``
        a, b, major = w / 2.0, h / 2.0, angle
    else:
        a, b, major = h / 2.0, w / 2.0, angle + 90.0
    if b / a < MIN_AXIS_RATIO:
        raise MeasureError(f"degenerate ellipse: axis ratio {b / a:.3f} < {MIN_AXIS_RATIO} (a line, not an outline)")
    extent = np.ptp(pts, axis=0).max()
    if a > 2.0 * max(extent, 1e-9):
        raise MeasureError(f"degenerate ellipse: major axis {2 * a:.3g} is far beyond "
                           f"the contour's extent {extent:.3g}")
    return Ellipse(float(cx + origin[0]), float(cy + origin[1]), float(a), float(b), float(major % 180.0))


def polygon_area(points: np.ndarray) -> float:
    """Area enclosed by a closed polygon (shoelace), in the square of the points' unit."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def principal_axis_ends(region_points: np.ndarray, outline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The long axis of a region: the principal direction of its points, cut at the outline's extremes.

    ``region_points``: the region's pixel centres (n x 2); ``outline``: its contour. Returns the two
    ends, each on the axis through the centroid, at the smallest and the largest projection of the outline.
    """
    pts = np.asarray(region_points, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3:
        raise MeasureError(f"too few pixels for an axis ({len(pts)})")
    centre = pts.mean(axis=0)
    cov = np.cov((pts - centre).T)
    values, vectors = np.linalg.eigh(cov)
    if not np.all(np.isfinite(values)) or values[-1] <= 0:
        raise MeasureError("the region has no direction (a single point)")
    direction = vectors[:, -1]
    t = (np.asarray(outline, dtype=np.float64).reshape(-1, 2) - centre) @ direction
    return centre + t.min() * direction, centre + t.max() * direction


def angle_between(u: np.ndarray, v: np.ndarray) -> float:
    """Unsigned angle between two vectors, degrees in [0, 180]."""
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu == 0 or nv == 0:
        raise MeasureError("an angle needs two non-zero directions")
    cos = float(np.dot(u, v)) / (nu * nv)
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def far_tangent(vertex: np.ndarray, reference: np.ndarray, contour: np.ndarray) -> tuple[float, int]:
    """The tangent from ``vertex`` to a contour on the side away from ``reference``, and its angle.

    Seen from ``vertex``, a contour that does not enclose it spans a fan of directions between its two
    tangents. The angle is measured from the ray ``vertex -> reference``, turning towards the contour and
    on past it to the far tangent: the angle to the contour's centroid plus the largest further turn
    of a contour point (so it may exceed 180 degrees). Returns (angle in degrees, index of the tangent point).
    """
    pts = np.asarray(contour, dtype=np.float64).reshape(-1, 2)
    vertex = np.asarray(vertex, dtype=np.float64)
    u = np.asarray(reference, dtype=np.float64) - vertex
    rays = pts - vertex
    c = pts.mean(axis=0) - vertex
    if np.linalg.norm(u) == 0 or np.linalg.norm(c) == 0 or np.any(np.linalg.norm(rays, axis=1) == 0):
        raise MeasureError("the symphysis's end lies on the head's outline")
    turn = 1.0 if u[0] * c[1] - u[1] * c[0] >= 0 else -1.0  # the sense in which u turns towards the contour
    further = np.degrees(np.arctan2(turn * (c[0] * rays[:, 1] - c[1] * rays[:, 0]), rays @ c))
    index = int(np.argmax(further))
    return angle_between(u, c) + float(further[index]), index


def nearest_point(point: np.ndarray, contour: np.ndarray) -> tuple[float, int]:
    """Distance from ``point`` to the closest contour point, and that point's index."""
    pts = np.asarray(contour, dtype=np.float64).reshape(-1, 2)
    d = np.linalg.norm(pts - np.asarray(point, dtype=np.float64), axis=1)
    index = int(np.argmin(d))
    return float(d[index]), index


def distance(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64)))
