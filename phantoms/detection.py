"""Detection phantoms: 3 tasks, exactly one nodule per image.

The nodule polygon is drawn into the image and into the canvas label mask; the box is the tight
bounding box of that mask in native pixels, in continuous coordinates: pixel columns i..j give
x_min = i, x_max = j + 1 (likewise for rows). Nodule widths are about 12-32 % of the image width.

| task | scene | nodule |
|---|---|---|
| spinal_cord_injury_loc | thick dark cord band between bright dura lines | bright (hyperechoic) oval in the cord |
| thyroid_nodule_det | bright thyroid lobe (linear probe) | dark nodule with a darker halo |
| uterine_fibroid_det | grey uterus ellipse with a bright endometrial line | dark, whorled round fibroid with a bright rim and edge shadows |
"""

from __future__ import annotations

import numpy as np

from contract.tasks import TaskSpec
from phantoms import shapes
from phantoms.ultrasound import Canvas

PROBES = {"thyroid_nodule_det": "linear"}


def _nodule(cv: Canvas, fmin: float, fmax: float, irregular: float, within: tuple[float, float, float, float]):
    """A blob whose width is fmin..fmax of the image width, centred inside the ``within`` box."""
    rng = cv.rng
    aspect = rng.uniform(1.0, 1.4)
    width = rng.uniform(fmin, fmax) * cv.width
    r = width / (2 * aspect)
    x0, y0, x1, y1 = within
    r = min(r, 0.45 * (y1 - y0), 0.45 * (x1 - x0) / aspect)
    pts = shapes.blob(0, 0, r, rng, irregular, aspect=aspect, harmonics=3, angle_deg=rng.uniform(-15, 15))
    hx, hy = shapes.half_extent(pts)
    cx = rng.uniform(x0 + hx, max(x0 + hx, x1 - hx))
    cy = rng.uniform(y0 + hy, max(y0 + hy, y1 - hy))
    return pts + (cx, cy), (cx, cy)


def spinal_cord_injury_loc(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.4, 0.5), layers=2)
    x0, y0, x1, y1 = cv.box()
    hw = rng.uniform(0.22, 0.3) * (y1 - y0)
    yc = rng.uniform(y0 + hw + 0.05 * cv.height, y1 - hw - 0.05 * cv.height)
    xs = np.linspace(-0.05 * cv.width, 1.05 * cv.width, 40)
    ys = yc + rng.uniform(-0.04, 0.04) * cv.height * np.sin(np.pi * xs / cv.width)
    centre = np.stack([xs, ys], 1)
    cv.fill(shapes.band(centre, hw + 0.02 * cv.height), 1.8)
    cv.fill(shapes.band(centre, hw), rng.uniform(0.12, 0.2), texture=0.2)
    cv.stroke(centre, 0.01 * cv.height, 0.6)  # central canal echo
    within = (x0, yc - 0.85 * hw, x1, yc + 0.85 * hw)
    pts, _ = _nodule(cv, 0.12, 0.28, 0.12, within)
    cv.fill(pts, rng.uniform(1.5, 2.2), cls=1, texture=0.25)


def thyroid_nodule_det(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.35, 0.45), layers=2)
    x0, y0, x1, y1 = cv.box()
    cv.fill(shapes.ellipse((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 0.5, (y1 - y0) * 0.46), rng.uniform(0.85, 1.0),
            texture=0.2, texture_cells=20)
    within = (x0 + 0.12 * (x1 - x0), y0 + 0.1 * (y1 - y0), x1 - 0.12 * (x1 - x0), y1 - 0.1 * (y1 - y0))
    pts, c = _nodule(cv, 0.14, 0.32, 0.15, within)
    cv.fill(pts, 0.03)  # halo: the outer rim of the nodule
    cv.fill(shapes.scale_about(pts, c, 0.9), rng.uniform(0.1, 0.16), texture=0.25)
    cv.label(pts, 1)


def uterine_fibroid_det(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.3, 0.4), layers=1)
    x0, y0, x1, y1 = cv.box()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ax, ay = 0.48 * (x1 - x0), 0.44 * (y1 - y0)
    ang = rng.uniform(-10, 10)
    cv.fill(shapes.ellipse(cx, cy, ax, ay, ang), rng.uniform(0.8, 1.0), texture=0.2)
    cv.stroke(shapes.rotate(np.array([[cx - 0.7 * ax, cy], [cx + 0.7 * ax, cy]]), (cx, cy), ang), 0.02 * cv.height, 2.0)
    within = (cx - 0.75 * ax, cy - 0.75 * ay, cx + 0.75 * ax, cy + 0.75 * ay)
    pts, c = _nodule(cv, 0.14, 0.3, 0.08, within)
    cv.fill(pts, 1.8, shadow=0.3)
    cv.fill(shapes.scale_about(pts, c, 0.92), rng.uniform(0.15, 0.25), texture=0.45, texture_cells=24)
    cv.label(pts, 1)


RENDERERS = {
    "spinal_cord_injury_loc": spinal_cord_injury_loc,
    "thyroid_nodule_det": thyroid_nodule_det,
    "uterine_fibroid_det": uterine_fibroid_det,
}
