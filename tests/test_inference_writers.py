"""inference.outputs.writers and records: atomic files, schema validation, the output path guard."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from pydantic import ValidationError

from inference.outputs import writers
from inference.errors import OutputPathError
from contract.kinds import ClassificationRecord, DetectionRecord, RegressionRecord
from inference.outputs.writers import OutputGuard, write_json_records, write_mask


def _record(p: float = 0.75) -> ClassificationRecord:
    return ClassificationRecord(image_path="../x.png", task_id="lung_2cls", predicted_class=0,
                                predicted_probs=[p, 1.0 - p])


class _Crash(RuntimeError):
    pass


def _crash_after_half(monkeypatch):
    """Make the next file write stop half-way, as a killed process would."""
    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        real_write = handle.write

        def write(data):
            real_write(data[: len(data) // 2])
            handle.flush()
            raise _Crash("simulated crash")

        handle.write = write
        return handle

    monkeypatch.setattr(writers.os, "fdopen", fdopen)


def test_crash_leaves_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "classification_predictions.json"
    write_json_records(target, [_record(0.75)])
    before = target.read_bytes()
    _crash_after_half(monkeypatch)
    with pytest.raises(_Crash):
        write_json_records(target, [_record(0.25)] * 50)
    assert target.read_bytes() == before
    assert json.loads(before)[0]["predicted_probs"] == [0.75, 0.25]
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temporary left over


def test_crash_leaves_no_file(tmp_path, monkeypatch):
    _crash_after_half(monkeypatch)
    with pytest.raises(_Crash):
        write_mask(tmp_path / "m" / "a.png", np.ones((5, 7), np.uint8))
    assert list((tmp_path / "m").iterdir()) == []


def test_json_holds_plain_numbers(tmp_path):
    rec = DetectionRecord(image_path="../a.png", task_id="thyroid_nodule_det",
                          bbox_normalized=[np.float32(0.5), 0.1, 0.2, 0.3], bbox_pixels=[1, 2, 3, 4])
    text = write_json_records(tmp_path / "d.json", [rec]).read_text()
    data = json.loads(text)
    assert data == [{"image_path": "../a.png", "task_id": "thyroid_nodule_det",
                     "bbox_normalized": [0.5, 0.1, 0.2, 0.3], "bbox_pixels": [1.0, 2.0, 3.0, 4.0]}]


def test_records_refuse_invalid_values():
    with pytest.raises(ValidationError):
        _record(1.5)  # probabilities outside [0, 1]
    with pytest.raises(ValidationError):
        ClassificationRecord(image_path="a", task_id="t", predicted_class=0, predicted_probs=[0.5, 0.4])
    with pytest.raises(ValidationError):
        ClassificationRecord(image_path="a", task_id="t", predicted_class=2, predicted_probs=[0.5, 0.5])
    with pytest.raises(ValidationError):
        DetectionRecord(image_path="a", task_id="t", bbox_normalized=[0, 0, 1], bbox_pixels=[0, 0, 1, 1])
    with pytest.raises(ValidationError):
        RegressionRecord(image_path="a", task_id="t", predicted_points_normalized=[0.1, float("nan")],
                         predicted_points_pixels=[1, 2])


def test_mask_target_strips_leading_parents(tmp_path):
    guard = OutputGuard(tmp_path / "out", tmp_path / "in")
    target = guard.mask_target("../Segmentation/Two/ds/MASKS/a.png")
    assert target == (tmp_path / "out" / "Segmentation/Two/ds/MASKS/a.png").resolve()
    assert guard.mask_target("./../../x/a.png") == (tmp_path / "out" / "x/a.png").resolve()


@pytest.mark.parametrize("bad", ["/etc/passwd.png", "../Seg/../../../escape.png", "../a/../..", "..", "../"])
def test_mask_target_refuses_escapes(tmp_path, bad):
    guard = OutputGuard(tmp_path / "out")
    with pytest.raises(OutputPathError):
        guard.mask_target(bad)


def test_guard_refuses_the_input_folder(tmp_path):
    guard = OutputGuard(tmp_path, tmp_path / "input")
    with pytest.raises(OutputPathError, match="input folder"):
        guard.mask_target("../input/Segmentation/a.png")
    assert guard.mask_target("../output/Segmentation/a.png").parent.name == "Segmentation"


def test_atomic_writes_are_readable_by_other_users(tmp_path):
    """Outputs are read by the platform's user, not ours: no owner-only mkstemp mode."""
    import stat

    from contract.atomic import atomic_write_bytes

    target = atomic_write_bytes(tmp_path / "out.json", b"[]")
    assert target.stat().st_mode & stat.S_IROTH
