"""Biometry on drawn shapes of known geometry: HC and AC within 1 %, FL within 0.5 %, AoP within 1 degree.

Each shape is drawn with OpenCV at a known size, position and angle; the expected value is the
geometry's own (Ramanujan's perimeter of the drawn ellipse, the points' distance, the tangent angle
of a circle seen from the symphysis's end), in millimetres at a given pixel spacing.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from biometry.geometry import fit_ellipse, ramanujan_perimeter
from biometry.measures import TASKS, fetal_abdomen, fetal_femur, fetal_head, head_symphysis
from biometry.model import MeasureError
from biometry.spacing import Spacing
from contract.tasks import TaskKind, TaskRegistry


def values(measured) -> dict[str, float]:
    return {v.measure: v.value for v in measured.values}


def units(measured) -> dict[str, str]:
    return {v.measure: v.unit for v in measured.values}


def ellipse_mask(shape, centre, a, b, angle, value=1, mask=None):
    mask = np.zeros(shape, np.uint8) if mask is None else mask
    cv2.ellipse(mask, (centre, (2 * a, 2 * b), angle), value, -1)
    return mask


@pytest.mark.parametrize("a, b", [(1.0, 1.0), (1.0, 0.5), (1.0, 0.25)])
def test_ramanujan_matches_numerical_integration(a, b):
    t = np.linspace(0.0, 2 * np.pi, 400001)
    exact = np.trapezoid(np.hypot(a * np.sin(t), b * np.cos(t)), t)
    assert ramanujan_perimeter(a, b) == pytest.approx(exact, rel=1e-5)
    assert ramanujan_perimeter(2.0, 2.0) == pytest.approx(4 * np.pi)


@pytest.mark.parametrize("a, b, angle, spacing", [
    (200, 140, 30, 0.2), (150, 120, -20, 0.1), (260, 230, 75, 0.15), (90, 60, 0, 0.3), (180, 130, 135, 0.25),
])
def test_head_circumference_of_a_drawn_ellipse_within_one_percent(a, b, angle, spacing):
    mask = ellipse_mask((700, 800), (401.3, 352.6), a, b, angle)
    got = fetal_head(mask, Spacing(spacing, spacing, "flag"))
    v = values(got)
    assert v["HC"] == pytest.approx(ramanujan_perimeter(a, b) * spacing, rel=0.01)
    assert v["BPD"] == pytest.approx(2 * b * spacing, rel=0.01)
    assert v["OFD"] == pytest.approx(2 * a * spacing, rel=0.01)
    assert set(units(got).values()) == {"mm"}
    assert got.notes == []


def test_head_in_pixels_without_a_spacing():
    got = fetal_head(ellipse_mask((500, 500), (250, 250), 150, 100, 10), Spacing())
    assert units(got) == {"HC": "px", "BPD": "px", "OFD": "px"}
    assert values(got)["HC"] == pytest.approx(ramanujan_perimeter(150, 100), rel=0.01)


def test_anisotropic_spacing_measures_the_physical_ellipse():
    # an axis-aligned ellipse of semi-axes 40 mm x 30 mm drawn with 0.2 mm columns and 0.25 mm rows
    mask = ellipse_mask((400, 500), (250, 200), 40 / 0.2, 30 / 0.25, 0)
    v = values(fetal_head(mask, Spacing(0.2, 0.25, "csv")))
    assert v["HC"] == pytest.approx(ramanujan_perimeter(40, 30), rel=0.01)
    assert v["OFD"] == pytest.approx(80, rel=0.01)
    assert v["BPD"] == pytest.approx(60, rel=0.01)


@pytest.mark.parametrize("a, b, angle, spacing", [(220, 190, 40, 0.2), (160, 150, -60, 0.12)])
def test_abdominal_circumference_uses_every_foreground_class(a, b, angle, spacing):
    shape, centre = (600, 700), (350.5, 300.5)
    mask = ellipse_mask(shape, centre, a, b, angle, value=1)
    # the spine (class 3) replaces a cap of the outline, the stomach (2) and vein (4) lie inside:
    # class 1 alone has a notch, the union is the whole ellipse
    cap = np.zeros(shape, np.uint8)
    cv2.circle(cap, (int(centre[0] + 0.9 * a * math.cos(math.radians(angle))),
                     int(centre[1] + 0.9 * a * math.sin(math.radians(angle)))), int(0.4 * b), 1, -1)
    mask[(cap > 0) & (mask > 0)] = 3
    cv2.circle(mask, (int(centre[0]), int(centre[1])), int(0.3 * b), 2, -1)
    cv2.ellipse(mask, ((centre[0] - 0.3 * a, centre[1]), (0.3 * a, 0.1 * b), 0), 4, -1)
    got = fetal_abdomen(mask, Spacing(spacing, spacing, "flag"))
    assert values(got)["AC"] == pytest.approx(ramanujan_perimeter(a, b) * spacing, rel=0.01)
    only_class_1 = np.where(mask == 1, 1, 0).astype(np.uint8)
    notched = values(fetal_abdomen(only_class_1, Spacing(spacing, spacing, "flag")))["AC"]
    assert abs(notched / (ramanujan_perimeter(a, b) * spacing) - 1) > 0.01  # the union is what makes it right


@pytest.mark.parametrize("p, q, spacing", [
    ((100.0, 200.0), (400.0, 260.0), Spacing(0.2, 0.2, "flag")),
    ((50.5, 80.25), (50.5, 380.75), Spacing(0.1, 0.1, "image")),
    ((10.0, 10.0), (310.0, 410.0), Spacing(0.2, 0.3, "csv")),
])
def test_femur_length_within_half_a_percent(p, q, spacing):
    got = fetal_femur([*p, *q], spacing, (600, 800))
    expected = math.hypot((q[0] - p[0]) * spacing.x, (q[1] - p[1]) * spacing.y)
    assert values(got)["FL"] == pytest.approx(expected, rel=0.005)
    assert units(got) == {"FL": "mm"}


def test_femur_points_outside_the_image_get_a_note_and_coincident_points_fail():
    got = fetal_femur([-5.0, 10.0, 100.0, 10.0], Spacing(), (50, 80))
    assert values(got)["FL"] == pytest.approx(105.0)
    assert "outside" in got.notes[0]
    with pytest.raises(MeasureError, match="coincide"):
        fetal_femur([3.0, 4.0, 3.0, 4.0], Spacing())
    with pytest.raises(MeasureError, match="not finite"):
        fetal_femur([3.0, float("nan"), 1.0, 4.0], Spacing())


def intrapartum_layout(symphysis_angle, head_centre, radius, length=140.0, superior=(150.0, 120.0),
                       shape=(720, 900)):
    """Class 1: a thin ellipse (the symphysis) from ``superior`` along ``symphysis_angle``; class 2: a disc.

    Returns the mask and the true AoP (degrees) and HSD (pixels) seen from the symphysis's far end.
    """
    mask = np.zeros(shape, np.uint8)
    d = np.array([math.cos(math.radians(symphysis_angle)), math.sin(math.radians(symphysis_angle))])
    sup = np.asarray(superior)
    centre, inf = sup + d * length / 2, sup + d * length
    cv2.ellipse(mask, ((float(centre[0]), float(centre[1])), (length, 28.0), symphysis_angle), 1, -1)
    cv2.circle(mask, (int(head_centre[0]), int(head_centre[1])), radius, 2, -1)
    u, w = sup - inf, np.asarray(head_centre, float) - inf
    to_centre = math.degrees(math.acos(float(u @ w) / (np.linalg.norm(u) * np.linalg.norm(w))))
    aop = to_centre + math.degrees(math.asin(radius / np.linalg.norm(w)))
    return mask, aop, float(np.linalg.norm(w) - radius)


@pytest.mark.parametrize("symphysis_angle, head_centre, radius", [
    (35, (250, 450), 150),  # about 158 degrees
    (20, (300, 520), 150),  # about 140
    (35, (170, 470), 140),  # about 118
    (50, (160, 520), 130),  # about 104
    (35, (470, 380), 150),  # beyond the axis's extension: about 207
])
@pytest.mark.parametrize("spacing", [0.1, 0.25])
def test_angle_of_progression_within_one_degree(symphysis_angle, head_centre, radius, spacing):
    mask, aop, hsd = intrapartum_layout(symphysis_angle, head_centre, radius)
    got = head_symphysis(mask, Spacing(spacing, spacing, "flag"))
    v = values(got)
    assert v["AoP"] == pytest.approx(aop, abs=1.0)
    assert v["HSD"] == pytest.approx(hsd * spacing, abs=1.5 * spacing)
    assert units(got) == {"AoP": "deg", "HSD": "mm"}
    kinds = {x.measure: x.overlay.kind for x in got.values}
    assert kinds == {"AoP": "angle", "HSD": "segment"}


def test_aop_overlay_starts_at_the_symphysis_end_nearest_the_head():
    mask, _, _ = intrapartum_layout(35, (250, 450), 150)
    aop = next(v for v in head_symphysis(mask, Spacing()).values if v.measure == "AoP")
    superior, vertex, tangent = (np.array(p) for p in aop.overlay.points)
    d = np.array([math.cos(math.radians(35)), math.sin(math.radians(35))])
    assert np.linalg.norm(vertex - (np.array([150.0, 120.0]) + 140 * d)) < 2.0
    assert np.linalg.norm(superior - np.array([150.0, 120.0])) < 2.0
    assert np.linalg.norm(tangent - np.array([250, 450])) == pytest.approx(150, abs=1.5)


def test_bad_masks_give_a_reason():
    empty = np.zeros((300, 300), np.uint8)
    with pytest.raises(MeasureError, match="empty"):
        fetal_head(empty, Spacing())
    border = ellipse_mask((300, 300), (60, 150), 100, 60, 0)
    with pytest.raises(MeasureError, match="border"):
        fetal_head(border, Spacing())
    line = np.zeros((300, 300), np.uint8)
    cv2.line(line, (50, 50), (250, 230), 1, 1)
    with pytest.raises(MeasureError, match="degenerate"):
        fetal_head(line, Spacing())
    speck = np.zeros((300, 300), np.uint8)
    speck[100:102, 100:102] = 1
    with pytest.raises(MeasureError, match="too few contour points"):
        fetal_abdomen(speck, Spacing())
    with pytest.raises(MeasureError, match="pubic symphysis: the mask is empty"):
        head_symphysis(ellipse_mask((300, 300), (150, 150), 60, 50, 0, value=2), Spacing())


def test_several_components_measure_the_largest_with_a_note():
    mask = ellipse_mask((600, 600), (300, 300), 150, 110, 20)
    cv2.circle(mask, (40, 40), 12, 1, -1)
    got = fetal_head(mask, Spacing(0.2, 0.2, "flag"))
    assert values(got)["HC"] == pytest.approx(ramanujan_perimeter(150, 110) * 0.2, rel=0.01)
    assert "2 separate components" in got.notes[0]


def test_overlapping_symphysis_and_head_give_no_angle():
    mask = ellipse_mask((600, 700), (400, 380), 160, 150, 0, value=2)
    cv2.ellipse(mask, ((300.0, 250.0), (160.0, 30.0), 35.0), 1, -1)  # its lower end sits inside the head's disc
    with pytest.raises(MeasureError, match="overlap|inside"):
        head_symphysis(mask, Spacing())


def test_head_cut_off_where_the_tangent_touches_gives_no_angle():
    mask, _, _ = intrapartum_layout(20, (300, 520), 150, shape=(720, 900))
    assert head_symphysis(mask, Spacing()).values  # cut off elsewhere (the bottom) it is measured
    # uncut, the tangent touches the head at about (431, 447); an image 430 pixels wide cuts it off there
    mask, _, _ = intrapartum_layout(20, (300, 520), 150, shape=(720, 430))
    with pytest.raises(MeasureError, match="border"):
        head_symphysis(mask, Spacing())


def test_fit_ellipse_refuses_too_few_points():
    with pytest.raises(MeasureError, match="too few"):
        fit_ellipse(np.array([[0, 0], [1, 0], [0, 1], [1, 1], [2, 2]], float))


def test_task_table_matches_the_contract_kinds():
    registry = TaskRegistry.official()
    for task in TASKS.values():
        kind = registry[task.task_id].kind
        assert (kind is TaskKind.SEGMENTATION) == (task.input == "mask")
        assert (kind is TaskKind.REGRESSION) == (task.input == "points")
