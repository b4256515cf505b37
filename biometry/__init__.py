"""Clinical biometry from a run's outputs: HC, BPD, OFD, AC, FL, the angle of progression and HSD.

Library use (the runtime's ``--biometry`` and the review report call these)::

    from biometry import measure_run, write_measurements
    result = measure_run(input_dir, predictions_dir, pixel_spacing=None)
    write_measurements(result, predictions_dir / "biometry.json")

``result.measurements`` are ``Measurement`` objects (``record()`` gives the file's record;
``overlay`` the geometry to draw, see ``biometry.draw``). Definitions and sources: docs/biometry.md.
Only ``contract``, numpy, OpenCV, SimpleITK and pydantic are imported: the runtime can use it.
"""

from biometry.measures import TASKS
from biometry.model import MEASURES, MeasureError, Measurement, Overlay, Problem
from biometry.output import output_paths, write_measurements
from biometry.run import BiometryInputError, BiometryResult, measure_run
from biometry.spacing import Spacing, parse_spacing

__all__ = [
    "MEASURES", "TASKS", "BiometryInputError", "BiometryResult", "MeasureError", "Measurement", "Overlay",
    "Problem", "Spacing", "measure_run", "output_paths", "parse_spacing", "write_measurements",
]
