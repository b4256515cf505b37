"""Polygon geometry in native pixel coordinates (float arrays of shape (N, 2), columns x, y).

Every structure of a phantom is a polygon, so the image (drawn at a working resolution) and the
ground truth (drawn at the native resolution) come from one geometry.
"""

from __future__ import annotations

import numpy as np

Points = np.ndarray


def ellipse(cx: float, cy: float, ax: float, ay: float, angle_deg: float = 0.0, n: int = 72) -> Points:
    """Ellipse with semi-axes ``ax`` (along ``angle_deg``) and ``ay``, rotated about its centre."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return rotate(np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1), (cx, cy), angle_deg)


def blob(
    cx: float,
    cy: float,
    r: float,
    rng: np.random.Generator,
    irregularity: float = 0.15,
    aspect: float = 1.0,
    angle_deg: float = 0.0,
    harmonics: int = 4,
    n: int = 96,
) -> Points:
    """A smooth random closed shape: a circle whose radius is modulated by a few low harmonics."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    radius = np.ones_like(t)
    for k in range(2, 2 + harmonics):
        amp = irregularity * rng.uniform(0.3, 1.0) / (k - 1) ** 0.7
        radius += amp * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    radius = np.clip(radius, 0.55, None) * r
    pts = np.stack([cx + radius * np.cos(t) * aspect, cy + radius * np.sin(t)], axis=1)
    return rotate(pts, (cx, cy), angle_deg)


def star(
    cx: float, cy: float, r: float, spikes: int, depth: float, rng: np.random.Generator, angle_deg: float = 0.0
) -> Points:
    """A spiculated shape: ``spikes`` sharp points reaching ``r``, valleys at ``r * (1 - depth)``."""
    n = spikes * 2
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False) + rng.uniform(-0.12, 0.12, n)
    radius = np.where(np.arange(n) % 2 == 0, r * rng.uniform(0.85, 1.0, n), r * (1 - depth) * rng.uniform(0.9, 1.1, n))
    pts = np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)
    return rotate(pts, (cx, cy), angle_deg)


def capsule(p0: tuple[float, float], p1: tuple[float, float], half_width: float, n: int = 12) -> Points:
    """A bar with rounded ends whose extreme tips are exactly ``p0`` and ``p1``."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    d = b - a
    length = float(np.hypot(*d))
    u = d / max(length, 1e-6)
    hw = min(half_width, length / 2)
    c0, c1 = a + u * hw, b - u * hw
    base = np.arctan2(u[1], u[0])
    t0 = base + np.linspace(np.pi / 2, 3 * np.pi / 2, n)
    t1 = base + np.linspace(-np.pi / 2, np.pi / 2, n)
    cap0 = c0 + hw * np.stack([np.cos(t0), np.sin(t0)], axis=1)
    cap1 = c1 + hw * np.stack([np.cos(t1), np.sin(t1)], axis=1)
    return np.concatenate([cap1, cap0], axis=0)


def band(centre: Points, half_width: np.ndarray | float) -> Points:
    """A closed band of the given half width around an open polyline ``centre``."""
    c = np.asarray(centre, float)
    tangent = np.gradient(c, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    hw = np.broadcast_to(np.asarray(half_width, float), (len(c),))[:, None]
    return np.concatenate([c + normal * hw, (c - normal * hw)[::-1]], axis=0)


def arc_curve(p0: tuple[float, float], p1: tuple[float, float], bulge: float, n: int = 48) -> Points:
    """A smooth open curve from ``p0`` to ``p1`` bowed sideways by ``bulge`` pixels at its middle."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    t = np.linspace(0.0, 1.0, n)[:, None]
    d = b - a
    normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)
    return a + t * d + normal * bulge * np.sin(np.pi * t)


def rotate(pts: Points, centre: tuple[float, float], angle_deg: float) -> Points:
    """Rotate points about ``centre`` by ``angle_deg`` (image coordinates: y down, so clockwise on screen)."""
    if angle_deg == 0.0:
        return np.asarray(pts, float)
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    p = np.asarray(pts, float) - centre
    return np.stack([p[:, 0] * c - p[:, 1] * s, p[:, 0] * s + p[:, 1] * c], axis=1) + centre


def scale_about(pts: Points, centre: tuple[float, float], factor: float) -> Points:
    """Shrink or grow a polygon about a point."""
    c = np.asarray(centre, float)
    return (np.asarray(pts, float) - c) * factor + c


def half_extent(pts: Points) -> tuple[float, float]:
    """Half width and half height of a polygon's bounding box."""
    p = np.asarray(pts, float)
    return float(np.ptp(p[:, 0]) / 2), float(np.ptp(p[:, 1]) / 2)


def polar(centre: tuple[float, float], radius: float, angle_deg: float) -> tuple[float, float]:
    """The point at ``radius`` from ``centre`` in direction ``angle_deg`` (0 = right, 90 = down)."""
    a = np.deg2rad(angle_deg)
    return centre[0] + radius * float(np.cos(a)), centre[1] + radius * float(np.sin(a))
