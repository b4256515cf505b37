"""The benchmark's judging logic (no timing): output agreement, refused ratios, log parsing, input counts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.compare import FP32_VS_REFERENCE, REDUCED_VS_FP32, compare_folders
from benchmarks.dataset import VALIDATION_ROWS, kind_totals, validation_counts
from benchmarks.measure import parse_log
from benchmarks.report import RESULTS_END, RESULTS_START, update_benchmarks_md
from benchmarks.run import ratio_or_refusal
from contract.tasks import TaskRegistry


def _input(root: Path) -> Path:
    csv_dir = root / "input" / "csv_files"
    csv_dir.mkdir(parents=True)
    (csv_dir / "a_cls.csv").write_text("image_path,task_id,task_name,num_classes\n"
                                       "../Classification/x/1.png,breast_2cls,classification,2\n"
                                       "../Classification/x/2.png,breast_2cls,classification,2\n")
    (csv_dir / "b_seg.csv").write_text("image_path,task_id,task_name,num_classes,mask_path\n"
                                       "../Segmentation/Two/s/1.png,fetal_head,segmentation,2,../Segmentation/Two/s/m1.png\n")
    (csv_dir / "c_det.csv").write_text("image_path,task_id,task_name,num_classes\n"
                                       "../Detection/d/1.png,thyroid_nodule_det,detection,1\n")
    return root / "input"


def _outputs(folder: Path, probs=(0.25, 0.75), mask_changed: int = 0, box=(0.1, 0.2, 0.3, 0.4),
             drop_second: bool = False) -> Path:
    folder.mkdir(parents=True)
    cls = [{"image_path": "../Classification/x/1.png", "task_id": "breast_2cls", "predicted_class": 1,
            "predicted_probs": list(probs)}]
    if not drop_second:
        cls.append({"image_path": "../Classification/x/2.png", "task_id": "breast_2cls", "predicted_class": 0,
                    "predicted_probs": [0.9, 0.1]})
    (folder / "classification_predictions.json").write_text(json.dumps(cls))
    (folder / "detection_predictions.json").write_text(json.dumps([
        {"image_path": "../Detection/d/1.png", "task_id": "thyroid_nodule_det", "bbox_normalized": list(box),
         "bbox_pixels": [v * 100 for v in box]}]))
    (folder / "regression_predictions.json").write_text("[]")
    mask = np.zeros((50, 100), np.uint8)
    mask[10:30, 20:60] = 1
    mask.reshape(-1)[:mask_changed] = 2
    (folder / "Segmentation/Two/s").mkdir(parents=True)
    cv2.imwrite(str(folder / "Segmentation/Two/s/m1.png"), mask)
    return folder


def test_identical_outputs_agree_and_give_the_wall_time_ratio(tmp_path):
    inp = _input(tmp_path)
    result = compare_folders(inp, _outputs(tmp_path / "ref"), _outputs(tmp_path / "ours"), FP32_VS_REFERENCE).as_dict()
    assert result["agrees"] and result["rows"] == 4 and result["differing_rows"] == []
    assert result["figures"]["segmentation.mask_agreement_min"] == 1.0
    ratio, why = ratio_or_refusal("ours_fp32", {"reference": 30.0, "ours_fp32": 6.0}, True, [result])
    assert ratio == pytest.approx(5.0) and why == ""


def test_probability_beyond_tolerance_refuses_the_ratio_and_names_the_row(tmp_path):
    inp = _input(tmp_path)
    result = compare_folders(inp, _outputs(tmp_path / "ref"), _outputs(tmp_path / "ours", probs=(0.2502, 0.7498)),
                             FP32_VS_REFERENCE).as_dict()
    assert not result["agrees"]
    [row] = result["differing_rows"]
    assert "a_cls.csv line 2" in row and "breast_2cls" in row and "../Classification/x/1.png" in row
    assert "probabilities differ by 0.0002" in row
    ratio, why = ratio_or_refusal("ours_fp32", {"reference": 30.0, "ours_fp32": 6.0}, True, [result])
    assert ratio is None and "refused" in why and "1 rows differ" in why


def test_within_tolerance_differences_are_accepted(tmp_path):
    inp = _input(tmp_path)
    result = compare_folders(inp, _outputs(tmp_path / "ref"),
                             _outputs(tmp_path / "ours", probs=(0.25004, 0.74996), box=(0.10005, 0.2, 0.3, 0.4)),
                             FP32_VS_REFERENCE)
    assert result.agrees
    assert result.figures["classification.max_abs_prob_diff"] == pytest.approx(4e-5)
    assert result.figures["detection.max_abs_box_diff"] == pytest.approx(5e-5)


def test_box_and_missing_record_are_listed(tmp_path):
    inp = _input(tmp_path)
    result = compare_folders(inp, _outputs(tmp_path / "ref"),
                             _outputs(tmp_path / "ours", box=(0.5, 0.2, 0.3, 0.4), drop_second=True), FP32_VS_REFERENCE)
    assert len(result.differing) == 2
    assert any("c_det.csv line 2" in r and "bbox_normalized differ by 0.4" in r for r in result.differing)
    assert any("a_cls.csv line 3" in r and "no record" in r for r in result.differing)


def test_mask_agreement_threshold_for_reduced_precision(tmp_path):
    inp = _input(tmp_path)
    ref = _outputs(tmp_path / "ref")
    slightly = compare_folders(inp, ref, _outputs(tmp_path / "ok", mask_changed=40), REDUCED_VS_FP32)  # 0.8 %
    assert slightly.agrees and slightly.figures["segmentation.mask_agreement_min"] == pytest.approx(0.992)
    worse = compare_folders(inp, ref, _outputs(tmp_path / "bad", mask_changed=60), REDUCED_VS_FP32)  # 1.2 %
    assert [r for r in worse.differing if "b_seg.csv line 2" in r and "mask agreement 0.9880" in r]
    ratio, why = ratio_or_refusal("ours_int8", {"reference": 30.0, "ours_int8": 3.0}, True, [worse.as_dict()])
    assert ratio is None and "reduced precision vs fp32" in why


def test_a_failed_pipeline_gets_no_ratio(tmp_path):
    ratio, why = ratio_or_refusal("ours_fp32", {"reference": 30.0, "ours_fp32": 6.0}, False, [])
    assert ratio is None and "failed" in why


def test_log_markers_give_first_output_and_steady_rate_per_kind():
    text = ("inference: INFO: first predictions ready at unix time 1010.500000\n"
            "inference: DEBUG: batch done: breast_2cls classification 8 images at unix time 1010.500000\n"
            "inference: DEBUG: batch done: breast_2cls classification 4 images at unix time 1011.500000\n"
            "inference: DEBUG: batch done: fetal_head segmentation 8 images at unix time 1013.500000\n")
    first, images, seconds = parse_log(text, started=1000.0)
    assert first == pytest.approx(10.5)
    assert images == {"classification": 4, "segmentation": 8}
    assert seconds == pytest.approx({"classification": 1.0, "segmentation": 2.0})


def test_validation_proportions_reach_every_task():
    counts = validation_counts(0.02)
    registry = TaskRegistry.official()
    assert set(counts) == set(registry.ids) and min(counts.values()) >= 1
    totals = kind_totals(counts)
    for kind, rows in VALIDATION_ROWS.items():
        assert totals[kind.value] == max(round(rows * 0.02), len([t for t in registry if t.kind is kind]))
    with pytest.raises(ValueError):
        validation_counts(0)


def test_results_section_is_replaced_and_the_header_kept(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(f"# Benchmarks\n\nhand-written header\n\n{RESULTS_START}\nold\n{RESULTS_END}\n\nfooter\n")
    update_benchmarks_md(md, "new results")
    text = md.read_text()
    assert "hand-written header" in text and "footer" in text and "new results" in text and "old" not in text
