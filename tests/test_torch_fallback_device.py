"""Which device the PyTorch fallback takes when ONNX Runtime cannot run the model.

The torch image's point is that the fallback can use the GPU too (torch 2.9.1 shares the
CUDA 12 libraries with ONNX Runtime). There is no GPU here, so ``torch.cuda.is_available``
is faked and moves to CUDA become no-ops that are recorded: the run goes through the real
``FallbackEngine`` on a model copy whose encoder ONNX Runtime cannot load
(test/make_unloadable_model.py), and must end up on ``cuda`` under ``--device auto``
(on the CPU under ``--device cpu``, or when PyTorch sees no GPU), with the same outputs
as the CPU fallback.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from contract.manifest import ModelFolder
from inference.engines.fallback import FallbackEngine

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("make_unloadable_model", ROOT / "test" / "make_unloadable_model.py")
make_unloadable_model = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(make_unloadable_model)


@pytest.fixture(scope="module")
def unloadable(tmp_path_factory) -> ModelFolder:
    out = tmp_path_factory.mktemp("unloadable") / "model"
    make_unloadable_model.make_unloadable(ROOT / "model_weights", out)
    return ModelFolder.open(out, verify_hashes=True)


def _is_cuda(target: object) -> bool:
    return isinstance(target, (str, torch.device)) and torch.device(target).type == "cuda"


@pytest.fixture
def fake_gpu(monkeypatch) -> list[str]:
    """PyTorch sees a GPU; ``.to(cuda)`` of a module or tensor is recorded and keeps it on the CPU."""
    moves: list[str] = []
    real_module_to, real_tensor_to = torch.nn.Module.to, torch.Tensor.to

    def module_to(self, *args, **kwargs):
        if _is_cuda(args[0] if args else kwargs.get("device")):
            moves.append("module")
            return self
        return real_module_to(self, *args, **kwargs)

    def tensor_to(self, *args, **kwargs):
        if _is_cuda(args[0] if args else kwargs.get("device")):
            moves.append("tensor")
            return self
        return real_tensor_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "to", module_to)
    monkeypatch.setattr(torch.Tensor, "to", tensor_to)
    return moves


def _batch(folder: ModelFolder) -> np.ndarray:
    height, width = folder.manifest.model.preprocessing.input_size
    return np.random.default_rng(3).standard_normal((2, 3, height, width)).astype(np.float32)


def _task(folder: ModelFolder, kind: str):
    return next(t for t in folder.manifest.tasks if t.kind.value.lower() == kind)


def _cpu_outputs(folder: ModelFolder, task, batch: np.ndarray) -> dict[str, np.ndarray]:
    engine = FallbackEngine(folder, engine="torch", device="cpu")
    return engine.run(task, batch)


@pytest.mark.parametrize("kind", ["segmentation", "classification"])
def test_fallback_runs_on_cuda_when_onnx_runtime_cannot_load_and_a_gpu_can(unloadable, fake_gpu, kind, caplog):
    task, batch = _task(unloadable, kind), _batch(unloadable)
    engine = FallbackEngine(unloadable, engine="auto", device="auto", precision="fp32")
    with caplog.at_level(logging.WARNING, logger="inference.engines.fallback"):
        outputs = engine.run(task, batch)
    assert "falling back to PyTorch" in caplog.text and "NoSuchOperator" in caplog.text
    assert engine.description.startswith("torch ") and engine.description.endswith(" on cuda fp32")
    assert "module" in fake_gpu and "tensor" in fake_gpu  # the model and the batch went to the GPU
    expected = _cpu_outputs(unloadable, task, batch)
    assert outputs.keys() == expected.keys()
    for role in expected:
        np.testing.assert_allclose(outputs[role], expected[role], rtol=0, atol=1e-5)


def test_device_cpu_keeps_the_fallback_on_the_cpu(unloadable, fake_gpu):
    engine = FallbackEngine(unloadable, engine="auto", device="cpu", precision="fp32")
    engine.run(_task(unloadable, "segmentation"), _batch(unloadable))
    assert engine.description.endswith(" on cpu fp32")
    assert not fake_gpu


def test_no_gpu_for_pytorch_means_the_cpu(unloadable, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    engine = FallbackEngine(unloadable, engine="auto", device="auto", precision="fp32")
    engine.run(_task(unloadable, "segmentation"), _batch(unloadable))
    assert engine.description.endswith(" on cpu fp32")
