"""Each row's outputs are its own and the run's files are never overwritten; resume sees changed images; after a
full disk the closing lines say what is really on disk."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from contract.kinds import PREDICTION_FILES
from inference.bookkeeping.journal import JOURNAL_NAME
from inference.cli import main
from inference.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_ROWS_FAILED
from inference.layouts import batch as batch_module
from inference.outputs import writers as writers_module
from inference.scale.shard import PART_FOLDER, shard_of

from test_inference_cli import GOOD_ROWS, make_input

SEGMENTATION = ("segmentation", "2")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _argv(inp: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["--input", str(inp), "--output", str(out), "--weights", str(model), *extra]


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_two_rows_naming_one_mask_the_later_fails_naming_both_lines(tmp_path, tiny_model_dir, caplog):
    clean = tmp_path / "clean"
    assert main(_argv(make_input(tmp_path / "in0", GOOD_ROWS), clean, tiny_model_dir)) == EXIT_OK
    rows = GOOD_ROWS + [("../img/tall.png", "fetal_head", *SEGMENTATION, "../Segmentation/./ds/MASKS/wide.png")]
    inp = make_input(tmp_path / "in", rows)
    outputs = []
    for number, extra in enumerate((["--batch-size", "1", "--workers", "4"], ["--batch-size", "8"])):
        caplog.clear()
        caplog.set_level(logging.ERROR)
        out = tmp_path / f"out{number}"
        assert main(_argv(inp, out, tiny_model_dir, *extra)) == EXIT_ROWS_FAILED
        [failed] = [e for e in _errors(caplog) if e.startswith("row failed")]
        assert "test.csv line 9" in failed and "test.csv line 2" in failed and "mask_path of its own" in failed
        assert not any("kind or size is unknown" in e for e in _errors(caplog))
        outputs.append(_snapshot(out))
    assert outputs[0] == outputs[1] == _snapshot(clean)  # the first row's mask, every time; nothing else


def test_colliding_rows_in_two_shards_merge_to_the_single_run(tmp_path, tiny_model_dir):
    first = GOOD_ROWS[0]  # fetal_head on wide.png -> Segmentation/ds/MASKS/wide.png
    candidates = [(image, task, *SEGMENTATION, first[4]) for task in ("fetal_head", "lung", "cervix", "breast_lesion")
                  for image in ("../img/tall.png", "../img/grey.bmp")]
    later = next(row for row in candidates if shard_of(_row(row), 2) != shard_of(_row(first), 2))
    inp = make_input(tmp_path / "in", GOOD_ROWS + [later])
    single, shared = tmp_path / "single", tmp_path / "shared"
    assert main(_argv(inp, single, tiny_model_dir)) == EXIT_ROWS_FAILED
    for index in (0, 1):
        assert main(_argv(inp, shared, tiny_model_dir, "--shard", f"{index}/2")) in (EXIT_OK, EXIT_ROWS_FAILED)
    assert main(["merge", str(shared), "--output", str(shared)]) == EXIT_ROWS_FAILED
    assert _snapshot(shared) == _snapshot(single)


def _row(values: tuple):
    from inference.layouts.batch_rows import Row

    return Row(0, "test.csv", 2, values[0], values[1], values[2], values[3], values[4], Path(values[0]))


def test_a_mask_path_naming_the_runs_own_files_fails_and_overwrites_nothing(tmp_path, tiny_model_dir, caplog):
    own = ["../classification_predictions.json", "../.fmc-journal.jsonl", "../Segmentation/.fmc-x.png",
           f"../{PART_FOLDER}/part-0000-of-0001.json", "../Segmentation/ds/MASKS/.wide.png.0a1b2c3d.tmp"]
    rows = GOOD_ROWS + [("../img/wide.png", "fetal_head", *SEGMENTATION, path) for path in own]
    inp = make_input(tmp_path / "in", rows)
    out = tmp_path / "out"
    caplog.set_level(logging.ERROR)
    assert main(_argv(inp, out, tiny_model_dir)) == EXIT_ROWS_FAILED
    failed = [e for e in _errors(caplog) if e.startswith("row failed")]
    assert len(failed) == len(own) and all("a file of the run itself" in e for e in failed)
    assert sum("no usable mask_path" in e for e in _errors(caplog)) == len(own)  # the reason, not "kind unknown"
    assert not any("kind or size is unknown" in e for e in _errors(caplog))
    assert [r["task_id"] for r in json.loads((out / "classification_predictions.json").read_text())] == \
        ["breast_3cls", "lung_2cls"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        [*PREDICTION_FILES.values(), "Segmentation/ds/MASKS/wide.png", "Segmentation/multi/MASKS/tall.png"])


def test_resume_predicts_a_changed_image_again(tmp_path, tiny_model_dir, monkeypatch, caplog):
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    out = tmp_path / "out"
    checks = []
    monkeypatch.setattr(batch_module, "stop_requested", lambda: checks.append(1) or len(checks) > 3)
    assert main(_argv(inp, out, tiny_model_dir, "--batch-size", "1")) == EXIT_INTERRUPTED
    monkeypatch.undo()
    journal = [json.loads(line) for line in (out / JOURNAL_NAME).read_text().splitlines()[1:]]
    assert {entry["key"][2] for entry in journal} >= {"../img/wide.png"}  # wide.png's rows are done
    assert all(entry["image"] for entry in journal)  # each with its image's fingerprint
    image = inp / "img/wide.png"
    rng = np.random.default_rng(99)
    cv2.imwrite(str(image), rng.integers(0, 256, (90, 160, 3), dtype=np.uint8))  # same size in pixels, new content
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    caplog.set_level(logging.INFO)
    assert main(_argv(inp, out, tiny_model_dir, "--batch-size", "1", "--resume")) == EXIT_OK
    assert any("image changed since it was predicted" in r.getMessage() for r in caplog.records)
    clean = tmp_path / "clean"
    assert main(_argv(inp, clean, tiny_model_dir, "--batch-size", "1")) == EXIT_OK
    assert _snapshot(out) == _snapshot(clean)


def test_the_last_rows_are_journaled_before_the_final_write(tmp_path, tiny_model_dir, monkeypatch):
    """A kill during the final write redoes nothing: every row's journal line is on disk before it starts."""
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    out = tmp_path / "out"
    real, seen = batch_module._write_outputs, []

    def write_outputs(*args, **kwargs):
        seen.append(len((out / JOURNAL_NAME).read_bytes().splitlines()) - 1)  # what a kill now would leave
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_module, "_write_outputs", write_outputs)
    assert main(_argv(inp, out, tiny_model_dir)) == EXIT_OK
    assert seen == [len(GOOD_ROWS)]


def test_after_a_full_disk_the_summary_names_old_checkpoints_and_resume_finishes(tmp_path, tiny_model_dir,
                                                                                  monkeypatch, caplog):
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    clean = tmp_path / "clean"
    assert main(_argv(inp, clean, tiny_model_dir)) == EXIT_OK
    out = tmp_path / "out"
    real_write, json_writes = writers_module.atomic_write_under, []

    def atomic_write_under(root_fd, parts, data, durable=False):
        if parts[-1] in PREDICTION_FILES.values():
            json_writes.append(parts[-1])
            if len(json_writes) > 3:  # the first checkpoint is written, then the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(root_fd, parts, data, durable)

    monkeypatch.setattr(writers_module, "atomic_write_under", atomic_write_under)
    caplog.set_level(logging.INFO)
    assert main(_argv(inp, out, tiny_model_dir, "--batch-size", "1")) == EXIT_ROWS_FAILED
    messages = [r.getMessage() for r in caplog.records]
    [closing] = [m for m in messages if m.startswith("outputs:")]
    assert "0 JSON files" in closing and "NOT complete: 3 JSON file(s) not written" in closing, closing
    stale = [m for m in messages if "is an earlier checkpoint" in m]
    assert len(stale) == 3 and any("lists 0 of the 2 records" in m for m in stale), stale
    monkeypatch.undo()
    caplog.clear()
    assert main(_argv(inp, out, tiny_model_dir, "--batch-size", "1", "--resume")) == EXIT_OK
    assert _snapshot(out) == _snapshot(clean)
