"""The CPU variant's crash probe is started early (beside the run's own start-up) and answered once; a run that
cannot use a variant never starts it."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pytest

from inference import cli
from inference.engines import cpu_variants, openvino_probe

RECORD = {"runtime": "openvino CPU, inference precision bf16", "passed": False, "kinds_passed": ["segmentation"],
          "images": 4, "speedup": 1.8}


@pytest.fixture
def fresh_probe(monkeypatch):
    monkeypatch.setattr(openvino_probe, "_ANSWERS", {})
    monkeypatch.setattr(openvino_probe, "_PENDING", {})


@pytest.fixture
def started(monkeypatch):
    """Records the probes started (hint, threads) instead of launching children; the variant can run here."""
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(openvino_probe, "start", lambda hint, threads: calls.append((hint, threads)))
    monkeypatch.setattr(cpu_variants, "package_present", lambda name: True)
    monkeypatch.setattr(cpu_variants, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    return calls


def _model(tmp_path: Path, tiny_model_dir: Path, record: dict | None) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["cpu_variants"] = {"bf16": record} if record else None
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_started_probe_is_answered_from_its_child(fresh_probe, monkeypatch):
    monkeypatch.setattr(openvino_probe, "probe_command", lambda hint, threads: [sys.executable, "-c", "pass"])
    openvino_probe.start("bf16", 1)
    assert ("bf16", 1) in openvino_probe._PENDING
    monkeypatch.setattr(openvino_probe, "_ask_child", lambda *a: pytest.fail("the started child must be used"))
    assert openvino_probe.probe("bf16", 1) is None and not openvino_probe._PENDING


def test_a_started_probe_that_crashes_is_reported(fresh_probe, monkeypatch):
    monkeypatch.setattr(openvino_probe, "probe_command", lambda hint, threads: [
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGFPE)"])
    openvino_probe.start("bf16", 1)
    assert openvino_probe.probe("bf16", 1) == "OpenVINO crashed (SIGFPE) while compiling a test graph"


def test_a_child_never_read_is_stopped_at_exit(fresh_probe, monkeypatch):
    monkeypatch.setattr(openvino_probe, "probe_command", lambda hint, threads: [
        sys.executable, "-c", "import time; time.sleep(60)"])
    openvino_probe.start("bf16", 1)
    [(child, _)] = openvino_probe._PENDING.values()
    openvino_probe.stop_pending()
    assert child.returncode is not None and not openvino_probe._PENDING


def test_prefetch_starts_the_probe_only_for_a_usable_record(tmp_path, tiny_model_dir, started):
    assert cpu_variants.prefetch_probe(_model(tmp_path, tiny_model_dir, RECORD), "auto", 2) == "bf16"
    assert started == [("bf16", 2)]
    shutil.rmtree(tmp_path / "model")
    assert cpu_variants.prefetch_probe(_model(tmp_path, tiny_model_dir, {**RECORD, "kinds_passed": []}), "auto", 2) is None
    assert cpu_variants.prefetch_probe(tmp_path / "model", "fp32", 2) is None  # fp32 asked: no variant
    assert cpu_variants.prefetch_probe(tmp_path / "absent", "auto", 2) is None  # no manifest: open_model says so
    assert started == [("bf16", 2)]


def test_prefetch_needs_the_package_and_the_instructions(tmp_path, tiny_model_dir, started, monkeypatch):
    folder = _model(tmp_path, tiny_model_dir, RECORD)
    monkeypatch.setattr(cpu_variants, "cpu_flags", lambda: frozenset({"avx2"}))
    assert cpu_variants.prefetch_probe(folder, "auto", 2) is None
    monkeypatch.setattr(cpu_variants, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setattr(cpu_variants, "package_present", lambda name: False)
    assert cpu_variants.prefetch_probe(folder, "bf16", 2) is None and started == []


def test_only_a_batch_run_on_the_cpu_prefetches(tmp_path, tiny_model_dir, started, monkeypatch):
    folder = _model(tmp_path, tiny_model_dir, RECORD)
    batch, case = tmp_path / "batch", tmp_path / "case"
    (batch / "csv_files").mkdir(parents=True)
    case.mkdir()
    monkeypatch.setattr("inference.engines.host.gpu_device_visible", lambda: False)

    def args(input_dir: Path, device: str = "auto") -> argparse.Namespace:
        return argparse.Namespace(input=input_dir, weights=folder, device=device, precision="auto")

    cli._prefetch_cpu_probe(args(case), 2)  # a Grand-Challenge case: one image, never a variant
    cli._prefetch_cpu_probe(args(batch, "cuda"), 2)
    assert started == []
    cli._prefetch_cpu_probe(args(batch), 2)
    assert started == [("bf16", 2)]
    monkeypatch.setattr("inference.engines.host.gpu_device_visible", lambda: True)  # a GPU will likely run it
    cli._prefetch_cpu_probe(args(batch), 2)
    assert started == [("bf16", 2)]
