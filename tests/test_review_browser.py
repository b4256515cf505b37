"""The review page in a real headless browser (Debian's chromium): loads with no console error,
every task section is in the rendered DOM, the order a reader sees (laid out by the browser:
missing rows first, the summary, tasks worst first, a bad Dice in another colour than a good
one, thumbnails linking to full-size images that load), and a screenshot of a small report is
not blank.

Chromium is installed by .ci/run; outside CI these tests are skipped when it is missing
(``apt-get install -y chromium``). In CI (CI=true) a missing chromium is a failure.
"""

from __future__ import annotations

import csv
import html
import json
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
from review_run import faulty_run

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
    assert main(["--input", str(INPUT), "--predictions", str(EXPECTED), "--out", str(out)]) == 0
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
    assert main(["--input", str(small_in), "--predictions", str(EXPECTED), "--out", str(page), "--max-per-task", "2"]) == 0
    shot = tmp_path / "shot.png"
    result = _browse(chromium, page, tmp_path, "--window-size=1000,1400", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert _console(result.stderr) == []
    image = cv2.imread(str(shot))
    assert image.shape == (1400, 1000, 3)
    # not blank: the thumbnails bring many distinct colours and a wide spread of brightness
    assert float(image.std()) > 20
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 500


# Appended to a copy of the page (beside it, so its links resolve): once the browser has laid the
# page out, it records what a reader sees from top to bottom, and whether each link's image loads.
HARNESS = """<script>
window.addEventListener('load', function () {
  function top(el) { return el.getBoundingClientRect().top + window.scrollY; }
  function byTop(els) { return Array.prototype.slice.call(els).sort(function (a, b) { return top(a) - top(b); }); }
  function cardOrder(section) {
    return Array.prototype.slice.call(section.querySelectorAll('figure.card')).sort(function (a, b) {
      var ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
      return (ra.top - rb.top) || (ra.left - rb.left);
    }).map(function (c) { return (c.getAttribute('data-flag') || 'ok') + ' ' + c.querySelector('b').textContent; });
  }
  var result = {
    blocks: byTop(document.querySelectorAll('#flagged, #summary, section.task')).slice(0, 4).map(function (e) {
      return e.id; }),
    sections: byTop(document.querySelectorAll('section.task')).map(function (e) { return e.getAttribute('data-task'); }),
    rows: {}, cards: {}, dice: {}, links: 0, loaded: 0, failed: []
  };
  document.querySelectorAll('table.kind').forEach(function (t) {
    result.rows[t.getAttribute('data-kind')] = byTop(t.querySelectorAll('tr[data-task]')).map(function (r) {
      return r.getAttribute('data-task'); });
  });
  ['fetal_head', 'thyroid_nodule_det', 'uterine_fibroid_det'].forEach(function (task) {
    result.cards[task] = cardOrder(document.getElementById('task-' + task));
  });
  ['lung', 'thyroid_nodule'].forEach(function (task) {
    var cell = document.querySelector('tr[data-task="' + task + '"] td[data-metric="dice"]');
    result.dice[task] = getComputedStyle(cell).backgroundColor;
  });
  var links = document.querySelectorAll('figure.card a[href]');
  result.links = links.length;
  var pending = links.length;
  function done() {
    var pre = document.createElement('pre'); pre.id = 'harness'; pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  }
  links.forEach(function (a) {
    var img = new Image();
    img.onload = function () { result.loaded += 1; if (--pending === 0) done(); };
    img.onerror = function () { result.failed.push(a.getAttribute('href')); if (--pending === 0) done(); };
    img.src = a.href;
  });
  if (!pending) done();
});
</script>"""


def _rgb(css: str) -> tuple[int, int, int]:
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])


def test_the_order_a_reader_sees_in_the_browser(chromium, tmp_path):
    run = faulty_run(tmp_path / "out")
    page = tmp_path / "review" / "review.html"
    assert main(["--input", str(INPUT), "--predictions", str(run), "--out", str(page)]) == 0
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", HARNESS + "</body>"))
    result = _browse(chromium, probe, tmp_path, "--dump-dom", "--window-size=1200,900")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console(result.stderr) == []
    seen = json.loads(html.unescape(re.search(r'<pre id="harness">(.*?)</pre>', result.stdout, re.S)[1]))
    # top to bottom: the missing rows, the summary, then the tasks, the flagged and worst first
    assert seen["blocks"] == ["flagged", "summary", "task-fetal_head", "task-lung"]
    assert seen["rows"]["segmentation"][:2] == ["fetal_head", "lung"]
    assert seen["rows"]["detection"] == ["uterine_fibroid_det", "thyroid_nodule_det", "spinal_cord_injury_loc"]
    assert seen["rows"]["Regression"] == ["fetal_femur", "IUGC", "FUGC"]
    assert seen["sections"] == [s for kind in ("segmentation", "classification", "detection", "Regression")
                                for s in seen["rows"][kind]]
    assert seen["cards"]["fetal_head"] == ["missing fetal_head_0000.jpg", "ok fetal_head_0001.png"]
    assert seen["cards"]["uterine_fibroid_det"] == ["missing uterine_fibroid_det_0000.png", "ok uterine_fibroid_det_0001.bmp"]
    assert seen["cards"]["thyroid_nodule_det"][0] == "ok thyroid_nodule_det_0001.png"  # IoU 0 first
    # a Dice near 0.4 (lung) is drawn warm, one near 0.98 green
    (lr, lg, _), (gr, gg, _) = _rgb(seen["dice"]["lung"]), _rgb(seen["dice"]["thyroid_nodule"])
    assert lr > lg and gg > gr, seen["dice"]
    # every thumbnail links to its full-size overlay, and each one loads
    assert seen["links"] == 54 and seen["loaded"] == 54 and seen["failed"] == []
