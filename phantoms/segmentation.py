"""Segmentation phantoms: 12 tasks. The mask is drawn from the same polygons as the image.

Class assignment (0 is always background):

| task | classes |
|---|---|
| fetal_head | 1 head: the filled skull ellipse (outer edge of the bright ring) |
| head_symphysis_multi | 1 pubic symphysis (bright elongated blob, upper left), 2 fetal head (filled ellipse, lower right) |
| breast_lesion, ovary_tumor, thyroid_nodule | 1 the dark lesion (smooth random blob) |
| cardiac_multi | 1 large elongated chamber (LV), 2 round chamber below it (LA), 3 narrower chamber beside it (RV); interiors only |
| carotid_artery | 1 lumen of the dark tube (between the bright walls), clipped to the field of view |
| cervix | 1 cervix body (bright textured curved band with a brighter canal line) |
| cervix_multi | 1 anterior lip (upper half, bright), 2 posterior lip (lower half, mid grey, coarse) |
| fetal_abdomen_multi | 1 abdomen (rest of the disc), 2 stomach (black oval), 3 spine (bright blob), 4 umbilical vein (dark band) |
| fetal_heart | 1 heart (disc with four dark chambers and a bright septal cross) inside the thorax |
| lung | 1 consolidation (tissue-like region with bright dots) under the bright pleural line |
"""

from __future__ import annotations

import numpy as np

from contract.tasks import TaskSpec
from phantoms import shapes
from phantoms.ultrasound import Canvas

PROBES = {"breast_lesion": "linear", "thyroid_nodule": "linear", "carotid_artery": "linear", "lung": "linear"}


def _skull(cv: Canvas, cx: float, cy: float, ax: float, ay: float, ang: float, cls: int | None) -> None:
    """A bright elliptical skull ring with a hypoechoic brain and a midline echo."""
    rng = cv.rng
    t = rng.uniform(0.06, 0.09) * min(ax, ay)
    cv.fill(shapes.ellipse(cx, cy, ax, ay, ang), rng.uniform(2.2, 3.0), cls=cls, shadow=0.25)
    cv.fill(shapes.ellipse(cx, cy, ax - t, ay - t, ang), rng.uniform(0.18, 0.3), texture=0.35)
    mid = shapes.rotate(np.array([[cx - 0.8 * ax, cy], [cx + 0.8 * ax, cy]]), (cx, cy), ang)
    cv.stroke(mid, 0.025 * ay, 0.9)
    for side in (-1, 1):  # thalami: mild dark ovals either side of the midline
        c = shapes.rotate(np.array([[cx + 0.1 * ax, cy + side * 0.22 * ay]]), (cx, cy), ang)[0]
        cv.fill(shapes.ellipse(c[0], c[1], 0.2 * ax, 0.12 * ay, ang), 0.1)


def fetal_head(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.4, 0.55), layers=2)
    ay = rng.uniform(0.28, 0.4) * cv.unit
    ax = ay * rng.uniform(1.15, 1.4)
    ang = rng.uniform(-35, 35)
    outer = shapes.ellipse(0, 0, ax, ay, ang)
    cx, cy = cv.place(*shapes.half_extent(outer))
    _skull(cv, cx, cy, ax, ay, ang, cls=1)


def head_symphysis_multi(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.4, 0.55), layers=1)
    x0, y0, x1, y1 = cv.box()
    ay = rng.uniform(0.26, 0.34) * cv.unit
    ax = ay * rng.uniform(1.1, 1.3)
    ang = rng.uniform(-30, 30)
    hx, hy = shapes.half_extent(shapes.ellipse(0, 0, ax, ay, ang))
    cx, cy = cv.place(hx, hy, fx=(0.75, 1.0), fy=(0.5, 1.0))
    _skull(cv, cx, cy, ax, ay, ang, cls=2)
    length = rng.uniform(0.38, 0.46) * cv.unit
    sx = rng.uniform(x0 + 0.6 * length, max(x0 + 0.6 * length, min(cx - hx - 0.5 * length, x0 + 1.2 * length)))
    sy = rng.uniform(y0 + 0.35 * length, y0 + 0.9 * length)
    sym = shapes.blob(sx, sy, length / 2, rng, 0.06, aspect=1.0, harmonics=2)
    sym = shapes.rotate((sym - (sx, sy)) * (1.0, 0.45) + (sx, sy), (sx, sy), rng.uniform(15, 40))
    cv.fill(sym, rng.uniform(1.8, 2.6), cls=1, shadow=0.5, texture=0.2)


def _lesion(cv: Canvas, rmin: float, rmax: float, level: float, irregular: float, **kw) -> np.ndarray:
    rng = cv.rng
    r = rng.uniform(rmin, rmax) * cv.unit
    pts = shapes.blob(0, 0, r, rng, irregular, aspect=rng.uniform(1.0, 1.5), angle_deg=rng.uniform(-20, 20))
    cx, cy = cv.place(*shapes.half_extent(pts))
    pts = pts + (cx, cy)
    cv.fill(pts, level, cls=1, texture=0.25, **kw)
    return pts


def breast_lesion(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.45, 0.6), variation=0.35, cells=7, layers=3)
    x0, y0, x1, y1 = cv.box()
    skin = np.array([[0, y0 - 0.02 * cv.height], [cv.width, y0 - 0.02 * cv.height]])
    cv.stroke(skin, 0.012 * cv.height, 1.6)
    _lesion(cv, 0.16, 0.3, rng.uniform(0.05, 0.1), 0.22, shadow=rng.choice([0.0, 0.35]))


def ovary_tumor(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.4, 0.55), variation=0.3, layers=2)
    r = rng.uniform(0.36, 0.44) * cv.unit
    cx, cy = cv.place(r * 1.2, r)
    cv.fill(shapes.blob(cx, cy, r, rng, 0.1, aspect=1.2), 0.9, texture=0.3)  # ovarian stroma
    inner = shapes.blob(cx, cy, r * rng.uniform(0.65, 0.78), rng, 0.18, aspect=1.15)
    cv.fill(inner, rng.uniform(0.02, 0.06), cls=1, enhance=0.5, texture=0.3)


def thyroid_nodule(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.35, 0.45), layers=2)
    x0, y0, x1, y1 = cv.box()
    lobe = shapes.ellipse((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 0.48, (y1 - y0) * 0.45)
    cv.fill(lobe, rng.uniform(0.8, 1.0), texture=0.2, texture_cells=20)
    pts = _lesion(cv, 0.15, 0.27, rng.uniform(0.08, 0.14), 0.15)
    c = pts.mean(axis=0)
    cv.stroke(shapes.scale_about(pts, tuple(c), 1.04), 0.01 * cv.unit, 0.05, closed=True)  # dark halo


def cardiac_multi(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.25, 0.35), layers=0)
    u = cv.unit * 1.2
    cx, cy = cv.place(0.38 * u, 0.42 * u)
    ang = rng.uniform(-12, 12)
    chambers = [  # (class, centre offset, semi-axes)
        (1, (0.14 * u, -0.12 * u), (0.13 * u, 0.22 * u)),
        (2, (0.12 * u, 0.27 * u), (0.14 * u, 0.11 * u)),
        (3, (-0.17 * u, -0.06 * u), (0.09 * u, 0.2 * u)),
    ]
    wall = 0.045 * u
    for _, (ox, oy), (ax, ay) in chambers:
        p = shapes.rotate(np.array([[cx + ox, cy + oy]]), (cx, cy), ang)[0]
        cv.fill(shapes.ellipse(p[0], p[1], ax + wall, ay + wall, ang), rng.uniform(1.1, 1.5), texture=0.2)
    for cls, (ox, oy), (ax, ay) in chambers:
        p = shapes.rotate(np.array([[cx + ox, cy + oy]]), (cx, cy), ang)[0]
        cv.fill(shapes.ellipse(p[0], p[1], ax, ay, ang, n=64), rng.uniform(0.02, 0.05), cls=cls)


def carotid_artery(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.45, 0.6), layers=3)
    x0, y0, x1, y1 = cv.box()
    hw = rng.uniform(0.06, 0.09) * (y1 - y0)
    yc = rng.uniform(y0 + 0.25 * (y1 - y0), y1 - 0.35 * (y1 - y0))
    xs = np.linspace(-0.05 * cv.width, 1.05 * cv.width, 60)
    ys = yc + rng.uniform(-0.06, 0.06) * cv.height * np.sin(np.pi * xs / cv.width + rng.uniform(0, 1)) + rng.uniform(
        -0.08, 0.08
    ) * (xs - cv.width / 2)
    centre = np.stack([xs, ys], 1)
    cv.fill(shapes.band(centre, hw + 0.018 * cv.height), rng.uniform(1.6, 2.2))
    cv.fill(shapes.band(centre, hw), rng.uniform(0.02, 0.05), cls=1, enhance=0.3)
    cv.mask *= cv.field_mask()


def _cervix_centre(cv: Canvas) -> tuple[np.ndarray, float]:
    rng = cv.rng
    u = cv.unit
    length = rng.uniform(0.8, 1.0) * u
    hw = rng.uniform(0.2, 0.24) * u
    ang = rng.uniform(-25, 25)
    bulge = rng.uniform(-0.12, 0.12) * length
    probe = shapes.rotate(shapes.arc_curve((-length / 2, 0), (length / 2, 0), bulge), (0, 0), ang)
    hx, hy = shapes.half_extent(probe)
    cx, cy = cv.place(hx + hw, hy + hw)
    return probe - probe.mean(axis=0) + (cx, cy), hw


def cervix(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.25, 0.35), layers=1)
    centre, hw = _cervix_centre(cv)
    cv.fill(shapes.band(centre, hw * np.sqrt(np.sin(np.linspace(0.15, np.pi - 0.15, len(centre))))), 1.0,
            cls=1, texture=0.3)
    cv.stroke(centre[4:-4], 0.03 * cv.unit, 2.2)


def cervix_multi(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.45, 0.55), layers=1)
    centre, hw = _cervix_centre(cv)
    prof = hw * np.sqrt(np.sin(np.linspace(0.15, np.pi - 0.15, len(centre))))
    full = shapes.band(centre, prof)
    n = len(centre)
    upper, lower = full[:n], full[n:][::-1]
    if upper[:, 1].mean() > lower[:, 1].mean():
        upper, lower = lower, upper
    cv.fill(np.concatenate([upper, centre[::-1]]), rng.uniform(1.6, 2.0), cls=1, texture=0.15, texture_cells=20)
    cv.fill(np.concatenate([lower, centre[::-1]]), rng.uniform(0.1, 0.16), cls=2, texture=0.5, texture_cells=10)
    cv.stroke(centre[3:-3], 0.02 * cv.unit, 2.5)


def fetal_abdomen_multi(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.25, 0.35), layers=1)
    r = rng.uniform(0.38, 0.46) * cv.unit
    cx, cy = cv.place(r * 1.1, r)
    ang = rng.uniform(-50, 50)
    disc = shapes.blob(cx, cy, r, rng, 0.04, aspect=rng.uniform(1.0, 1.1), harmonics=2)
    cv.fill(shapes.scale_about(disc, (cx, cy), 1.05), 1.5)  # skin line
    cv.fill(disc, rng.uniform(0.55, 0.7), cls=1, texture=0.2)

    def at(ox: float, oy: float) -> tuple[float, float]:
        p = shapes.rotate(np.array([[cx + ox * r, cy + oy * r]]), (cx, cy), ang)[0]
        return float(p[0]), float(p[1])

    sx, sy = at(-0.3, -0.05)
    cv.fill(shapes.ellipse(sx, sy, 0.3 * r, 0.22 * r, ang + rng.uniform(-20, 20)), 0.02, cls=2, enhance=0.3)
    px, py = at(0.05, 0.62)
    cv.fill(shapes.blob(px, py, 0.22 * r, rng, 0.08), rng.uniform(2.2, 3.0), cls=3, shadow=0.6)
    uv = shapes.arc_curve(at(0.62, -0.5), at(0.15, 0.1), rng.choice([-1, 1]) * rng.uniform(0.08, 0.15) * r, n=24)
    cv.fill(shapes.band(uv, 0.1 * r * np.sqrt(np.sin(np.linspace(0.2, np.pi - 0.2, 24)))), 0.05, cls=4)


def fetal_heart(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.25, 0.35), layers=1)
    r = rng.uniform(0.4, 0.46) * cv.unit
    cx, cy = cv.place(r, r)
    cv.fill(shapes.ellipse(cx, cy, r * 1.04, r * 0.99), 1.6)  # skin line
    cv.fill(shapes.ellipse(cx, cy, r, r * 0.95), rng.uniform(0.6, 0.75), texture=0.2)  # thorax
    for a in rng.uniform(0, 360, 1) + np.array([0, 120, 240]):  # ribs
        c = shapes.polar((cx, cy), r * 0.9, a)
        cv.fill(shapes.ellipse(c[0], c[1], 0.1 * r, 0.05 * r, a + 90), 2.5, shadow=0.35)
    hr = rng.uniform(0.45, 0.55) * r
    hx, hy = shapes.polar((cx, cy), r * 0.15, rng.uniform(0, 360))
    ang = rng.uniform(0, 90)
    cv.fill(shapes.ellipse(hx, hy, hr, hr * 0.9, ang), 1.4, cls=1)
    for q in range(4):
        c = shapes.polar((hx, hy), hr * 0.45, ang + 45 + 90 * q)
        cv.fill(shapes.ellipse(c[0], c[1], hr * 0.36, hr * 0.3, ang + 45 + 90 * q), 0.03)


def lung(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.4, 0.5), layers=2)
    x0, y0, x1, y1 = cv.box()
    ypl = y0 + rng.uniform(0.15, 0.25) * (y1 - y0)
    cv.fill(np.array([[0, ypl], [cv.width, ypl], [cv.width, cv.height], [0, cv.height]]), 0.1)
    gap = ypl - y0 + 0.03 * cv.height
    for k in (1, 2, 3):  # A-line reverberations
        cv.stroke(np.array([[0, ypl + k * gap], [cv.width, ypl + k * gap]]), 0.01 * cv.height, 0.6)
    cv.stroke(np.array([[0, ypl], [cv.width, ypl]]), 0.015 * cv.height, 2.5)
    w = rng.uniform(0.45, 0.7) * (x1 - x0)
    d = rng.uniform(0.45, 0.65) * (y1 - ypl)
    cx = rng.uniform(x0 + w / 2, x1 - w / 2)
    t = np.linspace(0, np.pi, 40)
    wob = 1 + 0.08 * np.sin(3 * t + rng.uniform(0, 6))
    bottom = np.stack([cx + (w / 2) * np.cos(t), ypl + 0.01 * cv.height + d * np.sin(t) * wob], 1)
    cv.fill(bottom, rng.uniform(0.7, 0.9), cls=1, texture=0.3)
    n = int(rng.integers(8, 14))
    pts = np.stack([rng.uniform(cx - 0.35 * w, cx + 0.35 * w, n), rng.uniform(ypl + 0.15 * d, ypl + 0.7 * d, n)], 1)
    cv.dots(pts, 0.012 * cv.unit, 2.5)


RENDERERS = {
    "breast_lesion": breast_lesion,
    "cardiac_multi": cardiac_multi,
    "carotid_artery": carotid_artery,
    "cervix": cervix,
    "cervix_multi": cervix_multi,
    "fetal_abdomen_multi": fetal_abdomen_multi,
    "fetal_head": fetal_head,
    "fetal_heart": fetal_heart,
    "head_symphysis_multi": head_symphysis_multi,
    "lung": lung,
    "ovary_tumor": ovary_tumor,
    "thyroid_nodule": thyroid_nodule,
}
