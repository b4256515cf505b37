"""One lock per output folder, taken by every kind of run: the shards of one job share it; a whole run, a merge or a
shard of another job is refused naming the holder; temporaries are removed only by a run alone in the folder."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from contract.manifest import ModelFolder
from inference.bookkeeping.journal import fingerprint
from inference.bookkeeping.lock import LOCK_NAME, FolderLock, Holder
from inference.cli import main
from inference.errors import EXIT_FATAL, EXIT_OK, EXIT_ROWS_FAILED, FatalError
from inference.layouts.batch import _holder
from inference.options import RunOptions
from inference.scale.shard import Shard

from test_inference_cli import GOOD_ROWS, make_input

REPO = Path(__file__).resolve().parent.parent
HOLDER = """
import json, sys
from inference.bookkeeping.lock import FolderLock, Holder
with FolderLock(sys.argv[1], Holder(**json.loads(sys.argv[2]))):
    print("locked", flush=True)
    sys.stdin.readline()
"""
STALE_TEMPORARY = "Segmentation/.wide.png.0a1b2c3d.tmp"


class Held:
    """Another process holding ``folder`` as ``holder`` until the block ends."""

    def __init__(self, folder: Path, holder: Holder):
        self.args = [sys.executable, "-c", HOLDER, str(folder), json.dumps(holder.__dict__)]

    def __enter__(self) -> subprocess.Popen:
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"
        return self.proc

    def __exit__(self, *exc_info) -> None:
        self.proc.communicate("\n", timeout=30)


@pytest.fixture
def case(tmp_path, tiny_model_dir):
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    out = tmp_path / "out"
    (out / "Segmentation").mkdir(parents=True)
    (out / STALE_TEMPORARY).write_bytes(b"a mask half-written by a shard that is still running")
    return inp, out, tiny_model_dir


def _run(case, *extra: str) -> int:
    inp, out, model = case
    return main(["--input", str(inp), "--output", str(out), "--weights", str(model), *extra])


def _job(case, shard: Shard) -> Holder:
    """The holder a real ``--shard`` run on ``case`` is (its job: the fingerprint and N)."""
    inp, out, model = case
    options = RunOptions(input_dir=inp, output_dir=out, shard=shard)
    return _holder(options, fingerprint(inp, ModelFolder.open(model), options))


def _error(caplog) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_a_whole_run_is_refused_while_a_shard_writes_and_leaves_its_temporaries(case, caplog):
    inp, out, _ = case
    caplog.set_level(logging.ERROR)
    with Held(out, _job(case, Shard(0, 2))) as shard:
        assert _run(case) == EXIT_FATAL
        assert "in use by another shard 0/2 of job" in _error(caplog) and f"pid {shard.pid}" in _error(caplog)
        assert (out / STALE_TEMPORARY).exists()  # the shard's temporary is not the whole run's to remove
        assert not (out / "classification_predictions.json").exists()
    assert _run(case) == EXIT_OK  # alone now: the killed shard's temporary goes
    assert not (out / STALE_TEMPORARY).exists() and not (out / LOCK_NAME).exists()


def test_a_shard_is_refused_while_a_whole_run_holds_the_folder(case, caplog):
    inp, out, _ = case
    caplog.set_level(logging.ERROR)
    with Held(out, Holder("run")) as run:
        assert _run(case, "--shard", "0/2") == EXIT_FATAL
        assert "in use by another run" in _error(caplog) and f"pid {run.pid}" in _error(caplog)
        assert not (out / "shards").exists()


def test_shards_of_one_job_share_the_folder_a_shard_of_another_job_is_refused(case, caplog):
    inp, out, _ = case
    caplog.set_level(logging.ERROR)
    with Held(out, _job(case, Shard(1, 2))):
        assert _run(case, "--shard", "0/2") in (EXIT_OK, EXIT_ROWS_FAILED)  # the same job: shares the folder
        assert (out / "shards/part-0000-of-0002.json").is_file()
        assert (out / STALE_TEMPORARY).exists()  # a shard never removes temporaries: a sibling may be writing
        assert _run(case, "--shard", "1/2") == EXIT_FATAL  # the sibling itself is running already
        assert "this shard is running already" in _error(caplog)
        caplog.clear()
        assert _run(case, "--shard", "0/3") == EXIT_FATAL  # another job (another N)
        assert "a shard of another job" in _error(caplog) and "shard 1/2" in _error(caplog)
        caplog.clear()
        assert _run(case, "--shard", "0/2", "--strict") == EXIT_FATAL  # another job (other options)
        assert "a shard of another job" in _error(caplog)
    assert not list(out.glob(".fmc-run*.lock"))  # the last holder removed the lock files
    assert _run(case, "--shard", "1/2") in (EXIT_OK, EXIT_ROWS_FAILED)
    caplog.clear()
    with Held(out, _job(case, Shard(0, 2))):  # shard 0 running again: no merge yet
        assert main(["merge", str(out), "--output", str(out)]) == EXIT_FATAL
        assert "in use by another shard 0/2" in _error(caplog)
        assert not (out / "classification_predictions.json").exists()
    assert main(["merge", str(out), "--output", str(out)]) in (EXIT_OK, EXIT_ROWS_FAILED)
    assert not (out / STALE_TEMPORARY).exists()  # the merge, alone in the folder, removed the stale temporary


def test_a_grand_challenge_case_and_a_merge_take_the_lock_too(case, tmp_path, caplog):
    from test_gc_bad_input import make_case

    _, out, model = case
    caplog.set_level(logging.ERROR)
    with Held(out, Holder("shard 0/2", tag="part-0000-of-0002", job="abc")):
        gc_case = make_case(tmp_path / "case")
        assert main(["--input", str(gc_case), "--output", str(out), "--weights", str(model)]) == EXIT_FATAL
        assert "in use by another shard 0/2 of job abc" in _error(caplog)
        assert not (out / "images").exists()


def test_the_lock_file_goes_with_its_last_holder(tmp_path):
    first = FolderLock(tmp_path, Holder("shard 0/2", tag="part-0000-of-0002", job="j"))
    second = FolderLock(tmp_path, Holder("shard 1/2", tag="part-0001-of-0002", job="j"))
    with first:
        with second:
            with pytest.raises(FatalError, match="in use by another shard 0/2 of job j"):
                FolderLock(tmp_path, Holder("run")).acquire()
        assert (tmp_path / LOCK_NAME).exists()  # the first shard still holds it
        assert not (tmp_path / ".fmc-run.part-0001-of-0002.lock").exists()
    assert list(tmp_path.iterdir()) == []
