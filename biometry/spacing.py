"""Pixel spacing (millimetres per pixel) of a row, and where it came from.

Precedence, first that applies:

1. ``flag``: ``--pixel-spacing`` (or ``measure_run(pixel_spacing=...)``), for every row;
2. ``csv``: the row's ``pixel_spacing`` cell;
3. ``image``: the header of the row's image when it is a medical format read by SimpleITK
   (``.mha``/``.mhd``, ``.nii``/``.nii.gz``, ``.nrrd``, DICOM: ``.dcm``/``.dicom`` or a file with
   the ``DICM`` preamble), whose spacing is in millimetres;
4. ``none``: values in pixels (``unit`` = ``px``).

A spacing of exactly 1 x 1 in an image header counts as unknown: it is what ITK reports when
the file carries none (a MetaImage without ``ElementSpacing``, a DICOM without Pixel Spacing), and
no ultrasound image has 1 mm pixels. A DICOM whose header has none of Pixel Spacing (0028,0030),
Imager Pixel Spacing (0018,1164) and Nominal Scanned Pixel Spacing (0018,2010) is unknown too (the
calibration of an ultrasound DICOM's Sequence of Ultrasound Regions is not read: give the flag or
the CSV column for those). Text forms accepted for the flag and the CSV
cell: one number (square pixels), or two for x and y: ``0.1,0.12``, ``0.1 0.12`` or ``[0.1, 0.12]``.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

COLUMN = "pixel_spacing"
SITK_SUFFIXES = (".mha", ".mhd", ".nii", ".nii.gz", ".nrrd")
DICOM_SUFFIXES = (".dcm", ".dicom")
DICOM_SPACING_TAGS = ("0028|0030", "0018|1164", "0018|2010")
SOURCES = ("flag", "csv", "image", "none")


@dataclass(frozen=True)
class Spacing:
    """Millimetres per pixel along x (columns) and y (rows); ``source`` one of ``SOURCES``."""

    x: float = 1.0
    y: float = 1.0
    source: str = "none"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown spacing source {self.source!r}")
        for value in (self.x, self.y):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"pixel spacing must be a positive number, got {value!r}")

    @property
    def known(self) -> bool:
        return self.source != "none"

    @property
    def unit(self) -> str:
        """Unit of the lengths measured with this spacing."""
        return "mm" if self.known else "px"

    def scale(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (n x 2) -> millimetres (or pixels when unknown)."""
        return np.asarray(points, dtype=np.float64).reshape(-1, 2) * (self.x, self.y)

    def unscale(self, points: np.ndarray) -> np.ndarray:
        """The inverse of ``scale``: back to pixel coordinates, for drawing."""
        return np.asarray(points, dtype=np.float64).reshape(-1, 2) / (self.x, self.y)

    def describe(self) -> str:
        if not self.known:
            return "unknown (pixels)"
        size = f"{self.x:g}" if self.x == self.y else f"{self.x:g} x {self.y:g}"
        return f"{size} mm/px from {self.source}"


PIXELS = Spacing()


def parse_spacing(text: str, source: str = "flag") -> Spacing:
    """``"0.2"`` or ``"0.2,0.25"`` (x, y; also space separated or ``[0.2, 0.25]``) -> Spacing; ValueError if not."""
    parts = [p for p in re.split(r"[\s,;]+", text.strip().strip("[]()").strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"pixel spacing {text!r} is not a number (mm per pixel, e.g. 0.2 or 0.2,0.25)") from None
    if len(values) not in (1, 2):
        raise ValueError(f"pixel spacing {text!r}: give one value, or two (x, y)")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"pixel spacing {text!r} must be positive")
    return Spacing(values[0], values[-1], source)


def _is_dicom(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(DICOM_SUFFIXES):
        return True
    if path.suffix:  # only files without a suffix are sniffed
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def spacing_from_image(path: Path) -> Spacing | None:
    """The x/y spacing written in a medical image's header, or None when there is none to trust."""
    path = Path(path)
    dicom = _is_dicom(path)
    if not (dicom or path.name.lower().endswith(SITK_SUFFIXES)) or not path.is_file():
        return None
    import SimpleITK as sitk  # lazy: only medical formats need it

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        log.warning("%s: cannot read its header for the pixel spacing (%s)", path, str(exc).strip().splitlines()[-1])
        return None
    if dicom and not any(reader.HasMetaDataKey(tag) for tag in DICOM_SPACING_TAGS):
        return None
    spacing = tuple(float(v) for v in reader.GetSpacing()[:2])
    if len(spacing) < 2 or spacing == (1.0, 1.0):
        return None
    try:
        return Spacing(spacing[0], spacing[1], "image")
    except ValueError:
        log.warning("%s: header spacing %s is not usable", path, spacing)
        return None


def resolve_spacing(flag: Spacing | None, cell: str | None, image: Path | None) -> Spacing:
    """The row's spacing by the module's precedence; ValueError for a malformed ``pixel_spacing`` cell."""
    if flag is not None:
        return flag
    if cell is not None and cell.strip():
        try:
            return parse_spacing(cell, "csv")
        except ValueError as exc:
            raise ValueError(f"{COLUMN} column: {exc}") from None
    if image is not None:
        found = spacing_from_image(image)
        if found is not None:
            return found
    return PIXELS
