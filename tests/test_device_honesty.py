"""Provider choice is honest: --device cuda without a usable GPU stops with one line naming the reason;
--device auto says (once, and in the run summary) why the run is on the CPU; the driver checks name the cause."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract.manifest import ModelFolder
from inference.engines import providers
from inference.engines.onnx_engine import OnnxEngine

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path, tiny_model_dir, *extra):
    return subprocess.run(
        [sys.executable, "-m", "inference", "--input", str(ROOT / "test" / "input"), "--output", str(tmp_path / "out"),
         "--weights", str(tiny_model_dir), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.skipif(providers.cuda_unavailable_reason() is None, reason="this machine has a usable GPU")
def test_device_cuda_without_gpu_stops_with_one_line_naming_the_reason(tmp_path, tiny_model_dir):
    result = _run(tmp_path, tiny_model_dir, "--device", "cuda")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if ": ERROR: " in line]
    assert len(errors) == 1, result.stderr
    assert "--device cuda, but ONNX Runtime cannot use CUDA: " in errors[0]
    assert providers.cuda_unavailable_reason() in errors[0]
    assert "PyTorch" not in result.stderr  # no fallback attempt: it would need the same GPU
    assert not (tmp_path / "out" / "classification_predictions.json").exists()


@pytest.mark.skipif(providers.cuda_unavailable_reason() is None, reason="this machine has a usable GPU")
def test_device_auto_without_gpu_warns_once_and_the_summary_says_why(tmp_path, tiny_model_dir):
    result = _run(tmp_path, tiny_model_dir, "--device", "auto")
    assert result.returncode in (0, 3), result.stderr
    reason = providers.cuda_unavailable_reason()
    warnings = [line for line in result.stderr.splitlines() if "WARNING: no usable GPU" in line]
    assert warnings == [f"inference: WARNING: no usable GPU, running on the CPU: {reason}"]
    engine_line = next(line for line in result.stderr.splitlines() if "INFO: engine: onnxruntime" in line)
    assert "CPUExecutionProvider" in engine_line
    assert result.stderr.count(reason) == 1  # the reason once, in the warning (not repeated by the summary)
    quiet = _run(tmp_path / "cpu", tiny_model_dir, "--device", "cpu")
    assert "no usable GPU" not in quiet.stderr and "although" not in quiet.stderr


def _pretend_gpu_device(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(providers.sys, "platform", "linux")
    monkeypatch.setattr(providers, "gpu_device_visible", lambda: True)


def test_missing_driver_library_is_named(monkeypatch):
    _pretend_gpu_device(monkeypatch)

    def no_driver(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_driver)
    assert "libcuda.so.1 cannot be loaded" in providers.cuda_unavailable_reason()


def test_old_driver_is_named_with_its_cuda_version(monkeypatch):
    _pretend_gpu_device(monkeypatch)

    class OldDriver:
        def cuDriverGetVersion(self, out):
            ctypes.cast(out, ctypes.POINTER(ctypes.c_int)).contents.value = 11040
            return 0

    monkeypatch.setattr(ctypes, "CDLL", lambda name, *a, **k: OldDriver())
    reason = providers.cuda_unavailable_reason()
    assert "supports CUDA 11.4 only" in reason and "525.60.13" in reason


def test_cuda_warm_up_runs_once_per_path_and_batch_shape(tiny_model_dir, monkeypatch):
    engine = OnnxEngine(ModelFolder.open(tiny_model_dir), device="cpu")
    calls: list[tuple] = []
    real_run = engine.runner.run

    def spy(batch, graphs=None, wanted=None, extra=None):
        calls.append((tuple(graphs), batch.shape, bool(np.any(batch))))
        return real_run(batch, graphs, wanted, extra)

    monkeypatch.setattr(engine.runner, "run", spy)
    engine._verified, engine.device = True, "cuda"  # the CUDA path's bookkeeping, run on the CPU provider
    task = engine.folder.manifest.task("lung_2cls")
    ones = np.ones((2, 3, *engine.folder.manifest.model.preprocessing.input_size), np.float32)
    for _ in range(3):
        engine.run(task, ones)
    engine.run(task, ones[:1])
    zero_runs = [c for c in calls if not c[2]]
    assert [c[1][0] for c in zero_runs] == [2, 1]  # one warm-up per batch shape, before the first real batch
    assert calls[0][2] is False and calls[1][2] is True
