"""Which CPU path a run takes (``--precision auto``/``bf16``), and that a failing CPU variant never costs a run.

The OpenVINO runtime itself is not needed here: its presence, the CPU's flags, the crash probe and
the compiler are replaced where a test says so; the engine's fallback then runs ONNX Runtime for real.
"""

from __future__ import annotations

import logging
import shutil
import sys

import numpy as np
import pytest

from contract.manifest import CpuVariantCheck, ManifestError, ModelFolder, load_manifest, write_manifest
from inference.engines import cpu_variants, openvino_probe, openvino_runner
from inference.engines.fallback import FallbackEngine
from inference.engines.onnx_engine import OnnxEngine
from inference.engines.openvino_runner import OpenVinoRunner
from inference.engines.runner import GraphRunner
from inference.errors import FatalError


def _check(passed: bool, speedup: float = 1.6) -> CpuVariantCheck:
    return CpuVariantCheck(runtime="openvino 2026.4.1 CPU, inference precision bf16", passed=passed, images=12,
                           figures={"segmentation.mask_agreement_min": 0.999 if passed else 0.95},
                           failures=[] if passed else ["x.csv line 2 (fetal_head): mask agreement 0.9500 (< 0.99)"],
                           speedup=speedup, fp32_ms_per_image=30.0, startup_s=3.0)


@pytest.fixture
def model_with(tiny_model_dir, tmp_path):
    """A copy of the tiny model whose manifest records the given bf16 check (None: no record)."""
    made = []

    def make(check: CpuVariantCheck | None) -> ModelFolder:
        made.append(check)
        folder = tmp_path / f"model{len(made)}"
        shutil.copytree(tiny_model_dir, folder)
        manifest = load_manifest(folder)
        if check is not None:
            write_manifest(manifest.model_copy(update={"cpu_variants": {"bf16": check}}), folder)
        return ModelFolder.open(folder)
    return make


@pytest.fixture
def runnable(monkeypatch):
    """The variant can run here: package present, CPU flags present, the probe answers "usable"."""
    monkeypatch.setattr(cpu_variants, "package_present", lambda name: True)
    monkeypatch.setattr(cpu_variants, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    monkeypatch.setattr(openvino_probe, "_ANSWERS", {})
    monkeypatch.setattr(openvino_probe, "_ask_child", lambda hint, threads: None)


def _batch(folder: ModelFolder, n: int = 2) -> np.ndarray:
    h, w = folder.manifest.model.preprocessing.input_size
    return np.random.default_rng(0).standard_normal((n, 3, h, w)).astype(np.float32)


def test_old_manifests_stay_valid_and_records_round_trip(model_with):
    assert model_with(None).manifest.cpu_variants is None
    folder = model_with(_check(True))
    assert folder.manifest.cpu_variants["bf16"].passed is True
    assert folder.manifest.cpu_variants["bf16"].speedup == 1.6


def test_a_record_naming_an_unknown_variant_or_graph_set_is_refused(model_with):
    folder = model_with(None)
    manifest = folder.manifest
    text = manifest.model_copy(update={"cpu_variants": {"int4": _check(True)}}).model_dump_json()
    (folder.path / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match="known CPU variants: bf16"):
        load_manifest(folder.path)
    bad = _check(True).model_copy(update={"graph_set": "int8"})
    (folder.path / "manifest.json").write_text(manifest.model_copy(update={"cpu_variants": {"bf16": bad}}).model_dump_json())
    with pytest.raises(ManifestError, match="graph set 'int8'"):
        load_manifest(folder.path)


def test_auto_uses_a_passed_variant_that_can_run(model_with, runnable):
    folder = model_with(_check(True))
    engine = OnnxEngine(folder, device="cpu", precision="auto", threads=1)
    assert engine.precision == "bf16"
    assert isinstance(engine.runner, OpenVinoRunner)


def test_a_variant_that_failed_its_check_is_never_chosen(model_with, monkeypatch, caplog):
    monkeypatch.setattr(cpu_variants, "unavailable_reason",
                        lambda *a, **k: pytest.fail("a failed variant must not even be probed"))
    folder = model_with(_check(False))
    engine = OnnxEngine(folder, device="cpu", precision="auto", threads=1)
    assert engine.precision == "fp32" and isinstance(engine.runner, GraphRunner)


def test_an_unchecked_model_keeps_fp32(model_with, runnable):
    engine = OnnxEngine(model_with(None), device="cpu", precision="auto", threads=1)
    assert engine.precision == "fp32"


def test_explicit_fp32_keeps_todays_path_even_with_a_passed_variant(model_with, runnable):
    engine = OnnxEngine(model_with(_check(True)), device="cpu", precision="fp32", threads=1)
    assert engine.precision == "fp32" and isinstance(engine.runner, GraphRunner)


def test_runtime_package_missing_falls_back_to_fp32_with_the_reason(model_with, monkeypatch, caplog):
    monkeypatch.setattr(cpu_variants, "package_present", lambda name: False)
    caplog.set_level(logging.WARNING, logger="inference.engines.cpu_variants")
    engine = OnnxEngine(model_with(_check(True)), device="cpu", precision="auto", threads=1)
    assert engine.precision == "fp32"
    assert "openvino package is not installed" in caplog.text


def test_cpu_without_bf16_instructions_falls_back(model_with, monkeypatch):
    monkeypatch.setattr(cpu_variants, "package_present", lambda name: True)
    monkeypatch.setattr(cpu_variants, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert OnnxEngine(model_with(_check(True)), device="cpu", precision="auto", threads=1).precision == "fp32"


def test_a_probe_that_crashes_is_reported_and_the_run_stays_on_fp32(model_with, monkeypatch, caplog):
    """The probe child dies of SIGFPE (as OpenVINO's compile_model did on some Zen 4 EPYC): fp32, one line."""
    monkeypatch.setattr(cpu_variants, "package_present", lambda name: True)
    monkeypatch.setattr(cpu_variants, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(openvino_probe, "_ANSWERS", {})
    monkeypatch.setattr(openvino_probe, "probe_command", lambda hint, threads: [
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGFPE)"])
    caplog.set_level(logging.WARNING, logger="inference.engines.cpu_variants")
    folder = model_with(_check(True))
    engine = OnnxEngine(folder, device="cpu", precision="auto", threads=1)
    assert engine.precision == "fp32"
    assert "crashed (SIGFPE)" in caplog.text
    task = folder.manifest.task("fetal_head")
    assert engine.run(task, _batch(folder))["logits"].shape[0] == 2


def test_a_compile_failure_inside_the_run_leaves_the_variant_for_fp32(model_with, runnable, monkeypatch, caplog):
    class BrokenCore:
        def compile_model(self, *args, **kwargs):
            raise RuntimeError("Exception from src/inference/src/cpp/core.cpp: cannot compile")

    monkeypatch.setattr(openvino_runner, "openvino_core", lambda: BrokenCore())
    caplog.set_level(logging.WARNING, logger="inference.engines.onnx_engine")
    folder = model_with(_check(True))
    engine = OnnxEngine(folder, device="cpu", precision="auto", threads=1)
    task = folder.manifest.task("fetal_head")
    out = engine.run(task, _batch(folder))["logits"]
    expected = OnnxEngine(folder, device="cpu", precision="fp32", threads=1).run(task, _batch(folder))["logits"]
    np.testing.assert_array_equal(out, expected)
    assert engine.precision == "fp32" and "cannot compile" in engine.description
    assert caplog.text.count("running ONNX Runtime fp32 instead") == 1


def test_too_few_images_do_not_pay_for_the_variant(model_with, runnable):
    folder = model_with(_check(True))  # 30 ms/image at fp32, 1.6x, 3 s of start-up: ~267 images to break even
    assert OnnxEngine(folder, device="cpu", precision="auto", threads=1, expected_images=1).precision == "fp32"
    assert OnnxEngine(folder, device="cpu", precision="auto", threads=1, expected_images=100).precision == "fp32"
    assert OnnxEngine(folder, device="cpu", precision="auto", threads=1, expected_images=1000).precision == "bf16"


def test_explicit_bf16_that_cannot_run_is_a_clear_fatal_error(model_with, monkeypatch):
    monkeypatch.setattr(cpu_variants, "package_present", lambda name: False)
    engine = FallbackEngine(model_with(_check(True)), device="cpu", precision="bf16", threads=1)
    folder = engine.folder
    with pytest.raises(FatalError, match="--precision bf16 .* cannot run here: the openvino package"):
        engine.run(folder.manifest.task("fetal_head"), _batch(folder))


@pytest.mark.skipif(not cpu_variants.package_present("openvino"), reason="openvino is not installed")
def test_openvino_bf16_runs_the_fp32_graphs_close_to_fp32(model_with):
    folder = model_with(_check(True))
    if cpu_variants.unavailable_reason(cpu_variants.VARIANTS["bf16"], 1) is not None:
        pytest.skip("bf16 cannot run on this CPU")
    variant = OnnxEngine(folder, device="cpu", precision="bf16", threads=1)
    fp32 = OnnxEngine(folder, device="cpu", precision="fp32", threads=1)
    for task_id in ("fetal_head", "breast_2cls", "thyroid_nodule_det", "FUGC"):
        task = folder.manifest.task(task_id)
        a, b = fp32.run(task, _batch(folder, 3)), variant.run(task, _batch(folder, 3))
        for role in a:
            scale = max(float(np.abs(a[role]).max()), 1e-3)
            assert float(np.abs(a[role] - b[role]).max()) / scale < 0.1, (task_id, role)
    assert "OpenVINO CPU bf16" in variant.description


def test_auto_runs_only_the_kinds_that_passed_on_the_variant(model_with, runnable, monkeypatch):
    """Masks and probabilities passed, boxes and points did not: detection never touches the variant."""
    class NoCompile:
        def compile_model(self, *args, **kwargs):
            pytest.fail("a kind that failed the check must not be compiled by the variant")

    monkeypatch.setattr(openvino_runner, "openvino_core", lambda: NoCompile())
    check = _check(False).model_copy(update={"kinds_passed": ["classification", "segmentation"]})
    folder = model_with(check)
    engine = OnnxEngine(folder, device="cpu", precision="auto", threads=1)
    assert engine.precision == "bf16" and engine.variant_kinds == {"classification", "segmentation"}
    assert isinstance(engine._runner_for(folder.manifest.task("fetal_head")), OpenVinoRunner)
    detection = folder.manifest.task("thyroid_nodule_det")
    assert isinstance(engine._runner_for(detection), GraphRunner)
    expected = OnnxEngine(folder, device="cpu", precision="fp32", threads=1).run(detection, _batch(folder))
    np.testing.assert_array_equal(engine.run(detection, _batch(folder))["grid"], expected["grid"])
    assert "for classification, segmentation tasks only" in engine.description


def test_a_record_with_no_kind_passed_is_never_used(model_with, runnable):
    check = _check(False).model_copy(update={"kinds_passed": []})
    assert OnnxEngine(model_with(check), device="cpu", precision="auto", threads=1).precision == "fp32"
