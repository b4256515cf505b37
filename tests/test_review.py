"""python -m review: the HTML report of a run (test/input with its labels and a faulty copy of the expected outputs).

The order a user sees in a real browser is asserted in test_review_browser.py; here: the page's
content and order in the HTML, the overlay folder, the options and the exit codes.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from review.__main__ import main
from review.collect import collect
from review.draw import band_height, draw_mask, load_image, render
from review.page import HISTOGRAM_MIN, _section, histogram_svg
from review.summary import colour
from review_run import INPUT, EXPECTED, faulty_run

TASKS = sorted({row["task_id"] for f in (INPUT / "csv_files").glob("*.csv") for row in csv.DictReader(f.open())})


@pytest.fixture
def run(tmp_path) -> Path:
    return faulty_run(tmp_path / "out")


def _sections(page: str) -> dict[str, str]:
    parts = re.split(r'(?=<section class="task")', page)
    return {re.search(r'data-task="([^"]+)"', p)[1]: p for p in parts if p.startswith("<section")}


def _summary_order(page: str, kind: str) -> list[str]:
    table = re.search(rf'<table class="kind" data-kind="{kind}">(.*?)</table>', page)[1]
    return re.findall(r'<tr data-task="([^"]+)"', table)


def _bytes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_flagged_rows_first_then_the_kind_summary_worst_first(run, tmp_path, capsys):
    page_file = tmp_path / "r.html"
    assert main(["--input", str(INPUT), "--predictions", str(run), "--out", str(page_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"review written to {page_file} (")
    assert out.rstrip().endswith(f"27 tasks, 54 images shown, 2 rows missing or skipped); "
                                 f"full-size overlays in {tmp_path / 'r_files'}/ (54 images)")
    page = page_file.read_text()
    # top of the page: the flagged rows, then the summary, then the task sections
    assert page.index('id="flagged"') < page.index('id="summary"') < page.index('<section class="task"')
    flagged = page[page.index('id="flagged"'):page.index('id="summary"')]
    assert "Missing and skipped rows (2)" in flagged
    assert "fetal_head.csv line 2" in flagged and "uterine_fibroid_det.csv line 2" in flagged
    # per kind: the task with a missing row first, then the worst headline score first
    seg = _summary_order(page, "segmentation")
    assert seg[:2] == ["fetal_head", "lung"] and len(seg) == 12
    assert _summary_order(page, "detection") == ["uterine_fibroid_det", "thyroid_nodule_det", "spinal_cord_injury_loc"]
    assert _summary_order(page, "Regression") == ["fetal_femur", "IUGC", "FUGC"]  # MRE: lower is better
    # the sections follow the summary's order
    assert list(_sections(page))[:2] == ["fetal_head", "lung"] and sorted(_sections(page)) == TASKS
    sections = _sections(page)
    # within a task: the missing row first, then the worst image
    assert sections["uterine_fibroid_det"].index('data-flag="missing"') < sections["uterine_fibroid_det"].index("<br>IoU ")
    thyroid = sections["thyroid_nodule_det"]
    assert thyroid.index("thyroid_nodule_det_0001") < thyroid.index("thyroid_nodule_det_0000") and "IoU 0.000" in thyroid
    assert "1 row missing or skipped, shown first" in sections["fetal_head"]


def test_scores_are_coloured_and_the_auc_0_reason_is_beside_it(run, tmp_path):
    page_file = tmp_path / "r.html"
    assert main(["--input", str(INPUT), "--predictions", str(run), "--out", str(page_file)]) == 0
    page = page_file.read_text()
    lung = re.search(r'<tr data-task="lung">.*?</tr>', page)[0]
    head = re.search(r'<tr data-task="fetal_head">.*?</tr>', page)[0]
    lung_dice = float(re.search(r'data-metric="dice" style="background:hsl\((\d+),', lung)[1])
    head_dice = float(re.search(r'data-metric="dice" style="background:hsl\((\d+),', head)[1])
    assert lung_dice < 60 < 110 < head_dice  # a Dice near 0.4 is orange, one of 0.98 green
    assert 'data-metric="hd" style' not in lung  # pixels: no fixed scale, no colour
    breast = re.search(r'<tr data-task="breast_3cls">.*?</tr>', page)[0]
    assert re.search(r'0\.0000 <span class="why">undefined: class\(es\) \[2\] absent from the labels</span>', breast)
    assert "includes 6 undefined (0)" in re.search(r'<table class="kind" data-kind="classification">.*?</table>', page)[0]
    assert colour(0.49, "dice") != colour(0.98, "dice") and colour(12.0, "mre") is None


def test_no_plural_slips_and_no_histogram_for_tiny_counts(run, tmp_path):
    page_file = tmp_path / "r.html"
    assert main(["--input", str(INPUT), "--predictions", str(run), "--out", str(page_file)]) == 0
    page = page_file.read_text()
    assert not re.search(r"\b1 (rows|classes|tasks|points)\b", page)
    assert "(detection, 1 class)" in page and "(segmentation, 2 classes)" in page
    assert "<svg" not in page  # two images per task: no histogram
    review = collect(INPUT, EXPECTED)
    view = next(v for v in review.tasks if v.task_id == "fetal_head")
    view.items = (view.items * HISTOGRAM_MIN)[:HISTOGRAM_MIN]
    assert "<svg" in _section(view, lambda item: "data:,", cap=2, link=None)
    view.items = view.items[:HISTOGRAM_MIN - 1]
    assert "<svg" not in _section(view, lambda item: "data:,", cap=2, link=None)


def test_thumbnails_link_to_full_size_overlays_written_beside_the_page(run, tmp_path):
    page_file = tmp_path / "pages" / "r.html"
    assert main(["--input", str(INPUT), "--predictions", str(run), "--out", str(page_file)]) == 0
    page = page_file.read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 54 and all(s.startswith("data:image/jpeg;base64,") for s in srcs)  # thumbnails inline
    links = re.findall(r'<a href="([^"#][^"]*)" title="full size"><img', page)
    assert len(links) == 54 and all(link.startswith("r_files/") for link in links)
    assert all((page_file.parent / link).is_file() for link in links)
    assert not re.search(r'(src|href)="(https?:|file:|/)|url\(', page)  # no network, no absolute paths
    assert sorted(p.name for p in page_file.parent.iterdir()) == ["r.html", "r_files"]  # nothing staged left
    seg = next((page_file.parent / "r_files").glob("*-fetal_head-fetal_head_0001.png"))
    image = cv2.imread(str(next((INPUT / "Segmentation/Two/fetal_head/images").glob("fetal_head_0001.*"))))
    overlay = cv2.imread(str(seg))
    assert overlay.shape[0] == image.shape[0] + band_height(image.shape[1])  # full size, title band above
    assert overlay.shape[1] > 2 * image.shape[1]  # prediction | truth
    assert page_file.stat().st_size < 2_000_000
    # a second review replaces the folder whole: a stale file goes, no staging folder stays
    (page_file.parent / "r_files" / "stale.png").write_bytes(b"old")
    assert main(["--input", str(INPUT), "--predictions", str(run), "--out", str(page_file), "--max-per-task", "1"]) == 0
    assert len(list((page_file.parent / "r_files").glob("*.png"))) == 27
    assert sorted(p.name for p in page_file.parent.iterdir()) == ["r.html", "r_files"]


def test_a_folder_in_the_way_is_refused_and_untouched(run, tmp_path, capsys):
    page_file = tmp_path / "r.html"
    (tmp_path / "r_files").mkdir()
    (tmp_path / "r_files" / "holiday.png").write_bytes(b"precious")
    before = _bytes(tmp_path / "r_files")
    assert main(["--input", str(INPUT), "--predictions", str(run), "--out", str(page_file)]) == 2
    assert "not written by review" in capsys.readouterr().err
    assert _bytes(tmp_path / "r_files") == before and not page_file.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r_files"]


def test_labels_are_drawn_above_the_image_not_over_it():
    review = collect(INPUT, EXPECTED)
    by_task = {v.task_id: v.items[0] for v in review.tasks}
    seg = by_task["fetal_head"]
    image, _ = load_image(seg.row.image_file)
    band = band_height(image.shape[1])
    out = render(seg)
    pred = cv2.imread(str(seg.mask_file), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(out[band:, :image.shape[1]], draw_mask(image, pred, seg.num_classes))  # no text on the image
    assert out[:band, :image.shape[1]].std() > 0  # the title is in the band
    for task in ("breast_2cls", "thyroid_nodule_det"):
        item = by_task[task]
        image, _ = load_image(item.row.image_file)
        out = render(item)
        band = band_height(image.shape[1])
        assert out.shape[0] == image.shape[0] + band
        if task == "breast_2cls":  # classification: nothing drawn on the image at all
            assert np.array_equal(out[band:], image)
        else:  # detection: the top-left corner (burnt-in text) is untouched; only the boxes are drawn
            assert np.array_equal(out[band:band + 40, :60], image[:40, :60])


def test_default_page_is_beside_the_predictions_never_in_the_current_folder(run, tmp_path, monkeypatch, capsys):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _bytes(run)
    assert main(["--input", str(INPUT), "--predictions", str(run)]) == 0
    assert list(cwd.iterdir()) == []
    assert _bytes(run) == before  # the prediction folder (what gets zipped) is only read
    assert (tmp_path / "out-review" / "review.html").is_file() and (tmp_path / "out-review" / "review_files").is_dir()
    assert f"review written to {tmp_path / 'out-review' / 'review.html'} (" in capsys.readouterr().out


def test_old_option_names_still_work_with_one_warning_each(run, tmp_path, capsys):
    page_file, overlays = tmp_path / "old.html", tmp_path / "ov"
    assert main(["--input", str(INPUT), "--output", str(run), "--report", str(page_file), "--overlays", str(overlays)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["python -m review: warning: --output is deprecated, use --predictions (same meaning)",
                   "python -m review: warning: --report is deprecated, use --out (same meaning)",
                   "python -m review: warning: --overlays is deprecated: full-size overlays are always written, by "
                   "default to FILE_files/ beside the page"]
    assert page_file.is_file() and len(list(overlays.glob("*.png"))) == 54
    assert 'href="ov/' in page_file.read_text()


def test_unlabelled_input_and_runtime_log(tmp_path):
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
    assert main(["--input", str(inp), "--predictions", str(EXPECTED), "--out", str(report), "--log", str(log)]) == 0
    page = report.read_text()
    assert "no labels" in page and "worst first" not in page and "(no labels: no scores)" in page
    assert "cannot read image" in page and "runtime log" in page and "lung.csv line 3" in page


@pytest.mark.parametrize("args, message", [
    (["--predictions", "nope"], "the following arguments are required: --input"),
    (["--input", str(INPUT), "--output", "a", "--predictions", "b"], "--output is the old name of --predictions"),
])
def test_usage_errors_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_missing_prediction_folder_is_exit_2(tmp_path, capsys):
    assert main(["--input", str(INPUT), "--predictions", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err.strip() == f"python -m review: error: --predictions {tmp_path / 'nope'} does not exist"
    assert list(tmp_path.iterdir()) == []


def test_help_states_the_default_page_and_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: PRED-review/review.html, a folder beside the prediction folder, never inside it" in text
    assert "Exit status: 0 written; 1 the page or its overlay folder could not be written; 2 bad arguments" in text


def test_histogram_counts_by_bin():
    svg = histogram_svg([0.05, 0.95, 0.97, 1.0], unit_range=True)
    heights = [float(h) for h in re.findall(r'height="([\d.]+)" fill=', svg)]
    assert len(heights) == 10 and heights[0] > 0 and heights[9] == max(heights) and heights[1:9] == [0.0] * 8
    assert "n=4, max bin 3" in svg


def test_a_row_with_an_unusable_label_is_flagged_skipped_and_listed_first(tmp_path):
    inp = tmp_path / "in"
    shutil.copytree(INPUT, inp)
    (inp / "Segmentation/Two/lung/masks/lung_0001.png").unlink()  # its ground truth: the row cannot be scored
    page_file = tmp_path / "r.html"
    assert main(["--input", str(inp), "--predictions", str(EXPECTED), "--out", str(page_file)]) == 0
    page = page_file.read_text()
    flagged = page[page.index('id="flagged"'):page.index('id="summary"')]
    assert "Missing and skipped rows (1)" in flagged and "lung.csv line 3" in flagged and "skipped (not scored)" in flagged
    assert _summary_order(page, "segmentation")[0] == "lung"
    lung = _sections(page)["lung"]
    assert lung.index('data-flag="skipped"') < lung.index("lung_0000")
