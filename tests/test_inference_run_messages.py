"""What a batch run tells its user: where the outputs went, stale files, GPU hints, quiet timestamps."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from inference.engines import providers as engine_module
from inference.layouts import pipeline as pipeline_module
from tests.test_inference_cli import GOOD_ROWS, _run

ROOT = Path(__file__).resolve().parent.parent


def _messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("inference")]


def test_run_ends_with_where_the_outputs_went_and_warns_about_stale_files(tmp_path, tiny_model_dir, caplog):
    out = tmp_path / "out"
    (out / "Segmentation/old_task/masks").mkdir(parents=True)
    (out / "Segmentation/old_task/masks/old.png").write_bytes(b"stale")
    (out / "notes.txt").write_text("left by someone")
    caplog.set_level(logging.DEBUG)
    code, out = _run(tmp_path, tiny_model_dir, GOOD_ROWS)
    assert code == 0
    info = _messages(caplog, logging.INFO)
    # 2 segmentation rows -> 2 masks, plus the three JSON files
    assert info[-3] == f"outputs: 5 files written to {out} (2 mask PNGs, 3 JSON files)"
    assert info[-2].startswith("next: python -m evaluation --input ") and info[-1].startswith("next: python -m review ")
    warnings = [m for m in _messages(caplog, logging.WARNING) if "did not write" in m]
    assert len(warnings) == 1
    assert "holds 2 file(s)" in warnings[0] and "Segmentation/old_task/masks/old.png" in warnings[0]
    assert "notes.txt" in warnings[0] and "nothing was deleted" in warnings[0]
    assert (out / "notes.txt").exists() and (out / "Segmentation/old_task/masks/old.png").exists()


def test_clean_run_has_no_stale_warning_and_timestamps_are_debug(tmp_path, tiny_model_dir, caplog):
    caplog.set_level(logging.DEBUG)
    code, _ = _run(tmp_path, tiny_model_dir, GOOD_ROWS[2:4])
    assert code == 0
    assert not [m for m in _messages(caplog, logging.WARNING) if "did not write" in m]
    assert any(m.startswith("first predictions ready at unix time") for m in _messages(caplog, logging.DEBUG))
    assert not any("unix time" in m for m in _messages(caplog, logging.INFO))
    # the three JSON files are always written (an empty list for an absent kind)
    assert _messages(caplog, logging.INFO)[-3].endswith("(0 mask PNGs, 3 JSON files)")


def test_log_lines_go_through_tqdm_during_the_progress_loop(tmp_path, tiny_model_dir, monkeypatch):
    """While the progress bar runs, the root logger's console handler is tqdm's (lines never split the bar)."""
    import sys

    seen: list[list[str]] = []
    original = pipeline_module.Pipeline._log_batch

    def spy(batch, first):
        seen.append([type(h).__name__ for h in logging.root.handlers])
        original(batch, first)

    console = logging.StreamHandler(sys.stderr)
    logging.root.addHandler(console)
    monkeypatch.setattr(pipeline_module.Pipeline, "_log_batch", staticmethod(spy))
    try:
        assert _run(tmp_path, tiny_model_dir, GOOD_ROWS[2:4])[0] == 0
    finally:
        logging.root.removeHandler(console)
    assert seen and all("_TqdmLoggingHandler" in names and "StreamHandler" not in names for names in seen)


@pytest.mark.parametrize("container, hint", [(True, True), (False, False)])
def test_gpu_hint_names_gpus_all_only_inside_this_image(monkeypatch, container, hint):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(engine_module.sys, "platform", "linux")
    monkeypatch.setattr(engine_module, "gpu_device_visible", lambda: False)
    real_exists = engine_module.Path.exists
    # a run of the image: the code under IMAGE_APP_DIR; a dev machine that is itself a container is not one
    monkeypatch.setattr(engine_module, "IMAGE_APP_DIR", ROOT if container else Path("/opt/app"))
    markers = {"/.dockerenv": True, "/run/.containerenv": False, "/dev/nvidiactl": False}
    monkeypatch.setattr(engine_module.Path, "exists", lambda self: markers.get(str(self), real_exists(self)))
    reason = engine_module.cuda_unavailable_reason()
    assert reason.startswith("no NVIDIA GPU device is visible")
    assert ("--gpus all" in reason) is hint
