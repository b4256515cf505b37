"""Where ONNX Runtime runs: the one place that chooses execution providers and their options.

``resolve_device(requested)`` turns ``auto``/``cuda``/``cpu`` into the device a run
uses (with the reason when CUDA is out); ``session_providers(device, graph_set)``
gives the provider list of a session, read from the manifest: a graph set lists the
providers it is meant for (``GraphSet.providers``), so a set meant for the CPU only
(int8) runs on the CPU even on a GPU machine. No torch import here.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

from contract.defaults import DEVICES
from contract.manifest import GraphSet
from inference.errors import EngineError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
#: CUDA provider options: the heuristic cuDNN algorithm choice (no per-shape search at start-up).
CUDA_OPTIONS = {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}


def _in_container() -> bool:
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA provider cannot work here (cheap checks, no session), or None."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return f"this onnxruntime build has no CUDA provider (available: {', '.join(ort.get_available_providers())})"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    if sys.platform.startswith("linux") and not (Path("/dev/nvidiactl").exists() or glob.glob("/dev/nvidia[0-9]*")):
        hint = "; run the container with --gpus all" if _in_container() else ""
        return f"no NVIDIA GPU device is visible (/dev/nvidia* missing{hint})"
    return None


def preload_cuda_libraries() -> None:
    """Load NVIDIA's pip-installed CUDA/cuDNN libraries, when present, before the first CUDA session."""
    import onnxruntime as ort

    if importlib.util.find_spec("nvidia") is not None and hasattr(ort, "preload_dlls"):
        ort.preload_dlls(cuda=True, cudnn=True, msvc=False)


def resolve_device(requested: str) -> str:
    """``cuda`` or ``cpu`` for a run; EngineError naming the reason when ``cuda`` was asked for and cannot work."""
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {requested!r}")
    if requested == "cpu":
        return "cpu"
    reason = cuda_unavailable_reason()
    if reason is not None:
        if requested == "cuda":
            raise EngineError(f"--device cuda, but ONNX Runtime cannot use CUDA: {reason}")
        log.info("ONNX Runtime runs on the CPU: %s", reason)
        return "cpu"
    preload_cuda_libraries()
    return "cuda"


def session_providers(device: str, graph_set: GraphSet) -> list[Any]:
    """The providers of a session for ``graph_set`` on ``device`` (CPU always last, as the safety net)."""
    if device == "cuda" and CUDA in graph_set.providers:
        return [(CUDA, dict(CUDA_OPTIONS)), CPU]
    return [CPU]
