#!/usr/bin/env python3
"""What the journal and JSON checkpoints cost: a batch run with them vs without, in one process.

    python benchmarks/resume_overhead.py [--input test/input] [--weights DIR] [--repeats 5] [--batch-size 8]

Runs ``python -m inference``'s ``main`` on the same input ``--repeats`` times each way,
alternating: "journal" as shipped; "none" with the journal's writes, flushes and the
checkpoints switched off (``Journal.add``/``flush`` no-ops, no checkpoint due). Prints
the median wall and CPU time (CPU time: less sensitive to other load on the machine) of
each way, their difference, and the journal's size. Also one ``--resume`` of a finished
folder's journal (every row restored, nothing predicted).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _timed(argv: list[str]) -> tuple[float, float]:
    from inference.cli import main

    wall, cpu = time.perf_counter(), time.process_time()
    code = main(argv)
    if code not in (0, 3):
        raise SystemExit(f"the run failed with exit code {code}")
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=ROOT / "test/input")
    parser.add_argument("--weights", type=Path, default=ROOT / "model_weights")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    from inference.bookkeeping import journal as journal_module

    from inference.layouts import batch as batch_layout

    spent = [0.0]

    def timed(function):
        def wrapper(*a, **k):
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spent[0] += time.perf_counter() - started
        return wrapper

    batch_layout.RowSink.batch_done = timed(batch_layout.RowSink.batch_done)  # flush + checkpoints
    journal_module.Journal.add = timed(journal_module.Journal.add)
    real = (journal_module.Journal.add, journal_module.Journal.flush, journal_module.Journal.checkpoint_due)
    times: dict[str, list[tuple[float, float]]] = {"journal": [], "none": []}
    inside: list[float] = []  # seconds spent in journal writes, flushes and checkpoints, per run
    with tempfile.TemporaryDirectory() as tmp:
        base = ["--input", str(args.input), "--weights", str(args.weights), "--batch-size", str(args.batch_size)]
        _timed([*base, "--output", f"{tmp}/warm"])  # sessions, caches, imports
        for repeat in range(args.repeats):
            for way in ("journal", "none"):
                if way == "none":
                    journal_module.Journal.add = lambda self, *a, **k: None
                    journal_module.Journal.flush = lambda self: None
                    journal_module.Journal.checkpoint_due = lambda self: False
                else:
                    journal_module.Journal.add, journal_module.Journal.flush, journal_module.Journal.checkpoint_due = real
                spent[0] = 0.0
                times[way].append(_timed([*base, "--output", f"{tmp}/{way}{repeat}"]))
                if way == "journal":
                    inside.append(spent[0])
        journal_module.Journal.add, journal_module.Journal.flush, journal_module.Journal.checkpoint_due = real
        # a resume with every row journaled: keep the journal of a finished run by stopping its removal
        close = journal_module.Journal.close
        journal_module.Journal.close = lambda self, finished: close(self, False)
        _timed([*base, "--output", f"{tmp}/kept"])
        journal_bytes = (Path(tmp) / "kept" / journal_module.JOURNAL_NAME).stat().st_size
        journal_module.Journal.close = close
        resume = _timed([*base, "--output", f"{tmp}/kept", "--resume"])
    print("| way | median wall s | median CPU s |")
    print("|---|---|---|")
    for way, values in times.items():
        print(f"| {way} | {statistics.median(v[0] for v in values):.3f} | {statistics.median(v[1] for v in values):.3f} |")
    wall = statistics.median(v[0] for v in times["journal"]) - statistics.median(v[0] for v in times["none"])
    cpu = statistics.median(v[1] for v in times["journal"]) - statistics.median(v[1] for v in times["none"])
    print(f"\ntime inside the journal's writes, flushes and JSON checkpoints: median "
          f"{statistics.median(inside) * 1000:.1f} ms per run")
    print(f"journal + checkpoints: {wall * 1000:+.0f} ms wall, {cpu * 1000:+.0f} ms CPU per run; "
          f"journal {journal_bytes} bytes; --resume of a finished run: {resume[0]:.3f} s wall, {resume[1]:.3f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
