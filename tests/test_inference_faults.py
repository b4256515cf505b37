"""Faults stay local: one row's memory fault, one file's full disk cost that row or file, never the run."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import uuid

import cv2
import pytest

from inference.layouts import pipeline as pipeline_module
from inference.outputs import writers as writers_module
from inference.cli import main
from inference.errors import EXIT_FATAL, EXIT_ROWS_FAILED

from test_inference_cli import GOOD_ROWS, _json, make_input


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _run(tmp_path, model_dir, rows=GOOD_ROWS, *extra) -> tuple[int, object]:
    inp = make_input(tmp_path / "in", rows)
    out = tmp_path / "out"
    return main(["--input", str(inp), "--output", str(out), "--weights", str(model_dir), *extra]), out


def test_memory_error_in_one_image_costs_only_its_rows(tmp_path, tiny_model_dir, monkeypatch, caplog):
    real_read = pipeline_module.read_image

    def read_image(path):
        if path.name == "tall.png":
            raise MemoryError()
        return real_read(path)

    monkeypatch.setattr(pipeline_module, "read_image", read_image)
    caplog.set_level(logging.ERROR)
    code, out = _run(tmp_path, tiny_model_dir)
    assert code == EXIT_ROWS_FAILED
    failed = [e for e in _errors(caplog) if e.startswith("row failed")]
    assert len(failed) == 2 and all("tall.png" in e and "out of memory" in e for e in failed)
    # every other row is predicted; the two failed rows have their fallbacks
    assert {r["task_id"] for r in _json(out, "classification")} == {"breast_3cls", "lung_2cls"}
    assert {r["task_id"] for r in _json(out, "regression")} == {"IUGC", "fetal_femur"}
    det = _json(out, "detection")
    assert [d["bbox_normalized"] for d in det] == [[0.25, 0.25, 0.75, 0.75]]  # the fallback box
    assert cv2.imread(str(out / "Segmentation/ds/MASKS/wide.png"), cv2.IMREAD_UNCHANGED).shape == (90, 160)
    assert not cv2.imread(str(out / "Segmentation/multi/MASKS/tall.png"), cv2.IMREAD_UNCHANGED).any()


def test_cv2_error_in_one_mask_costs_only_that_row(tmp_path, tiny_model_dir, monkeypatch, caplog):
    from contract.kinds import segmentation as segmentation_module

    real_mask = segmentation_module.segmentation_mask

    def segmentation_mask(logits, size):
        if logits.shape[0] == 4:  # cardiac_multi only
            raise cv2.error("simulated OpenCV failure (Insufficient memory)")
        return real_mask(logits, size)

    monkeypatch.setattr(segmentation_module, "segmentation_mask", segmentation_mask)  # the masks' decoding
    caplog.set_level(logging.ERROR)
    code, out = _run(tmp_path, tiny_model_dir)
    assert code == EXIT_ROWS_FAILED
    failed = [e for e in _errors(caplog) if e.startswith("row failed")]
    assert len(failed) == 1 and "cardiac_multi" in failed[0] and "simulated OpenCV failure" in failed[0]
    assert len(_json(out, "classification")) == 2 and len(_json(out, "detection")) == 1
    assert (out / "Segmentation/ds/MASKS/wide.png").is_file()


def test_disk_full_on_one_file_reports_bytes_and_writes_the_others(tmp_path, tiny_model_dir, monkeypatch, caplog):
    real_write = writers_module.atomic_write_under
    refused: dict[str, int] = {}

    def atomic_write_under(root_fd, parts, data, durable=False):
        if parts[-1] in ("classification_predictions.json", "wide.png"):
            refused[parts[-1]] = len(data)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(root_fd, parts, data, durable)

    monkeypatch.setattr(writers_module, "atomic_write_under", atomic_write_under)
    caplog.set_level(logging.ERROR)
    code, out = _run(tmp_path, tiny_model_dir)
    assert code == EXIT_ROWS_FAILED
    errors = _errors(caplog)
    json_error = [e for e in errors if "classification_predictions.json" in e]
    assert len(json_error) == 1 and "no space left" in json_error[0]
    assert f"{refused['classification_predictions.json']} bytes needed" in json_error[0]
    assert any("wide.png" in e and f"{refused['wide.png']} bytes needed" in e for e in errors)
    assert not (out / "classification_predictions.json").exists()
    assert len(_json(out, "detection")) == 1 and len(_json(out, "regression")) == 2  # the others are written
    assert (out / "Segmentation/multi/MASKS/tall.png").is_file()
    assert not [p for p in out.rglob("*.tmp")]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs (needs root and mount); skipped where it cannot be made."""
    mount_point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_disk_is_caught_at_start(tmp_path, tiny_model_dir, small_tmpfs, caplog):
    filler = small_tmpfs / "filler"
    with open(filler, "wb") as handle:  # leave less than the 64 KiB start-up probe
        handle.write(b"x" * (256 - 32) * 1024)
    caplog.set_level(logging.ERROR)
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    code = main(["--input", str(inp), "--output", str(small_tmpfs / "out"), "--weights", str(tiny_model_dir)])
    assert code == EXIT_FATAL
    assert any("no space left" in e and "bytes needed" in e for e in _errors(caplog)), _errors(caplog)
    filler.unlink()  # with room, the same folder works
    code = main(["--input", str(inp), "--output", str(small_tmpfs / "out"), "--weights", str(tiny_model_dir)])
    assert code == 0 and json.loads((small_tmpfs / "out/regression_predictions.json").read_text())


def _model_copy(tiny_model_dir, tmp_path):
    import shutil

    from contract.manifest import load_manifest

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    return model, load_manifest(model)


def _head_file(model, manifest, task_id: str):
    return model / manifest.graph_sets["fp32"].graphs[f"head.{task_id}"].path


def test_a_garbage_head_fails_its_own_task_only(tmp_path, tiny_model_dir, caplog):
    model, manifest = _model_copy(tiny_model_dir, tmp_path)
    _head_file(model, manifest, "breast_3cls").write_bytes(b"garbage, not an ONNX graph")
    for flags, reason in ((["--no-verify-hashes"], "cannot load"), ([], "sha256 differs")):
        caplog.clear()
        caplog.set_level(logging.WARNING)
        code, out = _run(tmp_path / reason.replace(" ", "_"), model, GOOD_ROWS, *flags)
        assert code == EXIT_ROWS_FAILED
        failed = [e for e in _errors(caplog) if e.startswith("row failed")]
        assert len(failed) == 1 and "breast_3cls" in failed[0] and reason in failed[0], failed
        assert not any("PyTorch" in r.getMessage() for r in caplog.records)  # no switch for one head
        cls = {r["task_id"]: r for r in _json(out, "classification")}
        assert cls["breast_3cls"]["predicted_probs"] == [1 / 3] * 3  # the fallback
        assert cls["lung_2cls"]["predicted_probs"] != [0.5, 0.5]
        assert len(_json(out, "detection")) == 1 and len(_json(out, "regression")) == 2
        assert (out / "Segmentation/multi/MASKS/tall.png").is_file()


def test_a_changed_hash_fails_that_task_unless_checks_are_off(tmp_path, tiny_model_dir, caplog):
    model, _ = _model_copy(tiny_model_dir, tmp_path)
    data = json.loads((model / "manifest.json").read_text())
    data["graph_sets"]["fp32"]["graphs"]["head.IUGC"]["sha256"] = "0" * 64
    (model / "manifest.json").write_text(json.dumps(data))
    caplog.set_level(logging.ERROR)
    code, out = _run(tmp_path / "checked", model)
    assert code == EXIT_ROWS_FAILED
    failed = [e for e in _errors(caplog) if e.startswith("row failed")]
    assert len(failed) == 1 and "task IUGC" in failed[0] and "sha256 differs" in failed[0]
    assert "--no-verify-hashes" in failed[0]
    assert len(_json(out, "classification")) == 2
    code, out = _run(tmp_path / "unchecked", model, GOOD_ROWS, "--no-verify-hashes")
    assert code == 0


def test_a_symlink_planted_mid_run_redirects_nothing(tmp_path, tiny_model_dir, monkeypatch, caplog):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    real_log_batch = pipeline_module.Pipeline._log_batch

    def log_batch(batch, first):
        if first:  # after the first batch, the folder of a later row's mask becomes a link to elsewhere
            (out / "Segmentation").mkdir(parents=True, exist_ok=True)
            (out / "Segmentation/multi").symlink_to(outside, target_is_directory=True)
        real_log_batch(batch, first)

    monkeypatch.setattr(pipeline_module.Pipeline, "_log_batch", staticmethod(log_batch))
    caplog.set_level(logging.ERROR)
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    code = main(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir), "--batch-size", "1"])
    assert code == EXIT_ROWS_FAILED
    assert list(outside.rglob("*")) == []  # nothing written through the link
    failed = [e for e in _errors(caplog) if e.startswith("row failed")]
    assert len(failed) == 1 and "cardiac_multi" in failed[0] and "symbolic link" in failed[0], failed
    assert (out / "Segmentation/ds/MASKS/wide.png").is_file() and len(_json(out, "classification")) == 2


def test_a_missing_head_fails_its_own_task_only(tmp_path, tiny_model_dir, caplog):
    model, manifest = _model_copy(tiny_model_dir, tmp_path)
    _head_file(model, manifest, "fetal_femur").unlink()
    caplog.set_level(logging.ERROR)
    code, out = _run(tmp_path, model)
    assert code == EXIT_ROWS_FAILED
    errors = _errors(caplog)
    assert any("head.fetal_femur" in e and "missing from the model folder" in e for e in errors)
    failed = [e for e in errors if e.startswith("row failed")]
    assert len(failed) == 1 and "task fetal_femur" in failed[0] and "No such file" in failed[0], failed
    reg = {r["task_id"]: r for r in _json(out, "regression")}
    assert set(reg) == {"IUGC", "fetal_femur"} and len(_json(out, "classification")) == 2
