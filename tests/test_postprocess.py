"""Mask postprocessing (``contract.postprocess``): drawn masks, an independent whole-image reference, bands.

The reference in this file labels the whole mask at once with OpenCV and fills holes with a
flood fill from the border, as one would without bands; the banded code must give the same
mask for every band height.
"""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

from contract.manifest import TaskEntry
from contract.postprocess import MaskPostprocess, PostprocessError, parse_postprocess, postprocess_mask
from contract.tasks import TaskKind


def disc(mask: np.ndarray, centre: tuple[int, int], radius: int, value: int) -> np.ndarray:
    cv2.circle(mask, centre, radius, int(value), thickness=-1)
    return mask


def test_a_stray_blob_is_removed_by_keeping_the_largest_component_or_by_a_minimum_size():
    mask = disc(np.zeros((120, 160), np.uint8), (60, 60), 30, 1)
    disc(mask, (140, 20), 5, 1)  # the stray blob, 81 pixels
    for spec in (MaskPostprocess(largest="per_class"), MaskPostprocess(largest="foreground"),
                 MaskPostprocess(min_size=100)):
        out = postprocess_mask(mask.copy(), spec)
        assert out[20, 140] == 0 and out[60, 60] == 1, str(spec)
        assert int(out.sum()) == int(disc(np.zeros_like(mask), (60, 60), 30, 1).sum())
    kept = postprocess_mask(mask.copy(), MaskPostprocess(min_size=50))  # the blob is larger than 50 pixels
    assert np.array_equal(kept, mask)


def test_a_hole_is_filled_and_a_bay_open_to_the_border_is_not():
    mask = disc(np.zeros((100, 100), np.uint8), (50, 50), 30, 1)
    disc(mask, (50, 50), 8, 0)  # a hole
    mask[0:10, 0:100] = 1
    mask[0:5, 40:45] = 0  # a bay: background that reaches the top border
    out = postprocess_mask(mask.copy(), MaskPostprocess(fill_holes=True))
    assert out[50, 50] == 1 and (out[42:58, 42:58] == 1).all()
    assert (out[0:5, 40:45] == 0).all()
    assert int((out != mask).sum()) == int((disc(np.zeros_like(mask), (50, 50), 8, 1) == 1).sum())


def test_a_hole_takes_the_class_most_of_its_edge_touches_and_classes_are_kept_apart():
    mask = np.zeros((60, 60), np.uint8)
    mask[10:50, 10:50] = 2
    mask[10:50, 10:16] = 1  # class 1 on one side only: class 2 surrounds most of the hole
    mask[25:35, 25:35] = 0
    out = postprocess_mask(mask.copy(), MaskPostprocess(fill_holes=True))
    assert (out[25:35, 25:35] == 2).all()
    two = np.zeros((60, 90), np.uint8)  # class 1 and class 2 touch: one foreground component, two classes
    two[10:30, 10:30], two[10:30, 30:50] = 1, 2
    two[50:55, 70:75] = 1  # a small class-1 blob elsewhere
    per_class = postprocess_mask(two.copy(), MaskPostprocess(largest="per_class"))
    assert (per_class[50:55, 70:75] == 0).all() and (per_class[10:30, 30:50] == 2).all()
    foreground = postprocess_mask(two.copy(), MaskPostprocess(largest="foreground"))
    assert np.array_equal(foreground, per_class)


def test_texts_parse_and_print_back_and_bad_ones_are_refused():
    for text in ("none", "fill_holes", "largest_per_class", "min_size:40+largest_foreground+fill_holes"):
        assert str(parse_postprocess(text)) == text
    for bad in ("largest", "min_size:-3", "fill_holes+nope", "largest_per_class+largest_foreground"):
        with pytest.raises(PostprocessError):
            parse_postprocess(bad)


def test_the_manifest_accepts_postprocessing_for_segmentation_tasks_only():
    entry = dict(task_id="t", num_classes=2, path=["g"], postprocess={"largest": "per_class"})
    seg = TaskEntry(kind=TaskKind.SEGMENTATION, outputs={"logits": "t.logits"}, **entry)
    assert seg.postprocess == MaskPostprocess(largest="per_class")
    with pytest.raises(ValueError, match="postprocess.*segmentation"):
        TaskEntry(kind=TaskKind.CLASSIFICATION, outputs={"probs": "t.probs"}, **entry)
    logits = np.zeros((2, 8, 8), np.float32)
    logits[1, 1:4, 1:4], logits[1, 6, 6] = 5, 5
    mask = seg.decode(logits, (40, 40)).mask  # decoding applies it: the speck at (6, 6) is gone
    assert mask[10, 10] == 1 and mask[33, 33] == 0


# --- the whole-image reference -----------------------------------------------------------------------

def _ref_keep(binary: np.ndarray, rule) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    ids = list(range(1, count))
    keep[[i for i in ids if rule(i, stats)]] = True
    return keep[labels] & (labels > 0)


def _first(stats, ids):
    return min(ids, key=lambda i: (-stats[i, cv2.CC_STAT_AREA], stats[i, cv2.CC_STAT_TOP], stats[i, cv2.CC_STAT_LEFT]))


def reference(mask: np.ndarray, spec: MaskPostprocess) -> np.ndarray:
    out = mask.copy()
    if spec.min_size or spec.largest == "per_class":
        for c in range(1, 256):
            binary = out == c
            if not binary.any():
                continue
            count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
            big = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= spec.min_size]
            kept = ([_first(stats, big)] if big else []) if spec.largest == "per_class" else big
            out[binary & ~np.isin(labels, kept)] = 0
    if spec.largest == "foreground" and (out > 0).any():
        count, labels, stats, _ = cv2.connectedComponentsWithStats((out > 0).astype(np.uint8), connectivity=8)
        out[(labels > 0) & (labels != _first(stats, range(1, count)))] = 0
    if spec.fill_holes:
        h, w = out.shape
        outside = np.pad((out == 0).astype(np.uint8), 1, constant_values=1)  # flood from a frame around the image
        cv2.floodFill(outside, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 2, flags=4)
        holes = outside[1:-1, 1:-1] == 1
        count, labels = cv2.connectedComponents(holes.astype(np.uint8), connectivity=4)
        filled = out.copy()
        for i in range(1, count):
            region = labels == i
            edge = cv2.dilate(region.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))) > 0
            votes = np.zeros(256, np.int64)
            ys, xs = np.nonzero(region)
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                yy, xx = ys + dy, xs + dx
                inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
                values = out[yy[inside], xx[inside]]
                np.add.at(votes, values[values > 0], 1)
            assert edge.any()
            filled[region] = int(np.argmax(votes))
        out = filled
    return out


def random_mask(seed: int, shape=(97, 131), classes: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    for _ in range(25):  # blobs, rings (holes) and specks of every class, some touching the border
        c = int(rng.integers(1, classes))
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        radius = int(rng.integers(1, 25))
        cv2.circle(mask, centre, radius, c, thickness=-1 if rng.random() < 0.6 else int(rng.integers(1, 4)))
    specks = rng.random(shape) < 0.01
    mask[specks] = rng.integers(0, classes, specks.sum()).astype(np.uint8)
    return mask


SPECS = [MaskPostprocess(largest="per_class"), MaskPostprocess(largest="foreground"), MaskPostprocess(fill_holes=True),
         MaskPostprocess(min_size=12), MaskPostprocess(min_size=30, largest="per_class", fill_holes=True),
         MaskPostprocess(min_size=5, largest="foreground", fill_holes=True)]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_bands_of_any_height_equal_the_whole_image_and_the_reference(spec):
    for seed in range(6):
        mask = random_mask(seed)
        expected = reference(mask, spec)
        assert not np.array_equal(expected, mask), "the drawn mask must give the step something to do"
        for rows in (1, 2, 3, 7, 16, 50, mask.shape[0]):
            out = postprocess_mask(mask.copy(), spec, band_rows=rows)
            differ = int((out != expected).sum())
            assert np.array_equal(out, expected), f"seed {seed}, bands of {rows} rows: {differ} px differ"


def _peak(mask: np.ndarray, spec: MaskPostprocess, rows: int | None) -> tuple[np.ndarray, int]:
    tracemalloc.start()
    out = postprocess_mask(mask, spec, band_rows=rows)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, peak


def test_a_large_mask_in_bands_holds_no_whole_image_label_array():
    mask = np.zeros((3000, 2000), np.uint8)
    for k in range(30):
        disc(mask, (100 + 60 * k, 150 + 90 * k), 40 + k, 1 + k % 2)
        disc(mask, (100 + 60 * k, 150 + 90 * k), 10, 0)
    spec = MaskPostprocess(largest="per_class", fill_holes=True)
    whole, whole_peak = _peak(mask.copy(), spec, mask.shape[0])
    banded, band_peak = _peak(mask.copy(), spec, 64)
    assert np.array_equal(banded, whole)
    assert whole_peak > 4 * mask.size  # at least a whole-image int32 label array (24 MB)
    assert band_peak < 16 * 64 * mask.shape[1], (whole_peak, band_peak)  # a few arrays of one band: 16 bytes a pixel
    assert band_peak < mask.size / 4
