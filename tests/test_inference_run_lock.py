"""One run per output folder (a lock naming the other run); stale temporaries of a killed run removed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from inference.cli import main
from inference.errors import EXIT_FATAL, EXIT_OK
from inference.bookkeeping.lock import LOCK_NAME

from test_inference_cli import GOOD_ROWS, make_input

REPO = Path(__file__).resolve().parent.parent
HOLDER = """
import sys, time
from inference.bookkeeping.lock import FolderLock, Holder
with FolderLock(sys.argv[1], Holder("run")):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_a_second_run_on_the_same_output_exits_1_naming_the_first(tmp_path, tiny_model_dir, caplog):
    out = tmp_path / "out"
    out.mkdir()
    inp = make_input(tmp_path / "in", GOOD_ROWS[2:4])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        caplog.set_level(logging.ERROR)
        code = main(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir)])
        assert code == EXIT_FATAL
        message = " ".join(r.getMessage() for r in caplog.records)
        assert "in use by another run" in message and f"pid {holder.pid}" in message, message
        assert not (out / "classification_predictions.json").exists()
    finally:
        holder.communicate("\n", timeout=30)
    assert not (out / LOCK_NAME).exists()  # released and removed when the holder ended
    code = main(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir)])
    assert code == EXIT_OK and (out / "classification_predictions.json").is_file()
    assert not (out / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_run_does_not_block(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait(timeout=30)
    assert (out / LOCK_NAME).exists()  # the file stays, its lock is gone with the process
    inp = make_input(tmp_path / "in", GOOD_ROWS[2:4])
    assert main(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir)]) == EXIT_OK


def test_stale_temporaries_of_our_own_are_removed_only_those(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    (out / "Segmentation/ds/MASKS").mkdir(parents=True)
    ours = [out / ".classification_predictions.json.k3_9zq0a.tmp", out / "Segmentation/ds/MASKS/.wide.png.0a1b2c3d.tmp"]
    theirs = [out / ".notes.tmp", out / "draft.tmp", out / "Segmentation/.x.png.TOOLONG123.tmp"]
    outside = tmp_path / ".wide.png.0a1b2c3d.tmp"
    for path in [*ours, *theirs, outside]:
        path.write_bytes(b"half-written")
    link = out / ".link.png.abcdefgh.tmp"
    os.symlink(outside, link)
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    assert main(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir)]) == EXIT_OK
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in theirs) and outside.exists() and link.is_symlink()
