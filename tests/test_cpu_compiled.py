"""Compiled graphs kept in the model folder (``exporter.cpu_compiled``): imported by a like machine, and never
trusted blindly: another OpenVINO or CPU, a damaged file, or a file outside the folder means compiling the ONNX
file as before, with the same outputs."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from contract.export_records import CompiledGraphs
from contract.manifest import CpuVariantCheck, ModelFolder, load_manifest, write_manifest
from exporter.cpu_compiled import write_compiled
from inference.engines import cpu_variants
from inference.engines.onnx_engine import OnnxEngine

pytestmark = pytest.mark.skipif(
    not cpu_variants.package_present("openvino")
    or cpu_variants.unavailable_reason(cpu_variants.VARIANTS["bf16"], 1, probe=False) is not None,
    reason="needs the openvino package and a CPU with bf16 instructions")

CHECK = CpuVariantCheck(runtime="openvino CPU, inference precision bf16", passed=True, images=4, speedup=1.6,
                        fp32_ms_per_image=30.0, startup_s=0.5)


@pytest.fixture
def compiled_model(tiny_model_dir, tmp_path) -> ModelFolder:
    """A copy of the tiny model with a passed bf16 record and its graphs compiled into the folder."""
    folder_path = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder_path)
    folder = ModelFolder.open(folder_path)
    compiled, saved_s = write_compiled(folder, "bf16", threads=1)
    assert saved_s >= 0.0
    write_manifest(load_manifest(folder_path).model_copy(
        update={"cpu_variants": {"bf16": CHECK.model_copy(update={"compiled": compiled})}}), folder_path)
    return ModelFolder.open(folder_path)


def _with_compiled(folder: ModelFolder, **changes) -> ModelFolder:
    check = folder.manifest.cpu_variants["bf16"]
    compiled = check.compiled.model_copy(update=changes)
    write_manifest(folder.manifest.model_copy(
        update={"cpu_variants": {"bf16": check.model_copy(update={"compiled": compiled})}}), folder.path)
    return ModelFolder.open(folder.path)


def _outputs(folder: ModelFolder) -> tuple[OnnxEngine, dict[str, np.ndarray]]:
    engine = OnnxEngine(folder, device="cpu", precision="bf16", threads=1)
    h, w = folder.manifest.model.preprocessing.input_size
    batch = np.random.default_rng(0).standard_normal((2, 3, h, w)).astype(np.float32)
    return engine, engine.run(folder.manifest.task("fetal_head"), batch)


def test_the_check_writes_the_graphs_the_variant_compiles_and_records_them(compiled_model):
    compiled = compiled_model.manifest.cpu_variants["bf16"].compiled
    assert isinstance(compiled, CompiledGraphs)
    assert set(compiled.graphs) == {"encoder", "fpn"}  # the heads stay on ONNX Runtime
    assert compiled.cpu_flags == cpu_variants.kernel_flags() and "avx512_bf16" in compiled.cpu_flags
    for blob in compiled.graphs.values():
        assert (compiled_model.path / blob.path).stat().st_size == blob.bytes > 0


def test_a_like_machine_imports_them_with_the_outputs_of_a_compile(compiled_model):
    engine, imported = _outputs(compiled_model)
    assert engine.runner.imported == ["encoder", "fpn"]
    shutil.rmtree(compiled_model.path / "openvino")  # no files: compiled from the ONNX files
    plain = _with_compiled(compiled_model, graphs={})
    engine, compiled = _outputs(plain)
    assert engine.runner.imported == []
    np.testing.assert_array_equal(imported["logits"], compiled["logits"])


def test_another_openvino_or_cpu_compiles_the_onnx_files(compiled_model, caplog):
    caplog.set_level(logging.INFO, logger="inference.engines.openvino_runner")
    engine, _ = _outputs(_with_compiled(compiled_model, openvino="2025.0.0"))
    assert engine.runner.imported == [] and "compiled graphs not used (made by OpenVINO 2025.0.0" in caplog.text
    engine, _ = _outputs(_with_compiled(compiled_model, openvino=compiled_model.manifest.cpu_variants["bf16"]
                                        .compiled.openvino, cpu_flags=["avx2", "amx_bf16"]))
    assert engine.runner.imported == []


def test_a_damaged_compiled_file_is_refused_and_the_run_goes_on(compiled_model, caplog):
    blob = compiled_model.path / compiled_model.manifest.cpu_variants["bf16"].compiled.graphs["encoder"].path
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING, logger="inference.engines.openvino_runner")
    engine, outputs = _outputs(compiled_model)
    assert "encoder" not in engine.runner.imported and "fpn" in engine.runner.imported
    assert "its sha256 differs from the manifest" in caplog.text or "not imported" in caplog.text
    assert np.isfinite(outputs["logits"]).all()
    blob.write_bytes(b"not a compiled graph")
    engine, _ = _outputs(compiled_model)
    assert "encoder" not in engine.runner.imported


def test_a_compiled_file_outside_the_model_folder_is_never_read(compiled_model, tmp_path, caplog):
    compiled = compiled_model.manifest.cpu_variants["bf16"].compiled
    outside = compiled.graphs["encoder"].model_copy(update={"path": "../elsewhere.blob"})
    shutil.copy(compiled_model.path / compiled.graphs["encoder"].path, tmp_path / "elsewhere.blob")
    caplog.set_level(logging.WARNING, logger="inference.engines.openvino_runner")
    engine, _ = _outputs(_with_compiled(compiled_model, graphs={**compiled.graphs, "encoder": outside}))
    assert "encoder" not in engine.runner.imported and "outside the model folder" in caplog.text
