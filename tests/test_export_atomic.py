"""An existing model folder is replaced whole, or not at all."""

from __future__ import annotations

import shutil

import pytest
import torch

import exporter.graphs

from conftest import make_tiny_config
from exporter import ExportError, export_model
from exporter.errors import OutputFolderError, ParityError
from contract.manifest import load_manifest, sha256_of
from contract.tasks import TaskRegistry
from network import build_model


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(5)
    return build_model(make_tiny_config(TaskRegistry.official().select(["organ_cls"]))).eval()


def _snapshot(folder):
    return {str(p.relative_to(folder)): sha256_of(p) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("stage", ["exporter.graphs.export_fp32", "exporter.pipeline.measure_parity"])
def test_failed_export_leaves_the_old_folder_untouched(tmp_path, tiny_model_dir, small_model, monkeypatch, stage):
    out = tmp_path / "model_weights"
    shutil.copytree(tiny_model_dir, out)
    before = _snapshot(out)
    if stage.endswith("measure_parity"):
        real = exporter.graphs.export_fp32

        def export_then_note(model, stage_dir, sample):  # the new graphs are written before the failure
            graphs = real(model, stage_dir, sample)
            assert (stage_dir / "encoder.onnx").is_file()
            return graphs

        monkeypatch.setattr("exporter.graphs.export_fp32", export_then_note)

    def failing(*args, **kwargs):
        raise ParityError("simulated failure")

    monkeypatch.setattr(stage, failing)
    with pytest.raises(ExportError, match="simulated failure"):
        export_model(small_model, out)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_weights"]  # no staging folder left behind


def test_reexport_replaces_the_whole_folder(tmp_path, tiny_model_dir, small_model):
    out = tmp_path / "model_weights"
    shutil.copytree(tiny_model_dir, out)
    (out / "int8").mkdir()
    (out / "int8" / "stale.onnx").write_bytes(b"old")
    manifest = export_model(small_model, out, source={"checkpoint": "second"})
    assert not (out / "int8").exists()
    assert sorted(p.name for p in (out / "heads").iterdir()) == ["organ_cls.onnx"]  # the 27-task folder is gone
    assert load_manifest(out, verify_hashes=True).source == manifest.source == {"checkpoint": "second"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_weights"]


def test_a_folder_that_is_not_a_model_folder_is_never_replaced(tmp_path, small_model):
    out = tmp_path / "my_documents"
    out.mkdir()
    (out / "thesis.txt").write_text("precious\n")
    with pytest.raises(OutputFolderError, match="not a model folder"):
        export_model(small_model, out)
    assert (out / "thesis.txt").read_text() == "precious\n"
