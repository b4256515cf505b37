"""python -m review: the HTML report of a run (test/input with its labels and expected outputs)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import cv2
import pytest

from review.__main__ import main
from review.page import histogram_svg

ROOT = Path(__file__).resolve().parents[1]
INPUT, EXPECTED = ROOT / "test" / "input", ROOT / "test" / "expected_output"
TASKS = sorted({row["task_id"] for f in (INPUT / "csv_files").glob("*.csv") for row in csv.DictReader(f.open())})


@pytest.fixture
def run(tmp_path):
    """A copy of the expected outputs with one bad box and one record removed."""
    out = tmp_path / "out"
    shutil.copytree(EXPECTED, out)
    det = json.loads((out / "detection_predictions.json").read_text())
    for rec in det:
        if rec["image_path"].endswith("thyroid_nodule_det_0001.png"):
            rec["bbox_pixels"] = [0.0, 0.0, 10.0, 10.0]  # far from the truth: IoU 0
    det = [r for r in det if not r["image_path"].endswith("uterine_fibroid_det_0000.png")]
    (out / "detection_predictions.json").write_text(json.dumps(det))
    return out


def _sections(page: str) -> dict[str, str]:
    parts = re.split(r'(?=<section class="task")', page)
    return {re.search(r'data-task="([^"]+)"', p)[1]: p for p in parts if p.startswith("<section")}


def test_report_shows_every_task_worst_first_with_failures(run, tmp_path, capsys):
    report = tmp_path / "r.html"
    assert main(["--input", str(INPUT), "--output", str(run), "--report", str(report)]) == 0
    assert "27 tasks, 54 images shown, 1 failures" in capsys.readouterr().out
    page = report.read_text()
    sections = _sections(page)
    assert sorted(sections) == TASKS
    thyroid = sections["thyroid_nodule_det"]
    assert thyroid.index("thyroid_nodule_det_0001") < thyroid.index("thyroid_nodule_det_0000")  # IoU 0 first
    assert "IoU 0.000" in thyroid
    assert "no record in detection_predictions.json" in page and "missing output" in page
    assert "Dice" in sections["fetal_head"] and "HD" in sections["fetal_head"]
    assert "official metrics" in page  # the score table says which metrics it shows
    # self-contained: every image is an inline data URI, nothing refers to the network or to files
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 54 and all(s.startswith("data:image/jpeg;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:|file:|/)|url\(', page)  # only in-page links
    assert report.stat().st_size < 2_000_000


def test_cap_counts_what_is_left_out_and_overlays_are_full_size(run, tmp_path):
    report, overlays = tmp_path / "r.html", tmp_path / "ov"
    assert main(["--input", str(INPUT), "--output", str(run), "--report", str(report),
                 "--max-per-task", "1", "--overlays", str(overlays)]) == 0
    sections = _sections(report.read_text())
    assert all("1 left out" in s and s.count("<figure") == 1 for s in sections.values())
    pngs = sorted(overlays.glob("*.png"))
    assert len(pngs) == 27
    seg = next(p for p in pngs if p.name.startswith("fetal_head__"))
    stem = seg.name.split("__")[1]
    image = cv2.imread(str(next((INPUT / "Segmentation/Two/fetal_head/images").glob(stem + ".*"))))
    overlay = cv2.imread(str(seg))
    assert overlay.shape[0] == image.shape[0] and overlay.shape[1] > 2 * image.shape[1]  # prediction | truth


def test_unlabelled_input_and_runtime_log(tmp_path, capsys):
    inp = tmp_path / "in"
    shutil.copytree(INPUT, inp)
    for f in (inp / "csv_files").glob("*.csv"):
        rows = list(csv.DictReader(f.open()))
        keep = ["image_path", "task_id", "task_name", "num_classes"] + (["mask_path"] if "mask_path" in rows[0] else [])
        with f.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, keep, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    log = tmp_path / "run.log"
    log.write_text("inference: ERROR: row failed: lung.csv line 3 (image '../Segmentation/Two/lung/images/lung_0001.bmp', "
                   "task 'lung'): cannot read image\n")
    report = tmp_path / "r.html"
    assert main(["--input", str(inp), "--output", str(EXPECTED), "--report", str(report), "--log", str(log)]) == 0
    page = report.read_text()
    assert "no labels" in page and "worst first" not in page and "Scores (" not in page
    assert "cannot read image" in page and "runtime log" in page and "lung.csv line 3" in page


def test_missing_output_folder_is_exit_2(tmp_path, capsys):
    assert main(["--input", str(INPUT), "--output", str(tmp_path / "nope"), "--report", str(tmp_path / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_histogram_counts_by_bin():
    svg = histogram_svg([0.05, 0.95, 0.97, 1.0], unit_range=True)
    heights = [float(h) for h in re.findall(r'height="([\d.]+)" fill=', svg)]
    assert len(heights) == 10 and heights[0] > 0 and heights[9] == max(heights) and heights[1:9] == [0.0] * 8
    assert "n=4, max bin 3" in svg
