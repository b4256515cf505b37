"""The GPU-specific parts of ``python -m benchmarks.gpu``: the device, its memory, and parity on it.

- ``gpu_identity()``: the GPU's name and driver (``nvidia-smi --query-gpu=name,driver_version``);
- ``require_cuda()``: ``CudaUnusable`` naming the reason (``inference.engines.providers.cuda_unavailable_reason``,
  or PyTorch seeing no GPU) before anything is timed;
- ``GpuMemoryPoller``: a thread that runs ``nvidia-smi --query-compute-apps=pid,used_memory`` every
  ``POLL_S`` seconds (or as fast as nvidia-smi answers, if slower) while one pipeline runs, keeping the
  peak of the memory held by this process's descendants (the pipeline and its workers); when no
  listed pid is ours (a container's PID namespace hides them) the peak of every compute process on
  the GPU is kept instead and the result says so. A lower bound, as any sampled peak;
- ``parity()``: ONNX Runtime (our ``OnnxEngine``, the runtime's own code) against PyTorch (the model
  folder's network rebuilt by ``network.weights.load_model_from_folder``) on the same device, one
  batch of real benchmark images per task; the largest relative error per task kind and precision
  (``exporter.parity.relative_error``: ``max|onnx - torch| / max|torch|``), and the providers the
  engine's sessions really use.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from benchmarks.measure import _tree

log = logging.getLogger(__name__)

POLL_S = 0.1
SMI_TIMEOUT_S = 10


class CudaUnusable(RuntimeError):
    """The benchmark cannot run on the GPU; the message names the reason."""


def _smi(*args: str) -> list[str]:
    """Lines of ``nvidia-smi ARGS`` (empty when it is missing or fails)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=SMI_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("nvidia-smi %s failed: %s", " ".join(args), exc)
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def gpu_identity() -> dict[str, str]:
    """{"name", "driver"} of GPU 0 from nvidia-smi, else PyTorch's device name (driver unknown)."""
    lines = _smi("--query-gpu=name,driver_version", "--format=csv,noheader")
    if lines:
        name, _, driver = lines[0].rpartition(",")
        return {"name": name.strip(), "driver": driver.strip(), "source": "nvidia-smi"}
    import torch

    if torch.cuda.is_available():
        return {"name": torch.cuda.get_device_name(0), "driver": "unknown (nvidia-smi not found)", "source": "torch"}
    return {"name": "unknown", "driver": "unknown", "source": "none"}


def require_cuda() -> None:
    """CudaUnusable naming why ONNX Runtime's CUDA provider or PyTorch's CUDA cannot be used here."""
    from inference.engines.providers import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason:
        raise CudaUnusable(f"ONNX Runtime cannot use CUDA: {reason}")
    import torch

    if not torch.cuda.is_available():
        raise CudaUnusable(f"PyTorch {torch.__version__} sees no CUDA device (torch.version.cuda={torch.version.cuda}); "
                           "the reference and the parity check need it")


def compute_apps() -> dict[int, int]:
    """{pid: used MiB} of the processes using the GPU (nvidia-smi); rows it cannot read are left out."""
    apps: dict[int, int] = {}
    for line in _smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"):
        pid, _, used = line.partition(",")
        try:
            apps[int(pid)] = apps.get(int(pid), 0) + int(used)
        except ValueError:  # "[N/A]" where the driver does not tell
            continue
    return apps


class GpuMemoryPoller:
    """``with GpuMemoryPoller() as p: ...``; then ``p.as_dict()``: the sampled peak GPU memory (module docstring)."""

    def __init__(self, interval: float = POLL_S):
        self.interval = interval
        self.own_peak_mib = 0
        self.all_peak_mib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpu-memory", daemon=True)

    def _loop(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            started = time.monotonic()
            apps = compute_apps()
            ours = set(_tree(me)) - {me}  # the pipeline and its workers, not this process
            self.own_peak_mib = max(self.own_peak_mib, sum(mib for pid, mib in apps.items() if pid in ours))
            self.all_peak_mib = max(self.all_peak_mib, sum(apps.values()))
            self.samples += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> "GpuMemoryPoller":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=SMI_TIMEOUT_S + 1)

    def as_dict(self) -> dict:
        if self.own_peak_mib:
            return {"peak_mib": self.own_peak_mib, "counted": "this run's processes", "samples": self.samples}
        if self.all_peak_mib:
            return {"peak_mib": self.all_peak_mib, "samples": self.samples,
                    "counted": "every compute process on the GPU (nvidia-smi's pids are not this run's: PID namespace?)"}
        return {"peak_mib": None, "samples": self.samples, "counted": "nvidia-smi listed no compute process"}


def _task_batches(input_dir: Path, prep, batch_size: int) -> dict[str, "object"]:
    """{task_id: N x 3 x H x W float32 tensor}: the first ``batch_size`` rows of each task, read as the reference does."""
    import torch

    from benchmarks.reference import CsvRows

    rows = CsvRows(input_dir, prep)
    picks: dict[str, list[int]] = {}
    for index, row in enumerate(rows.rows):
        if len(picks.setdefault(row["task_id"], [])) < batch_size:
            picks[row["task_id"]].append(index)
    return {task: torch.stack([rows[i]["image"] for i in indices]) for task, indices in picks.items()}


def parity(input_dir: Path, model_dir: Path, device: str, precisions: tuple[str, ...], batch_size: int) -> dict:
    """ONNX Runtime against PyTorch on ``device``, per precision and task kind (module docstring)."""
    import numpy as np
    import torch

    from contract.manifest import ModelFolder
    from exporter.parity import relative_error
    from inference.engines.onnx_engine import OnnxEngine
    from network.weights import load_model_from_folder

    model, manifest = load_model_from_folder(model_dir)
    model = model.to(device).eval()
    batches = _task_batches(input_dir, manifest.model.preprocessing, batch_size)
    tasks = [t for t in manifest.tasks if t.task_id in batches]
    expected: dict[str, dict[str, np.ndarray]] = {}
    with torch.no_grad():
        for task in tasks:
            roles = model.predict(batches[task.task_id].to(device), task.task_id)
            expected[task.task_id] = {role: value.float().cpu().numpy() for role, value in roles.items()}
    folder = ModelFolder.open(model_dir)
    result: dict[str, dict] = {}
    for precision in precisions:
        engine = OnnxEngine(folder, device=device, precision=precision)
        worst: dict[str, float] = {}
        for task in tasks:
            actual = engine.run(task, batches[task.task_id].numpy())
            for role, value in actual.items():
                if role in expected[task.task_id]:
                    error = relative_error(value, expected[task.task_id][role])
                    worst[task.kind.value] = max(worst.get(task.kind.value, 0.0), error)
        providers = [s.get_providers()[0] for s in engine.runner.sessions.values()]
        result[precision] = {
            "max_rel_error_per_kind": worst, "max_rel_error": max(worst.values(), default=None),
            "sessions": len(providers), "sessions_per_provider": {p: providers.count(p) for p in sorted(set(providers))},
            "engine": engine.description,
        }
        log.info("parity %s on %s: %s", precision, device, ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    return {"device": device, "tasks": len(tasks), "images": sum(len(batches[t.task_id]) for t in tasks),
            "batch_size": batch_size, "torch_device": str(next(model.parameters()).device), "precisions": result}
