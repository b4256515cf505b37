"""The values this package hands out: a measurement, its drawing geometry, a row that could not be measured.

``Measurement.record()`` is one record of the output file, exactly the five keys
``task_id, image_path, measure, value, unit``; the rest (where the row is, the spacing's
source, a note, the overlay) is for the report, the review page and the logs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

#: The measures, in the order they are written.
MEASURES: tuple[str, ...] = ("HC", "BPD", "OFD", "AC", "FL", "AoP", "HSD")
UNITS: tuple[str, ...] = ("mm", "px", "deg")
Source = Literal["prediction", "label"]
Point = tuple[float, float]


class MeasureError(ValueError):
    """A row whose mask or points give no trustworthy value; the message is the reason, for the problems list."""


@dataclass(frozen=True)
class Overlay:
    """What to draw for one measurement, in the image's own pixel coordinates (x right, y down).

    ``kind``: ``ellipse`` (``points`` is a closed polygon of the fitted ellipse), ``segment``
    (``points`` = the two ends of a caliper) or ``angle`` (``points`` = [end of arm 1, vertex,
    end of arm 2]; for AoP arm 1 runs along the pubic symphysis, arm 2 is the tangent to the head).
    ``anchor``: where the value's text goes.
    """

    kind: Literal["ellipse", "segment", "angle"]
    points: list[Point]
    anchor: Point

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """One measure of one CSV row, from the run's prediction or from the row's label."""

    task_id: str
    image_path: str
    measure: str
    value: float
    unit: str
    csv_file: str = ""
    row: int = 0
    source: Source = "prediction"
    spacing_source: str = "none"
    note: str = ""
    overlay: Overlay | None = None

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(f"unknown measure {self.measure!r}; expected one of {MEASURES}")
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}; expected one of {UNITS}")

    def record(self) -> dict:
        """The output file's record: ``task_id, image_path, measure, value, unit``."""
        return {"task_id": self.task_id, "image_path": self.image_path, "measure": self.measure,
                "value": round(float(self.value), 4), "unit": self.unit}

    def to_dict(self) -> dict:
        """Everything, the overlay included (JSON-ready)."""
        out = self.record()
        out.update(csv_file=self.csv_file, row=self.row, source=self.source, spacing_source=self.spacing_source,
                   note=self.note, overlay=self.overlay.to_dict() if self.overlay else None)
        return out


@dataclass(frozen=True)
class Problem:
    """A row (or one side of it) that gave no value, and why."""

    csv_file: str
    row: int
    image_path: str
    task_id: str
    source: Source
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return f"{self.csv_file} row {self.row} ({self.task_id}, {self.image_path}), {self.source}: {self.reason}"
