"""What can fail at start is checked before the output folder is touched: a run that cannot start (the device,
the precision, the model, the input, a graph every task needs) exits 1 and leaves an earlier run's outputs
byte for byte as they were, with no journal, lock or probe file beside them."""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import pytest

from inference.cli import main
from inference.errors import EXIT_FATAL, EXIT_OK

from test_inference_cli import COLUMNS, GOOD_ROWS, make_input


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, hidden ones included."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, tiny_model_dir):
    """An input and the outputs of a clean run on it."""
    root = tmp_path_factory.mktemp("start")
    inp = make_input(root / "in", GOOD_ROWS)
    out = root / "out"
    assert main(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir)]) == EXIT_OK
    return inp, out, _snapshot(out)


def _model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    return model


def _fails_at_start(argv: list[str], out: Path, before: dict[str, bytes], caplog) -> str:
    caplog.clear()
    caplog.set_level(logging.ERROR)
    assert main(argv) == EXIT_FATAL
    assert _snapshot(out) == before, "the output folder changed"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "no error message"
    return " ".join(errors)


def test_device_cuda_without_a_gpu_leaves_the_outputs_alone(earlier, tiny_model_dir, caplog):
    from inference.engines.providers import cuda_unavailable_reason

    if cuda_unavailable_reason() is None:
        pytest.skip("this machine has a usable GPU")
    inp, out, before = earlier
    message = _fails_at_start(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir),
                               "--device", "cuda"], out, before, caplog)
    assert "--device cuda" in message


def test_a_precision_the_model_lacks_leaves_the_outputs_alone(earlier, tiny_model_dir, caplog):
    inp, out, before = earlier
    message = _fails_at_start(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir),
                               "--precision", "fp16"], out, before, caplog)
    assert "fp16" in message


def test_no_model_and_no_rows_leave_the_outputs_alone(earlier, tiny_model_dir, tmp_path, caplog):
    inp, out, before = earlier
    (tmp_path / "empty_model").mkdir()
    message = _fails_at_start(["--input", str(inp), "--output", str(out), "--weights", str(tmp_path / "empty_model")],
                              out, before, caplog)
    assert "manifest" in message
    header_only = make_input(tmp_path / "header_only", [])
    message = _fails_at_start(["--input", str(header_only), "--output", str(out), "--weights", str(tiny_model_dir)],
                              out, before, caplog)
    assert "no data rows" in message


@pytest.mark.parametrize("flags", [[], ["--no-verify-hashes"]], ids=["hashes", "no-hashes"])
def test_a_damaged_encoder_is_fatal_in_every_mode(earlier, tiny_model_dir, tmp_path, caplog, flags):
    """Every task needs the encoder: a run whose rows would all be fallbacks stops at start instead (exit 1)."""
    inp, out, before = earlier
    model = _model_copy(tiny_model_dir, tmp_path)
    encoder = model / "encoder.onnx"
    encoder.write_bytes(encoder.read_bytes()[: encoder.stat().st_size // 2])  # cut in half
    message = _fails_at_start(["--input", str(inp), "--output", str(out), "--weights", str(model), *flags],
                              out, before, caplog)
    assert "encoder" in message


def test_another_graph_in_the_encoders_place_is_fatal_without_hashes(earlier, tiny_model_dir, tmp_path, caplog):
    """A valid ONNX file, but not the encoder (its outputs differ from the manifest's): refused at session creation."""
    inp, out, before = earlier
    model = _model_copy(tiny_model_dir, tmp_path)
    shutil.copyfile(model / "fpn.onnx", model / "encoder.onnx")
    message = _fails_at_start(["--input", str(inp), "--output", str(out), "--weights", str(model),
                               "--no-verify-hashes"], out, before, caplog)
    assert "encoder" in message and "the manifest lists" in message and "nothing can be predicted" in message


def test_a_missing_encoder_is_fatal_and_a_new_output_folder_is_not_made(tiny_model_dir, tmp_path, caplog):
    model = _model_copy(tiny_model_dir, tmp_path)
    (model / "encoder.onnx").unlink()
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    caplog.set_level(logging.ERROR)
    assert main(["--input", str(inp), "--output", str(tmp_path / "new_out"), "--weights", str(model)]) == EXIT_FATAL
    assert "every task needs it" in caplog.text
    assert not (tmp_path / "new_out").exists()


def test_a_shard_that_cannot_start_leaves_the_shared_folder_alone(earlier, tiny_model_dir, tmp_path, caplog):
    inp, _, _ = earlier
    out = tmp_path / "shared"
    assert main(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir),
                 "--shard", "0/2"]) in (0, 3)
    before = _snapshot(out)
    _fails_at_start(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir), "--shard", "1/2",
                     "--precision", "fp16"], out, before, caplog)


def test_rows_are_read_before_the_output_folder_is_made(tiny_model_dir, tmp_path, caplog):
    inp = tmp_path / "in"
    (inp / "csv_files").mkdir(parents=True)
    with (inp / "csv_files" / "a.csv").open("w", newline="") as handle:
        csv.writer(handle).writerow(COLUMNS)
    caplog.set_level(logging.ERROR)
    out = tmp_path / "out"
    assert main(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir)]) == EXIT_FATAL
    assert not out.exists()
