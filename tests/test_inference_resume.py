"""A killed or stopped run resumes: --resume ends with outputs byte-identical to an uninterrupted run."""

from __future__ import annotations

import csv
import json
import logging
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inference.cli import main
from inference.errors import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK
from inference.bookkeeping.journal import JOURNAL_NAME

from test_inference_cli import GOOD_ROWS, make_input

REPO = Path(__file__).resolve().parent.parent
# python -m inference with each batch slowed by 40 ms, as a slower model would be: kills land mid-run
SLOW_RUN = """
import sys, time
from inference.layouts import pipeline
real = pipeline.Pipeline._run_batch
def slow(*args, **kwargs):
    time.sleep(0.04)
    return real(*args, **kwargs)
pipeline.Pipeline._run_batch = slow
from inference.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _rows(copies: int = 4) -> list[tuple]:
    rows = []
    for copy in range(copies):
        for image, task, name, count, mask in GOOD_ROWS:
            rows.append((image, task, name, count, mask.replace("MASKS/", f"MASKS{copy}/") if mask else ""))
    return rows


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _argv(inp: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["--input", str(inp), "--output", str(out), "--weights", str(model), "--batch-size", "1", *extra]


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SLOW_RUN, *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _journal_rows(out: Path) -> int:
    try:
        return max(0, len((out / JOURNAL_NAME).read_bytes().split(b"\n")) - 2)
    except FileNotFoundError:
        return 0


def _json_complete_whenever_present(out: Path) -> None:
    for path in out.glob("*_predictions.json"):
        json.loads(path.read_text())  # never half-written


@pytest.fixture(scope="module")
def resume_case(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("resume")
    inp = make_input(root / "in", _rows())
    reference = root / "reference"
    assert main(_argv(inp, reference, tiny_model_dir)) == EXIT_OK
    assert not (reference / JOURNAL_NAME).exists()
    return inp, _snapshot(reference)


def test_kills_at_random_moments_then_resume_match_a_clean_run(tmp_path, tiny_model_dir, resume_case):
    inp, reference = resume_case
    rng = random.Random(14)
    resumed_with_rows = 0
    for trial in range(3):
        out = tmp_path / f"out{trial}"
        extra: tuple[str, ...] = ()
        for attempt in range(6):
            proc = _start(_argv(inp, out, tiny_model_dir, *extra))
            if attempt < 2:  # kill the first runs at a random moment: after a random number of rows, plus a
                wait_rows = rng.randrange(0, len(_rows()) - 4)  # random fraction of a batch (mid-write)
                deadline = time.monotonic() + 60
                while _journal_rows(out) <= wait_rows and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.06))
                proc.kill()
                proc.communicate(timeout=60)
                _json_complete_whenever_present(out)
                extra = ("--resume",)
                continue
            _, stderr = proc.communicate(timeout=120)
            assert proc.returncode == EXIT_OK, stderr
            resumed_with_rows += "row(s) finished before" in stderr and " 0 row(s) finished" not in stderr
            break
        assert _snapshot(out) == reference, f"trial {trial}: outputs differ from the clean run"
    assert resumed_with_rows >= 1  # at least one resume really skipped finished rows


def test_sigterm_finishes_the_batch_writes_what_is_done_and_exits_4(tmp_path, tiny_model_dir, resume_case):
    inp, reference = resume_case
    out = tmp_path / "out"
    proc = _start(_argv(inp, out, tiny_model_dir))
    deadline = time.monotonic() + 60
    while _journal_rows(out) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    lines = [line for line in stderr.splitlines() if "stopped by SIGTERM" in line]
    assert len(lines) == 1 and "--resume" in lines[0], stderr
    done = sum(len(json.loads(p.read_text())) for p in out.glob("*_predictions.json"))
    assert 0 < done < len(_rows()) - 8  # written: the JSON rows finished, not the others
    assert (out / JOURNAL_NAME).exists()
    assert main(_argv(inp, out, tiny_model_dir, "--resume")) == EXIT_OK
    assert _snapshot(out) == reference


def test_resume_refuses_other_inputs_and_a_fresh_run_drops_stale_outputs(tmp_path, tiny_model_dir, caplog):
    inp = make_input(tmp_path / "in", GOOD_ROWS)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "classification_predictions.json").write_text('[{"stale": true}]')
    (out / JOURNAL_NAME).write_text('{"journal": 2, "inputs": "x", "model": "y", "engine": "auto", "device": "auto", "precision": "auto", "strict": false, "tta": "auto"}\n')
    caplog.set_level(logging.ERROR)
    assert main(_argv(inp, out, tiny_model_dir, "--resume")) == EXIT_FATAL
    assert any("other inputs, model than this run's" in r.getMessage() for r in caplog.records)
    assert main(_argv(inp, out, tiny_model_dir)) == EXIT_OK  # afresh: the stale file is replaced
    assert "stale" not in (out / "classification_predictions.json").read_text()
    assert not (out / JOURNAL_NAME).exists()
    with (inp / "csv_files/test.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow(GOOD_ROWS[2])
    (out / JOURNAL_NAME).write_text("")  # no header: unreadable
    assert main(_argv(inp, out, tiny_model_dir, "--resume")) == EXIT_FATAL
