"""The review page in a real headless browser (Debian's chromium): loads with no console error,
every task section is in the rendered DOM, and a screenshot of a small report is not blank.

Chromium is installed by .ci/run; outside CI these tests are skipped when it is missing
(``apt-get install -y chromium``). In CI (CI=true) a missing chromium is a failure.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from review.__main__ import main
from review.collect import collect
from review.page import build_page

ROOT = Path(__file__).resolve().parents[1]
INPUT, EXPECTED = ROOT / "test" / "input", ROOT / "test" / "expected_output"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI runs this test")
    return CHROMIUM


def _browse(chromium: str, page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("review") / "report.html"
    assert main(["--input", str(INPUT), "--output", str(EXPECTED), "--report", str(out)]) == 0
    return out


def test_page_loads_without_console_error_and_has_every_task(chromium, report, tmp_path):
    result = _browse(chromium, report, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    body = re.search(r"<body[^>]*>", dom)[0]
    assert 'data-ready="1"' in body and 'data-js-errors="0"' in body and 'data-broken-images="0"' in body, body
    assert _console(result.stderr) == []
    tasks = {row["task_id"] for f in (INPUT / "csv_files").glob("*.csv") for row in csv.DictReader(f.open())}
    rendered = set(re.findall(r'<section class="task" id="task-([^"]+)"', dom))
    assert rendered == tasks and len(tasks) == 27


def test_error_detection_works_on_a_broken_page(chromium, tmp_path):
    """Negative control: a console.error and an uncaught exception show in chromium's log."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('deliberate'); null.x;</script></body></html>")
    result = _browse(chromium, page, tmp_path, "--dump-dom")
    assert any("deliberate" in line for line in _console(result.stderr))
    assert any("Uncaught TypeError" in line for line in _console(result.stderr))
    # the page's own collector counts images that fail to decode
    review = collect(INPUT, EXPECTED)
    review.tasks = review.tasks[:1]
    bad = tmp_path / "bad-images.html"
    bad.write_text(build_page(review, lambda item: "data:image/jpeg;base64,AAAA", cap=2))
    body = re.search(r"<body[^>]*>", _browse(chromium, bad, tmp_path, "--dump-dom").stdout)[0]
    assert 'data-broken-images="2"' in body, body


def test_screenshot_of_a_small_report(chromium, tmp_path):
    small_in = tmp_path / "in"
    shutil.copytree(INPUT, small_in)
    for f in (small_in / "csv_files").glob("*.csv"):
        if f.stem not in ("fetal_head", "thyroid_nodule_det", "FUGC", "breast_2cls"):
            f.unlink()
    page = tmp_path / "small.html"
    assert main(["--input", str(small_in), "--output", str(EXPECTED), "--report", str(page), "--max-per-task", "2"]) == 0
    shot = tmp_path / "shot.png"
    result = _browse(chromium, page, tmp_path, "--window-size=1000,1400", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert _console(result.stderr) == []
    image = cv2.imread(str(shot))
    assert image.shape == (1400, 1000, 3)
    # not blank: the thumbnails bring many distinct colours and a wide spread of brightness
    assert float(image.std()) > 20
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 500
