"""Clinical measurements drawn on the review's overlays: the fitted head and abdomen ellipses, the femur
caliper, the angle of progression, each with its value (``biometry``, measured on the run's predictions)."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from review.collect import Review

log = logging.getLogger(__name__)


def attach_measurements(review: Review, input_dir: Path, predictions_dir: Path) -> int:
    """Give each item the measurements of its prediction; returns how many items got some."""
    from biometry.run import BiometryInputError, measure_run

    try:
        result = measure_run(Path(input_dir), Path(predictions_dir), labels=False, overlays=True)
    except (BiometryInputError, OSError, ValueError) as exc:
        log.warning("no clinical measurements drawn: %s", exc)
        return 0
    by_row = defaultdict(list)
    for measurement in result.measurements:
        by_row[(measurement.image_path, measurement.task_id)].append(measurement)
    count = 0
    for view in review.tasks:
        for item in view.items:
            item.measurements = by_row.get((item.row.image_path, item.row.task_id), [])
            count += bool(item.measurements)
    return count
