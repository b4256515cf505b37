"""Regression (keypoint) phantoms: 3 tasks. Points are in native pixels, in a fixed order.

| task | structure | points |
|---|---|---|
| fetal_femur | bright bar (within 35 deg of horizontal) with a strong acoustic shadow | 1 left tip, 2 right tip |
| FUGC | grey cervix band with a bright canal line ending in two bright round os echoes | 1 left os centre, 2 right os centre |
| IUGC | bright pubic symphysis (upper left) and a fetal skull ring (lower right) | 1 upper-left symphysis tip, 2 lower-right symphysis tip, 3 head centre |
"""

from __future__ import annotations

import numpy as np

from contract.tasks import TaskSpec
from phantoms import shapes
from phantoms.ultrasound import Canvas

PROBES: dict[str, str] = {}

Point = tuple[float, float]


def _ordered(p0: Point, p1: Point) -> list[Point]:
    return [p0, p1] if (p0[0], p0[1]) <= (p1[0], p1[1]) else [p1, p0]


def fetal_femur(cv: Canvas, spec: TaskSpec, label: int) -> list[Point]:
    rng = cv.rng
    cv.background(rng.uniform(0.35, 0.5), layers=2)
    u = cv.unit
    length = rng.uniform(0.55, 0.9) * u
    hw = rng.uniform(0.035, 0.05) * u
    ang = rng.uniform(-35, 35)
    probe = shapes.rotate(shapes.capsule((-length / 2, 0), (length / 2, 0), hw), (0, 0), ang)
    cx, cy = cv.place(*shapes.half_extent(probe), fy=(0.0, 0.7))
    p0, p1 = shapes.polar((cx, cy), length / 2, ang + 180), shapes.polar((cx, cy), length / 2, ang)
    # soft tissue of the thigh around the bone
    cv.fill(shapes.capsule(shapes.polar(p0, 0.1 * u, ang + 180), shapes.polar(p1, 0.1 * u, ang), 0.14 * u), 0.7,
            texture=0.25)
    cv.fill(shapes.capsule(p0, p1, hw), rng.uniform(2.4, 3.0), shadow=0.85)
    return _ordered(p0, p1)


def FUGC(cv: Canvas, spec: TaskSpec, label: int) -> list[Point]:
    rng = cv.rng
    cv.background(rng.uniform(0.25, 0.35), layers=1)
    u = cv.unit
    length = rng.uniform(0.55, 0.8) * u
    ang = rng.uniform(-30, 30)
    bulge = rng.uniform(-0.1, 0.1) * length
    canal = shapes.rotate(shapes.arc_curve((-length / 2, 0), (length / 2, 0), bulge), (0, 0), ang)
    hw = 0.16 * u
    hx, hy = shapes.half_extent(canal)
    cx, cy = cv.place(hx + hw, hy + hw)
    canal = canal + (cx, cy)
    head = np.linspace(shapes.polar(tuple(canal[0]), 0.12 * u, ang + 180), canal[0], 8)[:-1]
    tail = np.linspace(canal[-1], shapes.polar(tuple(canal[-1]), 0.12 * u, ang), 8)[1:]
    ext = np.concatenate([head, canal, tail])
    taper = hw * np.sqrt(np.sin(np.linspace(0.1, np.pi - 0.1, len(ext))))
    cv.fill(shapes.band(ext, taper), rng.uniform(0.7, 0.9), texture=0.3)
    cv.stroke(canal, 0.025 * u, 2.2)
    r = 0.045 * u
    for p in (canal[0], canal[-1]):
        cv.fill(shapes.ellipse(p[0], p[1], r, r), 2.8)
    return _ordered((float(canal[0, 0]), float(canal[0, 1])), (float(canal[-1, 0]), float(canal[-1, 1])))


def IUGC(cv: Canvas, spec: TaskSpec, label: int) -> list[Point]:
    rng = cv.rng
    cv.background(rng.uniform(0.35, 0.5), layers=1)
    x0, y0, x1, y1 = cv.box()
    u = cv.unit
    ay = rng.uniform(0.26, 0.32) * u
    ax = ay * rng.uniform(1.1, 1.25)
    ang = rng.uniform(-25, 25)
    hx, hy = shapes.half_extent(shapes.ellipse(0, 0, ax, ay, ang))
    cx, cy = cv.place(hx, hy, fx=(0.75, 1.0), fy=(0.55, 1.0))
    t = 0.08 * ay
    cv.fill(shapes.ellipse(cx, cy, ax, ay, ang), rng.uniform(2.2, 2.8), shadow=0.25)
    cv.fill(shapes.ellipse(cx, cy, ax - t, ay - t, ang), 0.22, texture=0.3)
    length = rng.uniform(0.38, 0.46) * u
    sang = rng.uniform(20, 45)
    sx = rng.uniform(x0 + 0.5 * length, max(x0 + 0.5 * length, min(cx - hx - 0.4 * length, x0 + 1.0 * length)))
    sy = rng.uniform(y0 + 0.4 * length, y0 + 0.8 * length)
    p0, p1 = shapes.polar((sx, sy), length / 2, sang + 180), shapes.polar((sx, sy), length / 2, sang)
    cv.fill(shapes.capsule(p0, p1, 0.06 * u), rng.uniform(2.0, 2.6), shadow=0.5, texture=0.15)
    a, b = _ordered(p0, p1)
    return [a, b, (cx, cy)]


RENDERERS = {"FUGC": FUGC, "IUGC": IUGC, "fetal_femur": fetal_femur}
