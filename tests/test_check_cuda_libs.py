"""scripts/check_cuda_libs.py's PyTorch part: torch must share the CUDA 12 stack.

The full check (ONNX Runtime's provider and every NVIDIA library) runs inside the built
images (tests/test_container_owner.py, tests/test_container_torch.py); this runs its
torch rules on hand-made site-packages folders: a CUDA 13 torch and CUDA 13 NVIDIA wheels
are named, a CUDA 12 or CPU-only torch passes, and no torch means nothing to check.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("check_cuda_libs", ROOT / "scripts" / "check_cuda_libs.py")
check_cuda_libs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check_cuda_libs)


def _site(tmp_path: Path, torch_cuda: str | None, *dists: str) -> Path:
    site = tmp_path / "site-packages"
    (site / "torch" / "lib").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("")
    (site / "torch" / "version.py").write_text(
        "from typing import Optional\n__version__ = '2.9.1'\n"
        f"cuda: Optional[str] = {torch_cuda!r}\n")
    for name in dists:
        info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    return site


def test_cuda_13_torch_and_its_wheels_are_named(tmp_path):
    site = _site(tmp_path, "13.0", "nvidia-cudnn-cu13", "cuda-toolkit", "nvidia-cudnn-cu12")
    _, problems = check_cuda_libs._torch_problems(site, [])
    assert any(p.startswith("nvidia-cudnn-cu13 is installed") for p in problems), problems
    assert any(p.startswith("cuda-toolkit is installed") for p in problems), problems
    assert "torch is built for CUDA 13.0, not CUDA 12 (torch/version.py)" in problems
    assert not any("cu12" in p for p in problems), problems


@pytest.mark.parametrize("torch_cuda", ["12.8", None])
def test_cuda_12_or_cpu_torch_passes(tmp_path, torch_cuda):
    assert check_cuda_libs._torch_problems(_site(tmp_path, torch_cuda, "nvidia-cudnn-cu12"), []) == ([], [])


def test_no_torch_nothing_to_check(tmp_path):
    assert check_cuda_libs._torch_problems(tmp_path, []) == ([], [])
