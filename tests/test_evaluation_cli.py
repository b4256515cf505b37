"""python -m evaluation as a user meets it: missing predictions counted first and a non-zero exit,
--allow-missing, rows named by CSV file and line, the old --labels name, no "1 rows"."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
INPUT, EXPECTED = ROOT / "test" / "input", ROOT / "test" / "expected_output"
FETAL_HEAD_0 = "Segmentation/Two/fetal_head/masks/fetal_head_0000.png"


@pytest.fixture
def run(tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(EXPECTED, out)
    return out


def _lines(capsys) -> tuple[list[str], list[str]]:
    captured = capsys.readouterr()
    return captured.out.splitlines(), [line for line in captured.err.splitlines() if line.strip()]


def test_complete_predictions_exit_0(run, capsys):
    assert main(["--input", str(INPUT), "--predictions", str(run)]) == 0
    out, err = _lines(capsys)
    assert out[0] == "54 rows scored, every one with a prediction"
    assert err == []


def test_one_missing_mask_is_counted_first_and_exits_1(run, tmp_path, capsys):
    full = tmp_path / "full.json"
    assert main(["--input", str(INPUT), "--predictions", str(run), "--json", str(full)]) == 0
    capsys.readouterr()
    (run / FETAL_HEAD_0).unlink()
    report = tmp_path / "r.json"
    assert main(["--input", str(INPUT), "--predictions", str(run), "--json", str(report)]) == 1
    out, err = _lines(capsys)
    assert out[0] == "MISSING: 1 of 54 rows have no usable prediction (missing or malformed): fetal_head 1"
    assert out[1].startswith("  the official rules skip them, so the scores below cover 53 rows only; "
                             "first: fetal_head.csv line 2 (image '../Segmentation/Two/fetal_head/images/fetal_head_0000.jpg'")
    assert "53 rows scored, 1 missing/malformed prediction (skipped), 0 label rows left out" in "\n".join(out)
    assert err == ["python -m evaluation: exit status 1: 1 row without a usable prediction (see the top of the "
                   "report; --allow-missing accepts them)"]
    # the score follows the official evaluator (the row is skipped), and the JSON is still written
    data = json.loads(report.read_text())
    assert data["missing_predictions"] == 1 and data["issues"][0]["line"] == 2 and data["issues"][0]["row"] == 1
    fetal = next(t for t in data["tasks"] if t["task_id"] == "fetal_head")
    before = next(t for t in json.loads(full.read_text())["tasks"] if t["task_id"] == "fetal_head")
    assert fetal["rows"] == 1 and before["rows"] == 2
    # strict scores the missing row as the worst case: the Dice can only fall
    assert main(["--input", str(INPUT), "--predictions", str(run), "--metrics", "strict", "--json", str(report)]) == 1
    _, _ = _lines(capsys)
    strict = next(t for t in json.loads(report.read_text())["tasks"] if t["task_id"] == "fetal_head")
    assert strict["rows"] == 2 and strict["metrics"]["dice"] < 0.5 < before["metrics"]["dice"]


def test_allow_missing_keeps_exit_0_and_still_reports(run, capsys):
    (run / FETAL_HEAD_0).unlink()
    assert main(["--input", str(INPUT), "--predictions", str(run), "--allow-missing"]) == 0
    out, err = _lines(capsys)
    assert out[0].startswith("MISSING: 1 of 54 rows") and err == []


def test_the_wrong_folder_is_not_a_success(tmp_path, capsys):
    """Predictions of other images (the wrong folder): every row missing, the records unmatched, exit 1."""
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    records = json.loads((EXPECTED / "detection_predictions.json").read_text())
    (wrong / "detection_predictions.json").write_text(json.dumps([dict(r, image_path="elsewhere/" + r["image_path"])
                                                                   for r in records]))
    assert main(["--input", str(INPUT), "--predictions", str(wrong)]) == 1
    out, _ = _lines(capsys)
    assert out[0].startswith("MISSING: 54 of 54 rows have no usable prediction (missing or malformed): breast_lesion 2, ")
    assert out[0].endswith(" and 19 more tasks")  # 27 tasks, 8 named
    assert out[2] == "UNMATCHED: 6 prediction records match no CSV row (another input folder, or rewritten image_path values?)"


def test_issues_name_the_csv_line_even_after_a_multiline_cell(tmp_path, capsys):
    """A quoted cell spanning two lines: the data row is 2, its line in the file is 4."""
    labels = tmp_path / "in"
    shutil.copytree(INPUT, labels)
    for f in (labels / "csv_files").glob("*.csv"):
        if f.name != "fetal_head.csv":
            f.unlink()
    path = labels / "csv_files" / "fetal_head.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    extra = header + ["comment"]
    body = [lines[1] + ',"first\nsecond"', lines[2] + ",plain"]
    path.write_text(",".join(extra) + "\n" + "\n".join(body) + "\n")
    pred = tmp_path / "out"
    shutil.copytree(EXPECTED, pred)
    (pred / "Segmentation/Two/fetal_head/masks/fetal_head_0001.png").unlink()
    assert main(["--input", str(labels), "--predictions", str(pred)]) == 1
    out, _ = _lines(capsys)
    assert "first: fetal_head.csv line 4 (image '../Segmentation/Two/fetal_head/images/fetal_head_0001.png'" in out[1]


def test_old_labels_name_still_works_with_one_warning(run, capsys):
    assert main(["--labels", str(INPUT), "--predictions", str(run)]) == 0
    out, err = _lines(capsys)
    assert out[0] == "54 rows scored, every one with a prediction"
    assert err == ["python -m evaluation: warning: --labels is deprecated, use --input (same meaning)"]


@pytest.mark.parametrize("args, message", [
    ([], "the following arguments are required: --input, --predictions"),
    (["--input", str(INPUT), "--labels", str(INPUT), "--predictions", "x"], "--labels is the old name of --input"),
])
def test_usage_errors_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_predictions_not_a_folder_exits_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["--input", str(INPUT), "--predictions", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err.strip() == f"python -m evaluation: error: --predictions {tmp_path / 'file'} is not a folder"


def test_help_documents_the_exit_status():
    result = subprocess.run([sys.executable, "-m", "evaluation", "--help"], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    assert "exit status: 0 every row scored with a prediction (or --allow-missing given); 1 scored, but some rows" in text
    assert "--input DIR" in text and "--predictions DIR" in text and "deprecated name of --input" in text
