"""From a class mask to the region a measure uses: its largest connected component and outer contour.

The checks that make a mask unusable are here (``MeasureError`` with the reason): nothing of the
wanted classes, a component touching the image border (``Region.touches_border``, which the
measures that need the whole outline refuse). Several components give a note and the largest is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from biometry.model import MeasureError

#: A tangent point this close to the image's edge (pixels) may be where the head is cut off.
BORDER_MARGIN = 2.0


@dataclass(frozen=True)
class Region:
    """One connected component of a mask (8-connected): its pixels and its outer contour (pixel centres)."""

    component: np.ndarray  # H x W bool
    contour: np.ndarray  # n x 2 (x, y), pixel coordinates
    components: int  # how many components the wanted classes had
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return self.component.shape  # type: ignore[return-value]

    @property
    def area(self) -> int:
        return int(self.component.sum())

    @property
    def touches_border(self) -> bool:
        c = self.component
        return bool(c[0].any() or c[-1].any() or c[:, 0].any() or c[:, -1].any())

    def on_border(self, point: np.ndarray, margin: float = BORDER_MARGIN) -> bool:
        """Whether a point (pixel coordinates) lies within ``margin`` pixels of the image's outermost pixels."""
        height, width = self.shape
        x, y = float(point[0]), float(point[1])
        return x <= margin or y <= margin or x >= width - 1 - margin or y >= height - 1 - margin

    def pixel_points(self) -> np.ndarray:
        """Every pixel of the component as (x, y) (n x 2)."""
        ys, xs = np.nonzero(self.component)
        return np.stack([xs, ys], axis=1).astype(np.float64)


def largest_region(mask: np.ndarray, classes: Sequence[int] | None, what: str) -> Region:
    """The largest component of ``mask`` in ``classes`` (None: every non-zero value), with its outer contour."""
    if mask.ndim != 2:
        raise MeasureError(f"the mask has shape {mask.shape}; expected a single-channel class mask")
    wanted = mask > 0 if classes is None else np.isin(mask, list(classes))
    if not wanted.any():
        which = "any foreground class" if classes is None else f"class {'/'.join(str(c) for c in classes)}"
        raise MeasureError(f"{what}: the mask is empty (no pixel of {which})")
    count, labels, stats, _ = cv2.connectedComponentsWithStats(wanted.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    biggest = 1 + int(np.argmax(areas))
    component = labels == biggest
    notes = []
    if count - 1 > 1:
        notes.append(f"{what}: {count - 1} separate components, the largest measured "
                     f"({int(areas.max())} of {int(areas.sum())} pixels)")
    contours, _ = cv2.findContours(component.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=len).reshape(-1, 2).astype(np.float64)
    return Region(component, contour, count - 1, notes)
