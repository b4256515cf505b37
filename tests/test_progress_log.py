"""Without a terminal, a long run still says how far it is: one progress line every interval, none on a terminal."""

from __future__ import annotations

import logging


from inference.layouts.pipeline import ProgressLog


def test_progress_lines_are_spaced_and_name_counts(monkeypatch, caplog):
    clock = iter([0.0, 10.0, 31.0, 40.0, 62.0])
    monkeypatch.setattr("inference.layouts.pipeline.time.perf_counter", lambda: next(clock))
    progress = ProgressLog(total=100_000, enabled=True, every=30.0)
    with caplog.at_level(logging.INFO, logger="inference.layouts.pipeline"):
        for done in (1_000, 31_000, 40_000, 62_000):
            progress.update(done)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("progress: 31000 of 100000 images (31 %), 1000.0 images/s, about 69 s left")
    assert lines[1].startswith("progress: 62000 of 100000 images (62 %)")


def test_no_progress_lines_when_the_bar_is_drawn(monkeypatch, caplog):
    clock = iter([0.0, 100.0, 200.0])
    monkeypatch.setattr("inference.layouts.pipeline.time.perf_counter", lambda: next(clock))
    progress = ProgressLog(total=10, enabled=False, every=30.0)
    with caplog.at_level(logging.INFO, logger="inference.layouts.pipeline"):
        progress.update(5)
        progress.update(10)
    assert caplog.records == []
