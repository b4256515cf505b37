"""Mask postprocessing, declared per segmentation task in the manifest (``TaskEntry.postprocess``).

Three steps, applied in this order to the native-size mask that decoding produced:

``min_size: N``
    every 8-connected component of a class with fewer than N pixels becomes background (0);
``largest: per_class``
    each class keeps only its largest 8-connected component (the others become background);
``largest: foreground``
    the foreground (every class > 0 together) keeps only its largest 8-connected component;
``fill_holes``
    a hole, i.e. a 4-connected background region that does not touch the image border, takes
    the foreground class most often 4-adjacent to it along its edge (ties: the lower class).

Ties between components of the same size: the one whose bounding box starts highest, then
left-most. Written as text (``--postprocess`` and the selection report): ``none``, or steps
joined by ``+``: ``min_size:N``, ``largest_per_class`` or ``largest_foreground``, ``fill_holes``.

Applied in bands (``contract.components``): a band is ``BAND_PIXELS // width`` rows, so an
image of up to ``BAND_PIXELS`` pixels is one band (OpenCV's own labelling of the whole mask),
and a larger one costs one band of int32 labels plus a few numbers per component beyond its
uint8 mask, whatever its size. The result is the same for any band height
(``tests/test_postprocess.py``). Imports numpy and OpenCV only (OpenCV when first applied).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

#: Pixels of one band: images up to this size are labelled whole (about 10 bytes a pixel while labelling).
BAND_PIXELS = 1 << 20
_LARGEST = {"largest_per_class": "per_class", "largest_foreground": "foreground"}


class PostprocessError(ValueError):
    """A postprocessing text that cannot be parsed."""


class MaskPostprocess(BaseModel):
    """One task's mask postprocessing (module docstring); the default does nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_size: int = Field(0, ge=0, description="components of a class smaller than this many pixels are dropped")
    largest: Literal["none", "per_class", "foreground"] = "none"
    fill_holes: bool = False

    @property
    def active(self) -> bool:
        return self.min_size > 0 or self.largest != "none" or self.fill_holes

    @property
    def steps(self) -> int:
        """How many steps it applies (the cheaper of two equal choices has fewer)."""
        return int(self.min_size > 0) + int(self.largest != "none") + int(self.fill_holes)

    def __str__(self) -> str:
        parts = [f"min_size:{self.min_size}"] if self.min_size else []
        parts += [f"largest_{self.largest}"] if self.largest != "none" else []
        parts += ["fill_holes"] if self.fill_holes else []
        return "+".join(parts) or "none"


NONE = MaskPostprocess()


def parse_postprocess(text: str) -> MaskPostprocess:
    """``none``, or ``+``-joined steps: ``min_size:N``, ``largest_per_class``/``largest_foreground``, ``fill_holes``."""
    fields: dict[str, object] = {}
    for step in (s.strip() for s in text.strip().split("+")):
        name, _, value = step.partition(":")
        if step == "none" and text.strip() == "none":
            continue
        if name == "min_size" and value.strip().isdigit():
            fields["min_size"] = int(value)
        elif step in _LARGEST and "largest" not in fields:
            fields["largest"] = _LARGEST[step]
        elif step == "fill_holes":
            fields["fill_holes"] = True
        else:
            raise PostprocessError(f"postprocessing {text!r}: step {step!r} is not one of none, min_size:N, "
                                   "largest_per_class, largest_foreground, fill_holes (join steps with +)")
    return MaskPostprocess(**fields)  # type: ignore[arg-type]


def band_rows_for(width: int) -> int:
    return max(1, BAND_PIXELS // max(1, int(width)))


def _classes(mask: np.ndarray, band_rows: int) -> list[int]:
    """The foreground classes present (a histogram per band: no whole-image temporary)."""
    import cv2

    counts = np.zeros(256, np.int64)
    for top in range(0, mask.shape[0], band_rows):
        counts += cv2.calcHist([mask[top:top + band_rows]], [0], None, [256], [0, 256]).reshape(-1).astype(np.int64)
    return [int(c) for c in np.flatnonzero(counts[1:]) + 1]


def _drop(mask: np.ndarray, components, keep: np.ndarray) -> None:
    """Second pass: the selected pixels of components whose root is not kept become background."""
    rows = components.band_rows
    for index, top in enumerate(range(0, mask.shape[0], rows)):
        band = mask[top:top + rows]
        labels, roots = components.band_labels(band, index)
        drop = np.ones(len(roots), bool)
        drop[0] = False  # not selected
        drop[1:] = ~keep[roots[1:]]
        band[drop[labels]] = 0


def postprocess_mask(mask: np.ndarray, spec: MaskPostprocess, band_rows: int | None = None) -> np.ndarray:
    """Apply ``spec`` to an H x W uint8 class mask IN PLACE and return it (module docstring for the rules)."""
    if not spec.active:
        return mask
    from contract.components import label_bands

    if mask.ndim != 2 or mask.dtype != np.uint8 or not mask.flags.c_contiguous:
        raise ValueError(f"postprocessing needs a C-contiguous H x W uint8 mask, got {mask.dtype} {mask.shape}")
    rows = int(band_rows) if band_rows else band_rows_for(mask.shape[1])
    if spec.min_size or spec.largest == "per_class":
        for cls in _classes(mask, rows):
            components = label_bands(mask, lambda band, c=cls: band == c, 8, rows)
            roots = components.roots
            keep = np.zeros(len(components.root), bool)
            keep[roots] = components.area[roots] >= spec.min_size
            if spec.largest == "per_class":
                best = components.largest(roots[keep[roots]])
                keep[:] = False
                if best is not None:
                    keep[best] = True
            _drop(mask, components, keep)
    if spec.largest == "foreground":
        components = label_bands(mask, lambda band: band > 0, 8, rows)
        keep = np.zeros(len(components.root), bool)
        best = components.largest()
        if best is not None:
            keep[best] = True
        _drop(mask, components, keep)
    if spec.fill_holes:
        _fill_holes(mask, rows)
    return mask


def _fill_holes(mask: np.ndarray, rows: int) -> None:
    from contract.components import label_bands

    components = label_bands(mask, lambda band: band == 0, 4, rows, edge_classes=True)
    roots = components.roots
    hole = np.zeros(len(components.root), bool)
    hole[roots] = ~components.border[roots]
    if not hole.any():
        return
    fill_class = components.edge_class()
    for index, top in enumerate(range(0, mask.shape[0], rows)):
        band = mask[top:top + rows]
        labels, roots = components.band_labels(band, index)
        value = np.zeros(len(roots), np.uint8)  # 0: keep the pixel as it is
        value[1:] = np.where(hole[roots[1:]], fill_class[roots[1:]], 0)
        filled = value[labels]
        np.copyto(band, filled, where=filled > 0)
