"""ONNX Runtime engine: lazy sessions on the manifest's graphs, a task's path run on a batch.

Provider choice (``device``):

- ``cpu``: the CPU provider.
- ``cuda``: the CUDA provider, verified with ``session.get_providers()`` after the
  first session is made; when CUDA does not really work, ``EngineError``.
- ``auto``: CUDA when it really works, else CPU; the reason for CPU is logged.

Sessions are created when a graph is first needed, so only the task kinds present
in the input cost loading time. On CUDA the tensors passed between the graphs of
a task's path stay on the GPU (IO binding); only the role's output comes back.
No torch import here (see ``torch_engine`` for the fallback).
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import EngineError
from inference.manifest import IMAGE_INPUT, Manifest, TaskEntry

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def default_threads() -> int:
    """CPU threads this process may use: the cgroup quota if set, else the CPUs it may run on."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpus()
    return max(1, min(available, quota) if quota else available)


def _cgroup_cpus() -> int | None:
    try:  # cgroup v2: "max 100000" or "200000 100000"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota_us > 0 and period_us > 0:
            return max(1, -(-quota_us // period_us))
    except (OSError, ValueError):
        pass
    return None


_SHARED_CPU_ARENA: list[bool] = []  # filled once per process by shared_cpu_arena()


def shared_cpu_arena() -> bool:
    """Register one CPU memory arena for every session of this process (once); False if ORT refuses.

    By default each session (encoder, FPN, every head) grows an arena of its own, and
    the process holds the sum of their peaks (1.9 GB for B4 at batch 8); sharing one
    arena holds only the largest (0.75 GB), at the same speed (BENCHMARKS.md).
    """
    if not _SHARED_CPU_ARENA:
        import onnxruntime as ort

        try:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg({}))
            _SHARED_CPU_ARENA.append(True)
        except Exception as exc:  # onnxruntime's errors have no common base class worth naming
            log.debug("no shared CPU arena (%s: %s); each session keeps its own", type(exc).__name__, exc)
            _SHARED_CPU_ARENA.append(False)
    return _SHARED_CPU_ARENA[0]


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA provider cannot work here (cheap checks, no session), or None."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return f"this onnxruntime build has no CUDA provider (available: {', '.join(ort.get_available_providers())})"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    if sys.platform.startswith("linux") and not (Path("/dev/nvidiactl").exists() or glob.glob("/dev/nvidia[0-9]*")):
        if in_container():
            return "no NVIDIA GPU device is visible (/dev/nvidia* missing; run the container with --gpus all)"
        return "no NVIDIA GPU device is visible"
    return None


def in_container() -> bool:
    """True inside a Docker (/.dockerenv) or podman (/run/.containerenv) container."""
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()


def resolve_precision(requested: str, device: str, manifest: Manifest) -> str:
    """``auto``: fp16 on CUDA when the model has fp16 graphs, else fp32; explicit values must exist."""
    if requested == "auto":
        return "fp16" if device == "cuda" and "fp16" in manifest.graph_sets else "fp32"
    manifest.graph_set(requested)  # raises ManifestError naming the fix
    if device == "cpu" and requested == "fp16":
        log.warning("fp16 graphs on the CPU provider are slow; --precision fp32 or int8 suits a CPU better")
    return requested


class OnnxEngine:
    """Runs a task's graph path with ONNX Runtime; ``run`` returns the task's outputs by role."""

    def __init__(self, model_dir: Path, manifest: Manifest, device: str = "auto", precision: str = "auto",
                 threads: int | None = None):
        if device not in ("auto", "cuda", "cpu"):
            raise ValueError(f"device must be auto, cuda or cpu, not {device!r}")
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise EngineError(f"onnxruntime cannot be imported: {exc}") from exc
        self.model_dir = Path(model_dir)
        self.manifest = manifest
        self.threads = threads or default_threads()
        self.requested_precision = precision
        self.requested_device = device
        self.device = device
        if device in ("auto", "cuda"):
            reason = cuda_unavailable_reason()
            if reason is not None:
                if device == "cuda":
                    raise EngineError(f"--device cuda, but ONNX Runtime cannot use CUDA: {reason}")
                log.info("ONNX Runtime runs on the CPU: %s", reason)
                self.device = "cpu"
            else:
                self.device = "cuda"
                self._preload_cuda_libraries()
        self.precision = resolve_precision(precision, self.device, manifest)
        self._sessions: dict[str, Any] = {}
        self._verified = False

    # --- sessions ---------------------------------------------------------------
    @staticmethod
    def _preload_cuda_libraries() -> None:
        """Load NVIDIA's pip-installed CUDA/cuDNN libraries, when present, before the first session."""
        import onnxruntime as ort

        if importlib.util.find_spec("nvidia") is not None and hasattr(ort, "preload_dlls"):
            ort.preload_dlls(cuda=True, cudnn=True, msvc=False)

    @property
    def provider(self) -> str:
        return CUDA if self.device == "cuda" else CPU

    @property
    def description(self) -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} {self.provider} {self.precision} ({self.threads} CPU threads)"

    def _options(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Idle intra-op threads sleep instead of spinning: the decode/encode workers share these
        # cores, and spinning threads took their CPU (2x slower batch runs on 2 cores, BENCHMARKS.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.device == "cpu" and shared_cpu_arena():
            options.add_session_config_entry("session.use_env_allocators", "1")
        options.log_severity_level = 3  # errors only: stderr is what a Grand-Challenge submitter sees
        return options

    def _providers(self) -> list[Any]:
        if self.device == "cuda":
            return [(CUDA, {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}), CPU]
        return [CPU]

    def _create(self, name: str) -> Any:
        import onnxruntime as ort

        graph = self.manifest.graph_set(self.precision).graphs.get(name)
        if graph is None:
            raise EngineError(f"graph {name!r} is not in the model's {self.precision} graph set")
        path = self.model_dir / graph.path
        started = time.perf_counter()
        try:
            session = ort.InferenceSession(str(path), sess_options=self._options(), providers=self._providers())
        except Exception as exc:  # onnxruntime raises its own (Fail, InvalidGraph, ...) and RuntimeError
            raise EngineError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
        log.debug("session %s (%s) in %.2f s", name, session.get_providers()[0], time.perf_counter() - started)
        return session

    def session(self, name: str) -> Any:
        if name in self._sessions:
            return self._sessions[name]
        session = self._create(name)
        if not self._verified:
            self._verified = True
            used = session.get_providers()
            if self.device == "cuda" and CUDA not in used:
                reason = f"ONNX Runtime did not enable the CUDA provider (session providers: {', '.join(used)})"
                if self.requested_device == "cuda":
                    raise EngineError(f"--device cuda, but {reason}")
                log.warning("falling back to the CPU provider: %s", reason)
                self.device = "cpu"
                self.precision = resolve_precision(self.requested_precision, "cpu", self.manifest)
                session = self._create(name)
            log.info("inference engine: %s", self.description)
        self._sessions[name] = session
        return session

    # --- running ----------------------------------------------------------------
    def run(self, task: TaskEntry, batch: np.ndarray) -> dict[str, np.ndarray]:
        """N x 3 x H x W float32 -> {role: N x ... array} for ``task``; EngineError on failure."""
        try:
            if self.device == "cuda":
                tensors = self._run_on_device(task, batch)
            else:
                tensors = self._run_on_host(task, batch)
            return {role: np.asarray(tensors[name], dtype=np.float32) for role, name in task.outputs.items()}
        except EngineError:
            raise
        except Exception as exc:  # onnxruntime's errors have no common base class worth naming
            raise EngineError(f"task {task.task_id}: ONNX Runtime failed: {type(exc).__name__}: {exc}") from exc

    def _run_on_host(self, task: TaskEntry, batch: np.ndarray) -> dict[str, np.ndarray]:
        tensors: dict[str, np.ndarray] = {IMAGE_INPUT: batch}
        for name in task.path:
            session = self.session(name)
            feed = {}
            for spec in session.get_inputs():
                value = tensors[spec.name]
                wanted = _NUMPY_TYPES.get(spec.type)
                feed[spec.name] = value.astype(wanted, copy=False) if wanted is not None else value
            names = [out.name for out in session.get_outputs()]
            tensors.update(zip(names, session.run(names, feed)))
        return tensors

    def _run_on_device(self, task: TaskEntry, batch: np.ndarray, device_type: str = "cuda") -> dict[str, np.ndarray]:
        """IO binding: intermediate tensors stay on ``device_type``; the task's outputs come back to the host."""
        import onnxruntime as ort

        wanted_outputs = set(task.outputs.values())
        values: dict[str, Any] = {}
        for name in task.path:
            session = self.session(name)
            if self.device == "cpu" and device_type != "cpu":  # the first session found that CUDA does not work
                return self._run_on_host(task, batch)
            binding = session.io_binding()
            for spec in session.get_inputs():
                if spec.name not in values:  # the image (only the first graph reads it)
                    wanted = _NUMPY_TYPES.get(spec.type, np.float32)
                    values[spec.name] = ort.OrtValue.ortvalue_from_numpy(batch.astype(wanted, copy=False), device_type, 0)
                binding.bind_ortvalue_input(spec.name, values[spec.name])
            names = [out.name for out in session.get_outputs()]
            for out in names:
                binding.bind_output(out, "cpu" if out in wanted_outputs else device_type, 0)
            session.run_with_iobinding(binding)
            values.update(zip(names, binding.get_outputs()))
        return {name: values[name].numpy() for name in wanted_outputs}
