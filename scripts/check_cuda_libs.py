"""Check, without a GPU, that ONNX Runtime's CUDA provider finds every library it needs.

    python scripts/check_cuda_libs.py        (inside the image: python /opt/app/scripts/check_cuda_libs.py)

Loading a library does not touch the GPU, so this runs on any machine: it calls
``onnxruntime.preload_dlls()`` (NVIDIA's CUDA 12 / cuDNN 9 pip wheels), then ``dlopen``s
ONNX Runtime's CUDA provider library and the cuDNN sub-libraries that cuDNN itself opens
only on first use, and asks ``ldd`` about every shared library of the wheels the provider
needs (onnxruntime-gpu's ``cuda`` and ``cudnn`` extras and the NVIDIA wheels those require). Each shared
library must also still be the one its wheel installed (size as in the wheel's RECORD):
another package writing into the same folder (PyPI's CUDA 13 torch brings a cuDNN that
installs into nvidia/cudnn/lib too) would replace CUDA 12 builds silently. The
driver's own ``libcuda.so.1`` is not checked: the host's driver provides it at run time
(through the NVIDIA container toolkit).

Where PyTorch is installed too (the WITH_TORCH=1 image), it must share that one CUDA 12
stack: a CUDA 12 build (or a CPU-only one), no CUDA 13 NVIDIA wheel beside the CUDA 12 ones,
and torch's own CUDA libraries resolve against the same wheels (``ldd``, no import; the
optional plugins of torch-only wheels that torch does not link, e.g. NVSHMEM's MPI/UCX
transports and cuFile's RDMA library, are not asked about: they need cluster libraries that
a single-GPU run never loads).

Exit status 0: one line listing what resolved. Exit 1: one ``FAIL`` line per problem,
naming the library (missing, replaced, or not found by the library that needs it).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("check_cuda_libs")

PROVIDER = "libonnxruntime_providers_cuda.so"
SHARED = "libonnxruntime_providers_shared.so"
# cuDNN 9 splits into sub-libraries that libcudnn.so.9 opens lazily, on the first call that
# needs them; a missing one shows up only then, on a GPU, so each is opened here.
CUDNN_SUBLIBS = (
    "libcudnn_graph.so.9", "libcudnn_engines_precompiled.so.9",
    "libcudnn_engines_runtime_compiled.so.9", "libcudnn_heuristic.so.9",
    "libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn_adv.so.9",
)
# Provided by the host's NVIDIA driver at run time, never by the image.
DRIVER_LIBS = {"libcuda.so.1", "libnvidia-ml.so.1"}
PROVIDER_EXTRAS = ("cuda", "cudnn")
NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
PRELOAD_FAILED = re.compile(r"Failed to load (\S+?):? (.*)")
TORCH_CUDA = re.compile(r"^cuda(?::[^=]*)?\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)


class CheckFailed(Exception):
    """One or more libraries did not resolve; the message lists them, one per line."""


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _provider_wheel_libs(site: Path) -> list[Path]:
    """The shared libraries of onnxruntime-gpu's ``cuda``/``cudnn`` extras and, recursively, of
    the NVIDIA wheels they require (cuDNN requires cuBLAS, cuFFT nvJitLink), per their RECORD."""
    from packaging.requirements import Requirement  # onnxruntime requires packaging

    dists = {_normalize(d.metadata["Name"] or ""): d for d in importlib.metadata.distributions(path=[str(site)])}
    todo, stack = ["onnxruntime-gpu"], set()
    while todo:
        name = todo.pop()
        if name in stack or name not in dists:
            continue
        stack.add(name)
        for text in dists[name].requires or []:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in PROVIDER_EXTRAS)
            if wanted and _normalize(requirement.name).startswith("nvidia-"):
                todo.append(_normalize(requirement.name))
    libs = {site / record for name in stack - {"onnxruntime-gpu"} for record in dists[name].files or []
            if ".so" in record.name}
    return sorted(path for path in libs if path.is_file())


def _nvidia_lib_dirs(site: Path) -> list[Path]:
    return sorted(path for path in (site / "nvidia").glob("*/lib") if path.is_dir())


def _preload() -> list[str]:
    """``onnxruntime.preload_dlls()``; it prints failures instead of raising, so they are read back."""
    import onnxruntime

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        onnxruntime.preload_dlls(cuda=True, cudnn=True, msvc=False)
    return [f"preload_dlls: {match.group(1)}: {match.group(2)}"
            for match in map(PRELOAD_FAILED.search, printed.getvalue().splitlines()) if match]


def _replaced(site: Path) -> list[str]:
    """Shared libraries of onnxruntime-gpu and the *-cu12 wheels that differ from their RECORD."""
    problems = []
    for dist in importlib.metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"] or ""
        if not (name.startswith("nvidia-") and name.endswith("-cu12")) and name != "onnxruntime-gpu":
            continue
        for record in dist.files or []:
            if ".so" not in record.name or record.size is None:
                continue
            path = site / record
            if not path.is_file():
                problems.append(f"{name}: {record} is missing")
            elif path.stat().st_size != record.size:
                problems.append(f"{name}: {record} was replaced ({path.stat().st_size} bytes, the wheel's "
                                f"{record.size}): another package installed over it")
    return problems


def _dlopen(path: Path, mode: int = ctypes.RTLD_LOCAL) -> str | None:
    try:
        ctypes.CDLL(str(path), mode=mode)
    except OSError as exc:
        return f"dlopen {path.name}: {exc}"
    return None


def _ldd_missing(paths: list[Path], lib_dirs: list[Path]) -> list[str]:
    """``ldd`` on each library, with the wheels' folders on the search path: what is not found."""
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(map(str, lib_dirs)))
    problems = []
    for path in paths:
        result = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env, check=False)
        for name in NOT_FOUND.findall(result.stdout):
            if name not in DRIVER_LIBS:
                problems.append(f"ldd {path.name}: needs {name}, not found")
    return problems


def _torch_problems(site: Path, lib_dirs: list[Path]) -> tuple[list[str], list[str]]:
    """(torch's CUDA libraries checked, problems) when torch is installed in ``site``; else ([], [])."""
    torch_dir = site / "torch"
    if not (torch_dir / "__init__.py").is_file():
        return [], []
    problems = [f"{dist.metadata['Name']} is installed: a CUDA 13 wheel beside the CUDA 12 stack (torch must be "
                "a CUDA 12 build, e.g. torch==2.9.1 from PyPI)"
                for dist in importlib.metadata.distributions(path=[str(site)])
                if re.fullmatch(r"nvidia-.*-cu13|cuda-toolkit", dist.metadata["Name"] or "")]
    version = (torch_dir / "version.py").read_text() if (torch_dir / "version.py").is_file() else ""
    cuda = TORCH_CUDA.search(version)
    if cuda and not cuda.group(1).startswith("12."):
        problems.append(f"torch is built for CUDA {cuda.group(1)}, not CUDA 12 (torch/version.py)")
    libs = sorted(path for path in (torch_dir / "lib").glob("lib*cuda*.so*") if path.is_file())
    return [lib.name for lib in libs], problems + _ldd_missing(libs, lib_dirs)


def check() -> list[str]:
    """The libraries that resolved; raises CheckFailed naming every one that did not."""
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    site = Path(onnxruntime.__file__).parent.parent
    provider = capi / PROVIDER
    if not provider.is_file():
        raise CheckFailed(f"{provider} is missing: install onnxruntime-gpu (not onnxruntime)")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise CheckFailed("onnxruntime does not list CUDAExecutionProvider: install onnxruntime-gpu")
    lib_dirs = _nvidia_lib_dirs(site)
    if not lib_dirs:
        raise CheckFailed(f"no NVIDIA wheels under {site / 'nvidia'}: install requirements-cuda.txt")

    problems = _replaced(site) + _preload()
    cudnn_dir = site / "nvidia" / "cudnn" / "lib"
    for name in CUDNN_SUBLIBS:
        path = cudnn_dir / name
        problem = _dlopen(path) if path.is_file() else f"{path}: missing (cuDNN opens it on first use)"
        if problem:
            problems.append(problem)
    for path, mode in ((capi / SHARED, ctypes.RTLD_GLOBAL), (provider, ctypes.RTLD_LOCAL)):
        problem = _dlopen(path, mode)
        if problem:
            problems.append(problem)
    wheel_libs = _provider_wheel_libs(site)
    problems += _ldd_missing([provider, *wheel_libs], lib_dirs)
    torch_libs, torch_problems = _torch_problems(site, lib_dirs)
    problems += torch_problems
    if problems:
        raise CheckFailed("\n".join(dict.fromkeys(problems)))
    return [PROVIDER, *(lib.name for lib in wheel_libs), *(f"torch/lib/{name}" for name in torch_libs)]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="check_cuda_libs: %(message)s", stream=sys.stderr)
    try:
        resolved = check()
    except CheckFailed as exc:
        for line in str(exc).splitlines():
            log.error("FAIL %s", line)
        log.error("the CUDA provider cannot load: reinstall requirements-cuda.txt (pip install -r requirements-cuda.txt; "
                  "with the PyTorch fallback: -r requirements-torch.txt too)")
        return 1
    except ImportError as exc:
        log.error("onnxruntime cannot be imported (%s): install requirements-cuda.txt", exc)
        return 1
    log.info("ok: the CUDA provider and %d libraries resolve (%s)", len(resolved) - 1, ", ".join(resolved))
    return 0


if __name__ == "__main__":
    sys.exit(main())
