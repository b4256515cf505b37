"""The CPU variants' accuracy check (``exporter.cpu_check``): what it compares, what it records."""

from __future__ import annotations

import json
import shutil

import cv2
import pytest

from contract.manifest import CpuVariantCheck, ModelFolder
from exporter import cpu_check
from exporter.cpu_compare import TOLERANCES, compare_outputs
from inference.layouts import batch
from inference.options import RunOptions
from phantoms.generate import generate_dataset


@pytest.fixture(scope="module")
def predicted(tiny_model_dir, tmp_path_factory):
    """Labelled phantoms of one task per kind, predicted at fp32 by the runtime."""
    root = tmp_path_factory.mktemp("cpu_check")
    images = generate_dataset(root / "images", 7, {"fetal_head": 3, "breast_2cls": 3, "thyroid_nodule_det": 3,
                                                   "FUGC": 3}, labels=True, progress=False)
    out = root / "fp32"
    out.mkdir()
    batch.run(RunOptions(input_dir=images, output_dir=out, device="cpu", precision="fp32", threads=1),
              ModelFolder.open(tiny_model_dir))
    return images, out


def test_identical_outputs_pass_every_kind(predicted, tmp_path):
    images, fp32 = predicted
    same = tmp_path / "same"
    shutil.copytree(fp32, same)
    result = compare_outputs(images, fp32, same)
    assert result.passed and result.images == 12
    assert result.kinds_passed == ["Regression", "classification", "detection", "segmentation"]
    assert result.figures["segmentation.mask_agreement_min"] == 1.0
    assert any(key.startswith("metric_gap.") for key in result.figures)  # labelled: official metrics compared


def test_a_changed_mask_and_a_box_moved_2_px_fail_their_kinds_only(predicted, tmp_path):
    images, fp32 = predicted
    changed = tmp_path / "changed"
    shutil.copytree(fp32, changed)
    mask_file = sorted(changed.rglob("*.png"))[0]
    mask = cv2.imread(str(mask_file), cv2.IMREAD_UNCHANGED)
    mask.reshape(-1)[: mask.size // 50] ^= 1  # 2 % of the pixels
    cv2.imwrite(str(mask_file), mask)
    detection = changed / "detection_predictions.json"
    records = json.loads(detection.read_text())
    records[0]["bbox_pixels"][0] += 2.0
    detection.write_text(json.dumps(records))
    result = compare_outputs(images, fp32, changed)
    assert not result.passed
    assert result.kinds_passed == ["Regression", "classification"]
    assert any("mask agreement 0.98" in f for f in result.failures)
    assert any("bbox_pixels differ by 2 (> 1)" in f for f in result.failures)
    assert TOLERANCES["pixels"] == 1.0 and TOLERANCES["mask_agreement"] == 0.99


def test_the_check_records_its_verdict_in_the_manifest(tiny_model_dir, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    verdict = CpuVariantCheck(runtime="openvino test", passed=False, kinds_passed=["segmentation"], images=4,
                              failures=["x.csv line 2 (FUGC): predicted_points_pixels differ by 3 (> 1)"])
    monkeypatch.setattr(cpu_check, "check_variant", lambda *args: verdict)
    images = generate_dataset(tmp_path / "images", 7, {"fetal_head": 1}, labels=True, progress=False)
    assert cpu_check.main([str(folder), "--images", str(images)]) == 1  # a variant failed
    recorded = ModelFolder.open(folder).manifest.cpu_variants["bf16"]
    assert recorded.model_copy(update={"compiled": None}) == verdict and recorded.usable_kinds() == {"segmentation"}
    if recorded.compiled is not None:  # OpenVINO could compile here: the graphs it runs are in the folder
        assert set(recorded.compiled.graphs) == {"encoder", "fpn"}
        assert all((folder / blob.path).is_file() for blob in recorded.compiled.graphs.values())


def test_nothing_is_recorded_when_no_variant_can_run_here(tiny_model_dir, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    monkeypatch.setattr(cpu_check, "unavailable_reason", lambda *args: "the openvino package is not installed")
    images = generate_dataset(tmp_path / "images", 7, {"fetal_head": 1}, labels=True, progress=False)
    assert cpu_check.main([str(folder), "--images", str(images)]) == 1
    assert ModelFolder.open(folder).manifest.cpu_variants is None
