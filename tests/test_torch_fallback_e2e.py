"""The PyTorch fallback engine (`--engine torch`, what the WITH_TORCH=1 image adds) predicts
real cases: the weights rebuilt from the exported ONNX graphs (network.weights) give the
same outputs as the ONNX Runtime engine's expected outputs, within test/compare.py's
tolerances. One Grand-Challenge case per process (about 10 s each on 2 cores)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("case", ["seg_fetal_head", "cls_fetal_plane_cls_rgb"])
def test_torch_engine_matches_the_expected_outputs(case, tmp_path):
    folder = ROOT / "test" / "gc" / case
    output = tmp_path / "output"
    run = subprocess.run(
        [sys.executable, "-m", "inference", "--engine", "torch", "--device", "cpu",
         "--input", str(folder / "input"), "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "engine: torch" in run.stderr, run.stderr
    compare = subprocess.run(
        [sys.executable, str(ROOT / "test" / "compare.py"), str(folder / "expected_output"), str(output)],
        capture_output=True, text=True, timeout=120,
    )
    assert compare.returncode == 0, compare.stdout + compare.stderr
