"""The review draws the clinical measurements of the predictions (ellipse, caliper, angle) with their values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.cli import main as inference_main
from review.biometry import attach_measurements
from review.collect import collect
from review.draw import render

ROOT = Path(__file__).resolve().parent.parent
INPUT = ROOT / "test" / "input"


def test_the_head_and_femur_overlays_carry_their_measurements(tmp_path):
    out = tmp_path / "out"
    assert inference_main(["--input", str(INPUT), "--output", str(out), "--device", "cpu"]) == 0  # the default model
    review = collect(INPUT, out)
    assert attach_measurements(review, INPUT, out) > 0
    items = {view.task_id: view.items for view in review.tasks}
    femur = [item for item in items["fetal_femur"] if item.measurements]
    assert femur and all(m.measure == "FL" for item in femur for m in item.measurements)
    heads = [item for item in items["fetal_head"] if item.measurements]
    assert heads and {"HC", "BPD", "OFD"} <= {m.measure for m in heads[0].measurements}
    assert not any(item.measurements for item in items["breast_2cls"])  # no measure for other tasks
    for item in (femur[0], heads[0]):
        drawn = render(item)
        kept, item.measurements = item.measurements, []
        plain = render(item)
        item.measurements = kept
        assert drawn.shape == plain.shape and np.any(drawn != plain)  # the ellipse / caliper and value are drawn
