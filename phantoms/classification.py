"""Classification phantoms: 9 tasks. Image ``index`` gets class ``index % K`` (balanced).

The rule per task (what a model has to see):

| task | K | class rule |
|---|---|---|
| breast_2cls | 2 | 0 smooth round/oval dark lesion; 1 spiculated (star-shaped) dark lesion with shadow |
| breast_3cls | 3 | 0 no lesion (layered tissue only); 1 smooth anechoic cyst with posterior enhancement; 2 spiculated dark lesion with shadow |
| fetal_head_pos_cls | 8 | skull ellipse whose long axis points at k*45 deg (0 = right, 90 = down) with a large bright marker at that end |
| fetal_plane_cls | 6 | 0 head (skull ring); 1 abdomen (disc, black stomach, bright spine); 2 femur (bright bar, shadow); 3 heart (disc, four dark chambers); 4 spine (two rows of bright dots); 5 placenta over a large black fluid pool |
| fetal_sacral_pos_cls | 8 | a V of bright vertebra dots converging (sacral tip) towards k*45 deg |
| liver_lesion_2cls | 2 | 0 bright (hyperechoic) round lesion; 1 dark (hypoechoic) lesion with a bright rim |
| lung_2cls | 2 | 0 A-lines (horizontal bright repeats below the pleura); 1 three or more vertical bright B-lines |
| lung_disease_3cls | 3 | 0 A-lines; 1 B-lines; 2 large black effusion with a bright lung wedge in it |
| organ_cls | 6 | 0 bladder (big black rounded square); 1 kidney (dark oval with bright core); 2 liver (vessels as dark dots, bright curved diaphragm); 3 gallbladder (dark teardrop with bright stone and shadow); 4 spleen (bright crescent); 5 thyroid (two grey lobes beside a bright trachea arc with shadow) |

Directions are measured in native pixels; neighbouring directions stay at least ~30 deg apart after
any resize to 256x256 of the native sizes used, and the marker makes opposite directions distinct.
"""

from __future__ import annotations

import numpy as np

from contract.tasks import TaskSpec
from phantoms import shapes
from phantoms.ultrasound import Canvas

PROBES = {"breast_2cls": "linear", "breast_3cls": "linear", "lung_2cls": "linear", "lung_disease_3cls": "linear"}


def _round_lesion(cv: Canvas, level: float, **kw) -> np.ndarray:
    rng = cv.rng
    r = rng.uniform(0.2, 0.3) * cv.unit
    pts = shapes.blob(0, 0, r, rng, 0.04, aspect=rng.uniform(1.0, 1.4), angle_deg=rng.uniform(-20, 20), harmonics=2)
    cx, cy = cv.place(*shapes.half_extent(pts))
    cv.fill(pts + (cx, cy), level, **kw)
    return pts + (cx, cy)


def _spiky_lesion(cv: Canvas, level: float) -> None:
    rng = cv.rng
    r = rng.uniform(0.25, 0.34) * cv.unit
    pts = shapes.star(0, 0, r, int(rng.integers(9, 14)), rng.uniform(0.45, 0.6), rng, rng.uniform(0, 360))
    cx, cy = cv.place(*shapes.half_extent(pts))
    cv.fill(pts + (cx, cy), level, shadow=0.45)


def _breast_background(cv: Canvas) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.45, 0.6), variation=0.35, cells=7, layers=3)
    y = cv.box()[1] - 0.02 * cv.height
    cv.stroke(np.array([[0, y], [cv.width, y]]), 0.012 * cv.height, 1.6)


def breast_2cls(cv: Canvas, spec: TaskSpec, label: int) -> None:
    _breast_background(cv)
    if label == 0:
        _round_lesion(cv, cv.rng.uniform(0.05, 0.1))
    else:
        _spiky_lesion(cv, cv.rng.uniform(0.05, 0.1))


def breast_3cls(cv: Canvas, spec: TaskSpec, label: int) -> None:
    _breast_background(cv)
    if label == 1:
        _round_lesion(cv, 0.02, enhance=0.6)
    elif label == 2:
        _spiky_lesion(cv, cv.rng.uniform(0.06, 0.1))


def _direction(cv: Canvas, label: int) -> float:
    return 45.0 * label + cv.rng.uniform(-6, 6)


def fetal_head_pos_cls(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.35, 0.5), layers=1)
    ang = _direction(cv, label)
    ax = rng.uniform(0.36, 0.42) * cv.unit
    ay = ax * rng.uniform(0.55, 0.65)
    cx, cy = cv.place(*shapes.half_extent(shapes.ellipse(0, 0, ax, ay, ang)))
    t = 0.08 * ay
    cv.fill(shapes.ellipse(cx, cy, ax, ay, ang), 2.5, shadow=0.2)
    cv.fill(shapes.ellipse(cx, cy, ax - t, ay - t, ang), 0.25, texture=0.3)
    mx, my = shapes.polar((cx, cy), 0.62 * ax, ang)
    cv.fill(shapes.ellipse(mx, my, 0.3 * ay, 0.3 * ay), 2.5)


def fetal_sacral_pos_cls(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.35, 0.5), layers=1)
    ang = _direction(cv, label)
    length = rng.uniform(0.75, 0.9) * cv.unit
    cx, cy = cv.place(length / 2 + 0.05 * cv.unit, length / 2 + 0.05 * cv.unit)
    base = shapes.polar((cx, cy), length / 2, ang + 180)
    tip = shapes.polar((cx, cy), length / 2, ang)
    opening = 0.2 * length
    wedge = np.array([shapes.polar(base, opening, ang + 90), tip, shapes.polar(base, opening, ang - 90)])
    cv.fill(wedge, 0.12)
    for side in (90, -90):
        start = shapes.polar(base, opening, ang + side)
        k = np.linspace(0, 0.92, 8)[:, None]
        pts = np.asarray(start) + k * (np.asarray(tip) - np.asarray(start))
        cv.dots(pts, 0.045 * length, 2.6, shadow=0.4)


def _bar(cv: Canvas, length: float, hw: float, ang: float) -> tuple[tuple[float, float], tuple[float, float]]:
    probe = shapes.capsule((-length / 2, 0), (length / 2, 0), hw)
    cx, cy = cv.place(*shapes.half_extent(shapes.rotate(probe, (0, 0), ang)))
    return shapes.polar((cx, cy), length / 2, ang + 180), shapes.polar((cx, cy), length / 2, ang)


def fetal_plane_cls(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.3, 0.45), layers=1)
    u = cv.unit
    if label == 0:  # head
        ax = rng.uniform(0.36, 0.42) * u
        ay = ax * rng.uniform(0.75, 0.85)
        cx, cy = cv.place(ax, ax)
        cv.fill(shapes.ellipse(cx, cy, ax, ay, rng.uniform(-20, 20)), 2.6, shadow=0.2)
        cv.fill(shapes.ellipse(cx, cy, ax * 0.92, ay * 0.9), 0.22, texture=0.3)
        cv.stroke(np.array([[cx - 0.7 * ax, cy], [cx + 0.7 * ax, cy]]), 0.02 * u, 1.0)
    elif label in (1, 3):  # abdomen / heart: textured disc
        r = rng.uniform(0.36, 0.42) * u
        cx, cy = cv.place(r, r)
        cv.fill(shapes.ellipse(cx, cy, r * 1.04, r * 1.04), 1.5)
        cv.fill(shapes.ellipse(cx, cy, r, r), 0.65, texture=0.2)
        if label == 1:
            cv.fill(shapes.ellipse(cx - 0.3 * r, cy - 0.1 * r, 0.3 * r, 0.22 * r), 0.02)
            cv.fill(shapes.ellipse(cx + 0.1 * r, cy + 0.6 * r, 0.17 * r, 0.17 * r), 2.6, shadow=0.6)
        else:
            a = rng.uniform(0, 90)
            for q in range(4):
                c = shapes.polar((cx, cy), 0.32 * r, a + 45 + 90 * q)
                cv.fill(shapes.ellipse(c[0], c[1], 0.24 * r, 0.2 * r, a + 45 + 90 * q), 0.03)
    elif label == 2:  # femur
        p0, p1 = _bar(cv, rng.uniform(0.6, 0.8) * u, 0.05 * u, rng.uniform(-30, 30))
        cv.fill(shapes.capsule(p0, p1, 0.05 * u), 2.8, shadow=0.8)
    elif label == 4:  # spine: two parallel rows of dots
        length = rng.uniform(0.75, 0.9) * u
        ang = rng.uniform(-25, 25)
        cx, cy = cv.place(length / 2, length / 2)
        for off in (-0.1, 0.1):
            c = shapes.polar((cx, cy), off * length, ang + 90)
            k = np.linspace(-0.5, 0.5, 9)[:, None]
            d = np.array([np.cos(np.deg2rad(ang)), np.sin(np.deg2rad(ang))])
            cv.dots(np.asarray(c) + k * length * d, 0.04 * length, 2.6, shadow=0.4)
    else:  # placenta over a fluid pool
        x0, y0, x1, y1 = cv.box()
        yb = y0 + rng.uniform(0.3, 0.45) * (y1 - y0)
        cv.fill(np.array([[0, y0 - 0.1 * cv.height], [cv.width, y0 - 0.1 * cv.height], [cv.width, yb], [0, yb]]),
                1.0, texture=0.4, texture_cells=20)
        pool = shapes.blob((x0 + x1) / 2, yb + 0.3 * (y1 - yb), 0.45 * (x1 - x0), rng, 0.08, aspect=1.0)
        pool[:, 1] = np.clip(pool[:, 1], yb, y1)
        cv.fill(pool, 0.02, enhance=0.3)


def liver_lesion_2cls(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.5, 0.6), variation=0.2, cells=8, layers=0)
    if label == 0:
        _round_lesion(cv, rng.uniform(2.0, 2.6), texture=0.2)
    else:
        pts = _round_lesion(cv, rng.uniform(1.6, 2.0))
        c = pts.mean(axis=0)
        cv.fill(shapes.scale_about(pts, tuple(c), 0.85), rng.uniform(0.05, 0.1), texture=0.2)


def _lung_base(cv: Canvas) -> tuple[float, float]:
    rng = cv.rng
    cv.background(rng.uniform(0.4, 0.5), layers=2)
    x0, y0, x1, y1 = cv.box()
    ypl = y0 + rng.uniform(0.15, 0.22) * (y1 - y0)
    cv.fill(np.array([[0, ypl], [cv.width, ypl], [cv.width, cv.height], [0, cv.height]]), 0.08)
    cv.stroke(np.array([[0, ypl], [cv.width, ypl]]), 0.015 * cv.height, 2.5)
    return ypl, ypl - y0 + 0.03 * cv.height


def _a_lines(cv: Canvas, ypl: float, gap: float, level: float) -> None:
    for k in range(1, 6):
        cv.stroke(np.array([[0, ypl + k * gap], [cv.width, ypl + k * gap]]), 0.012 * cv.height, level)


def _b_lines(cv: Canvas, ypl: float) -> None:
    x0, _, x1, y1 = cv.box()
    n = int(cv.rng.integers(3, 5))
    xs = x0 + (x1 - x0) * (np.arange(n) + cv.rng.uniform(0.3, 0.7, n)) / n
    for x in xs:
        hw = cv.rng.uniform(0.018, 0.026) * cv.width
        cv.fill(np.array([[x - hw, ypl], [x + hw, ypl], [x + hw * 1.3, cv.height], [x - hw * 1.3, cv.height]]), 1.3)


def lung_2cls(cv: Canvas, spec: TaskSpec, label: int) -> None:
    ypl, gap = _lung_base(cv)
    if label == 0:
        _a_lines(cv, ypl, gap, 0.9)
    else:
        _a_lines(cv, ypl, gap, 0.25)
        _b_lines(cv, ypl)


def lung_disease_3cls(cv: Canvas, spec: TaskSpec, label: int) -> None:
    ypl, gap = _lung_base(cv)
    if label == 0:
        _a_lines(cv, ypl, gap, 0.9)
    elif label == 1:
        _b_lines(cv, ypl)
    else:
        x0, y0, x1, y1 = cv.box()
        top = ypl + 0.05 * cv.height
        pool = np.array([[0, top], [cv.width, top], [cv.width, cv.height], [0, cv.height]])
        cv.fill(pool, 0.01, enhance=0.2)
        cx = cv.rng.uniform(x0 + 0.3 * (x1 - x0), x1 - 0.3 * (x1 - x0))
        tip = (cx + cv.rng.uniform(-0.1, 0.1) * (x1 - x0), top + cv.rng.uniform(0.45, 0.6) * (y1 - top))
        cv.fill(np.array([[cx - 0.18 * (x1 - x0), y1 + 0.1 * cv.height], tip,
                          [cx + 0.18 * (x1 - x0), y1 + 0.1 * cv.height]]), 0.9, texture=0.3)


def organ_cls(cv: Canvas, spec: TaskSpec, label: int) -> None:
    rng = cv.rng
    cv.background(rng.uniform(0.35, 0.45), layers=1)
    u = cv.unit
    if label == 0:  # bladder
        s = rng.uniform(0.3, 0.38) * u
        cx, cy = cv.place(s * 1.2, s)
        t = np.linspace(0, 2 * np.pi, 80, endpoint=False)
        c, si = np.cos(t), np.sin(t)
        sq = np.stack([cx + 1.2 * s * np.sign(c) * np.abs(c) ** 0.5, cy + s * np.sign(si) * np.abs(si) ** 0.5], 1)
        cv.fill(sq, 0.01, enhance=0.6)
    elif label == 1:  # kidney
        ax, ay = rng.uniform(0.38, 0.44) * u, rng.uniform(0.2, 0.25) * u
        ang = rng.uniform(-25, 25)
        cx, cy = cv.place(*shapes.half_extent(shapes.ellipse(0, 0, ax, ay, ang)))
        cv.fill(shapes.ellipse(cx, cy, ax, ay, ang), 0.15)
        cv.fill(shapes.ellipse(cx, cy, ax * 0.6, ay * 0.45, ang), 2.0, texture=0.3)
    elif label == 2:  # liver with vessels and diaphragm
        cv.background(rng.uniform(0.55, 0.65), variation=0.15, cells=8)
        x0, y0, x1, y1 = cv.box()
        n = int(rng.integers(6, 10))
        for x, y in zip(rng.uniform(x0, x1, n), rng.uniform(y0, y0 + 0.6 * (y1 - y0), n)):
            cv.fill(shapes.ellipse(x, y, 0.04 * u, 0.035 * u), 0.03)
        curve = shapes.arc_curve((x0 - 0.05 * u, y1 - 0.05 * u), (x1 + 0.05 * u, y1 - 0.3 * u), 0.1 * u)
        cv.stroke(curve, 0.05 * u, 2.8)
    elif label == 3:  # gallbladder with stone
        ax, ay = rng.uniform(0.3, 0.36) * u, rng.uniform(0.14, 0.18) * u
        ang = rng.uniform(-20, 20)
        cx, cy = cv.place(*shapes.half_extent(shapes.ellipse(0, 0, ax, ay, ang)))
        tear = shapes.ellipse(0, 0, ax, ay)
        tear[:, 1] *= 1 + 0.4 * tear[:, 0] / ax
        cv.fill(shapes.rotate(tear + (cx, cy), (cx, cy), ang), 0.02)
        sx, sy = shapes.polar((cx, cy), 0.45 * ax, ang)
        cv.fill(shapes.ellipse(sx, sy + 0.3 * ay, 0.4 * ay, 0.4 * ay), 2.8, shadow=0.85)
    elif label == 4:  # spleen crescent
        r = rng.uniform(0.38, 0.44) * u
        cx, cy = cv.place(r, r)
        outer = shapes.ellipse(cx, cy, r, r * 0.8)
        t = np.linspace(-0.5, np.pi + 0.5, 40)
        ang = rng.uniform(-30, 30)
        inner = np.stack([cx + 0.8 * r * np.cos(t), cy + 0.1 * r - 0.45 * r * np.sin(t)], 1)
        keep = outer[outer[:, 1] >= cy - 0.1 * r]
        keep = keep[np.argsort(np.arctan2(keep[:, 1] - cy, keep[:, 0] - cx))]
        moon = np.concatenate([keep, inner[::-1] if inner[0, 0] > inner[-1, 0] else inner])
        cv.fill(shapes.rotate(moon, (cx, cy), ang), 1.4, texture=0.2)
    else:  # thyroid lobes around the trachea
        x0, y0, x1, y1 = cv.box()
        cx = (x0 + x1) / 2 + rng.uniform(-0.05, 0.05) * u
        cy = y0 + rng.uniform(0.3, 0.4) * (y1 - y0)
        for side in (-1, 1):
            cv.fill(shapes.ellipse(cx + side * 0.3 * u, cy, 0.22 * u, 0.15 * u, side * 10), 1.0, texture=0.2)
        t = np.linspace(np.pi * 1.1, np.pi * 1.9, 20)
        cv.stroke(np.stack([cx + 0.12 * u * np.cos(t), cy + 0.06 * u + 0.12 * u * np.sin(t)], 1), 0.035 * u, 2.8,
                  shadow=0.85)


RENDERERS = {
    "breast_2cls": breast_2cls,
    "breast_3cls": breast_3cls,
    "fetal_head_pos_cls": fetal_head_pos_cls,
    "fetal_plane_cls": fetal_plane_cls,
    "fetal_sacral_pos_cls": fetal_sacral_pos_cls,
    "liver_lesion_2cls": liver_lesion_2cls,
    "lung_2cls": lung_2cls,
    "lung_disease_3cls": lung_disease_3cls,
    "organ_cls": organ_cls,
}
