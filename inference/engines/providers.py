"""Where ONNX Runtime runs: the one place that chooses execution providers and their options.

``resolve_device(requested)`` turns ``auto``/``cuda``/``cpu`` into the device a run
uses (with the reason when CUDA is out); ``resolve_precision`` the graph set (or CPU variant) it runs there; ``session_providers(device, graph_set)``
gives the provider list of a session, read from the manifest: a graph set lists the
providers it is meant for (``GraphSet.providers``), so a set meant for the CPU only
(int8) runs on the CPU even on a GPU machine. No torch import here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

from contract.defaults import DEVICES
from contract.manifest import GraphSet, Manifest
from inference.engines.cpu_variants import VARIANTS, check_explicit, choose_auto
from inference.engines.host import gpu_device_visible
from inference.errors import DeviceUnavailable

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
#: CUDA provider options. Inputs have a fixed size (the manifest's input size, the run's batch size), so
#: cuDNN's exhaustive algorithm search runs once per shape and its choice serves every later batch; the
#: engine's warm-up (``OnnxEngine``) pays for it before the first real batch.
CUDA_OPTIONS = {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE", "cudnn_conv_use_max_workspace": "1",
                "do_copy_in_default_stream": "1"}


#: Where the image keeps the code (Dockerfile: /opt/app); a run from there is a run of this project's image.
IMAGE_APP_DIR = Path("/opt/app")


def _in_container() -> bool:
    """Running from this project's image, where ``--gpus all`` is the fix (a dev machine that happens to be a
    container, with /.dockerenv, is not told to pass it)."""
    return Path(__file__).resolve().is_relative_to(IMAGE_APP_DIR)


#: The oldest CUDA version the driver must support: ONNX Runtime 1.26's CUDA provider is a CUDA 12 build
#: (driver >= 525.60.13 through minor-version compatibility).
MIN_DRIVER_CUDA = (12, 0)


def _driver_reason() -> str | None:
    """Why the NVIDIA driver cannot serve CUDA 12 (its library missing, or too old), or None."""
    import ctypes

    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return ("the NVIDIA driver's library libcuda.so.1 cannot be loaded (no driver on this machine, or the "
                "container was started without --gpus / the NVIDIA container toolkit)")
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return "the NVIDIA driver does not answer cuDriverGetVersion (driver and kernel module out of step?)"
    major, minor = version.value // 1000, (version.value % 1000) // 10
    if (major, minor) < MIN_DRIVER_CUDA:
        return (f"the NVIDIA driver supports CUDA {major}.{minor} only; this image needs CUDA 12 "
                "(driver >= 525.60.13)")
    return None


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA provider cannot work here (cheap checks, no session), or None.

    In order: the onnxruntime build (library), a GPU hidden by ``CUDA_VISIBLE_DEVICES``, no
    device node (no device), then the driver (its library loads and supports CUDA 12).
    """
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return f"this onnxruntime build has no CUDA provider (available: {', '.join(ort.get_available_providers())})"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    if sys.platform.startswith("linux") and not gpu_device_visible():
        hint = "; run the container with --gpus all" if _in_container() else ""
        return f"no NVIDIA GPU device is visible (/dev/nvidia* missing{hint})"
    if sys.platform.startswith("linux"):
        return _driver_reason()
    return None


def preload_cuda_libraries() -> None:
    """Load NVIDIA's pip-installed CUDA/cuDNN libraries, when present, before the first CUDA session."""
    import onnxruntime as ort

    if importlib.util.find_spec("nvidia") is not None and hasattr(ort, "preload_dlls"):
        ort.preload_dlls(cuda=True, cudnn=True, msvc=False)


def resolve_device(requested: str) -> tuple[str, str | None]:
    """(``cuda`` or ``cpu``, why not CUDA) for a run; DeviceUnavailable naming the reason for ``--device cuda``.

    With ``auto``, a machine without a usable GPU runs on the CPU with one warning line naming the reason.
    """
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {requested!r}")
    if requested == "cpu":
        return "cpu", None
    reason = cuda_unavailable_reason()
    if reason is not None:
        if requested == "cuda":
            raise DeviceUnavailable(f"--device cuda, but ONNX Runtime cannot use CUDA: {reason}")
        log.warning("no usable GPU, running on the CPU: %s", reason)
        return "cpu", reason
    preload_cuda_libraries()
    return "cuda", None


def session_providers(device: str, graph_set: GraphSet) -> list[Any]:
    """The providers of a session for ``graph_set`` on ``device`` (CPU always last, as the safety net)."""
    if device == "cuda" and CUDA in graph_set.providers:
        return [(CUDA, dict(CUDA_OPTIONS)), CPU]
    return [CPU]


def resolve_precision(requested: str, device: str, manifest: Manifest, threads: int = 1,
                      expected_images: int | None = None) -> str:
    """``auto``: fp16 on CUDA when the model has fp16 graphs; on a CPU the fastest CPU variant that passed its
    check and can run here (``cpu_variants.choose_auto``), else fp32. Explicit values must exist."""
    if requested == "auto":
        if device == "cuda":
            return "fp16" if "fp16" in manifest.graph_sets else "fp32"
        return choose_auto(manifest, threads, expected_images)
    if requested in VARIANTS:
        reason = check_explicit(requested, manifest, threads)
        if reason is not None:
            raise DeviceUnavailable(f"--precision {requested} ({VARIANTS[requested].description}) cannot run here: "
                                    f"{reason}; use --precision fp32 or auto")
        return requested
    manifest.graph_set(requested)  # raises ManifestError naming the fix
    if device == "cpu" and requested == "fp16":
        log.warning("fp16 graphs on the CPU provider are slow; --precision fp32 or int8 suits a CPU better")
    return requested
