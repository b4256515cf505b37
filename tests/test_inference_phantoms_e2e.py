"""End to end: phantom sample set in the challenge layout -> python -m inference -> the project's evaluator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evaluation.scoring import evaluate
from inference.cli import main
from inference.errors import EXIT_OK
from inference.tasks import TaskRegistry

REPO = Path(__file__).resolve().parent.parent


def test_every_row_of_every_task_is_scored(tmp_path, tiny_model_dir):
    labelled = tmp_path / "input"
    made = subprocess.run(
        [sys.executable, "-m", "phantoms", "--out", str(labelled), "--seed", "3", "--per-task", "1", "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert made.returncode == 0, made.stderr
    out = tmp_path / "output"
    assert main(["--input", str(labelled), "--output", str(out), "--weights", str(tiny_model_dir)]) == EXIT_OK
    report = evaluate(labelled, out)
    assert report.missing_predictions == 0
    assert sorted(t.task_id for t in report.tasks) == sorted(TaskRegistry.official().ids)
    assert all(t.rows == 1 and t.missing == 0 for t in report.tasks)
