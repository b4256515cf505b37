"""``python -m benchmarks.gpu``: its whole plumbing in the --device cpu smoke mode, its refusal without a GPU,
and its GPU-memory sampling and GPU naming against a stand-in nvidia-smi (no GPU on the test machines)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.gpu import GPU_END, GPU_START
from benchmarks.gpu import main as gpu_main
from benchmarks.gpu_checks import GpuMemoryPoller, gpu_identity


@pytest.fixture(scope="module")
def fp16_model(tiny_model, tmp_path_factory) -> Path:
    from exporter import export_model

    out = tmp_path_factory.mktemp("gpu_bench") / "model"
    export_model(tiny_model, out, precisions=("fp32", "fp16"), source={"checkpoint": "tiny fp32+fp16"})
    return out


@pytest.mark.slow  # 45-65 s on 2 cores (fp16 export, then the reference's ~2 s first call of each head on the CPU)
def test_cpu_smoke_run_writes_every_figure_and_claims_no_gpu(fp16_model, tmp_path):
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text(f"# Benchmarks\n\nhand-written\n\n## GPU results\n\n{GPU_START}\n\nold figures\n\n{GPU_END}\n\n## After\n")
    out = tmp_path / "out"
    rc = gpu_main(["--device", "cpu", "--scale", "0.005", "--model", str(fp16_model), "--cache", str(tmp_path / "cache"),
                   "--out", str(out), "--reference-workers", "0", "--markdown", str(markdown)])
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    assert result["device"] == "cpu" and result["ok"] is True
    assert result["cuda_check"]["verified"].startswith("not applicable")
    assert result["gpu"]["name"] == "none" and "not queried" in result["gpu"]["source"]
    assert result["images"] == 34 and sum(result["images_per_kind"].values()) == 34
    assert set(result["pipelines"]) == {"reference", "ours_fp32", "ours_fp16"}
    for name, p in result["pipelines"].items():
        assert p["returncode"] == 0, name
        assert p["on_requested_device"], (name, p["ran_on"])
        assert p["gpu_memory"]["peak_mib"] is None
        assert p["first_output_s"] is not None and 0 < p["first_output_s"] < p["wall_s"]
    assert result["pipelines"]["ours_fp16"]["ran_on"] == "CPUExecutionProvider"
    assert result["comparisons"]["ours_fp32 vs reference"]["agrees"]
    assert result["comparisons"]["ours_fp32 vs reference"]["rows"] == 34
    assert all(r is not None and r > 0 for r in result["ratios"].values())
    parity = result["parity"]["precisions"]
    assert set(parity) == {"fp32", "fp16"}
    assert set(parity["fp32"]["max_rel_error_per_kind"]) == {"segmentation", "classification", "detection", "Regression"}
    assert parity["fp32"]["max_rel_error"] <= 1e-4
    assert 0 < parity["fp16"]["max_rel_error"] < 0.05  # half precision really ran: not bit-identical to fp32
    assert parity["fp32"]["sessions_per_provider"] == {"CPUExecutionProvider": parity["fp32"]["sessions"]}
    text = markdown.read_text()
    assert "old figures" not in text and "hand-written" in text and "## After" in text
    assert text.count(GPU_START) == 1 and "no GPU figure was measured" in text
    assert (out / "results.md").read_text().strip() in text


def test_cuda_without_a_gpu_stops_naming_the_reason(tmp_path):
    from inference.engines.providers import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is None:
        pytest.skip("this machine has a usable GPU")
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--out", str(tmp_path / "out"), "--no-markdown",
                           "--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "the GPU benchmark cannot run" in done.stderr and reason in done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


@pytest.fixture
def fake_smi(tmp_path, monkeypatch):
    """An ``nvidia-smi`` on PATH answering the two queries the script makes, from files the test writes."""
    apps = tmp_path / "apps.csv"
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\ncase \"$1\" in\n  --query-gpu=*) echo 'NVIDIA H200, 570.86.15' ;;\n"
                      f"  --query-compute-apps=*) cat '{apps}' ;;\n  *) exit 9 ;;\nesac\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return apps


def _wait_samples(poller: GpuMemoryPoller, n: int) -> None:
    deadline = time.monotonic() + 20
    while poller.samples < n:
        assert time.monotonic() < deadline, "the poller stopped sampling"
        time.sleep(0.01)


def test_gpu_name_and_driver_come_from_nvidia_smi(fake_smi):
    assert gpu_identity() == {"name": "NVIDIA H200", "driver": "570.86.15", "source": "nvidia-smi"}


def test_memory_peak_counts_this_runs_processes_only(fake_smi):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        fake_smi.write_text(f"{child.pid}, 512\n4194000, 9000\n[N/A], [N/A]\n")
        with GpuMemoryPoller(interval=0.02) as poller:
            _wait_samples(poller, 3)
            fake_smi.write_text(f"{child.pid}, 300\n")
            _wait_samples(poller, poller.samples + 3)
        figures = poller.as_dict()
    finally:
        child.kill()
        child.wait()
    assert figures["peak_mib"] == 512 and figures["counted"] == "this run's processes"


def test_memory_peak_without_our_pids_counts_every_process_and_says_so(fake_smi):
    fake_smi.write_text("4194000, 700\n4194001, 100\n")
    with GpuMemoryPoller(interval=0.02) as poller:
        _wait_samples(poller, 3)
    figures = poller.as_dict()
    assert figures["peak_mib"] == 800 and "PID namespace" in figures["counted"]
