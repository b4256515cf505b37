"""The run's bookkeeping alone, hand-written (journal + record spool + path set) against one sqlite3 database
(``inference.bookkeeping.store``, the issue-20 prototype): time and memory for N rows.

    python -m benchmarks.run_store [--rows 1000 100000] [--work DIR]

Each variant runs in a fresh process, doing what a batch run's bookkeeping does for N classification
rows, a third of them also writing a mask: per batch of 8 rows, each row journaled (its record), its
record stored for the JSON file, its mask remembered, then the batch committed (``Journal.flush``);
then the JSON file's records read back in row order (as the final write streams them); then a resume:
the journal opened again and every row looked up. Figures: seconds per phase, and the peak RSS above
the process's RSS after its imports.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BATCH = 8


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _payload(i: int) -> dict:
    probs = [((i * 7 + k) % 11) / 66 for k in range(6)]
    return {"image_path": f"../images/img_{i % 64:03d}.png", "task_id": "organ_cls", "predicted_class": i % 6,
            "predicted_probs": probs}


def one(variant: str, rows: int, folder: Path) -> dict:
    """The bookkeeping of ``rows`` rows with ``variant`` ("hand-written" or "sqlite"); figures."""
    from contract.tasks import TaskKind
    from inference.bookkeeping.journal import Journal
    from inference.bookkeeping.output_audit import PathSet
    from inference.bookkeeping.record_spool import RecordSpool
    from inference.bookkeeping.store import RunStore

    folder.mkdir(parents=True, exist_ok=True)
    header = {"journal": 2, "inputs": "x"}
    base = _rss_mb()

    def start(resume: bool):
        if variant == "sqlite":
            store = RunStore(folder, header, resume)
            return store, store.journal, store.spool, store.masks
        return None, Journal.start(folder, header, resume), RecordSpool(folder), PathSet()

    times: dict[str, float] = {}
    started = time.perf_counter()
    store, journal, spool, masks = start(False)
    for i in range(rows):
        key = ("rows.csv", i + 2, f"../images/img_{i % 64:03d}.png", "organ_cls")
        payload = _payload(i)
        spool.add(TaskKind.CLASSIFICATION, i, payload)
        journal.add(key, "classification", record=payload, image=(1000 + i, 10**18 + i))
        if i % 3 == 0:
            masks.add(folder / "masks" / f"{i:07d}.png")
        if i % BATCH == BATCH - 1:
            journal.flush()
    journal.flush()
    times["run_s"] = time.perf_counter() - started
    started = time.perf_counter()
    count, size, records = spool.ordered(TaskKind.CLASSIFICATION)
    written = sum(len(text) for _, text in records)
    assert count == rows and written == size, (count, written, size)
    hits = sum(folder / "masks" / f"{i:07d}.png" in masks for i in range(0, rows, 3))
    assert hits == len(range(0, rows, 3))
    times["read_back_s"] = time.perf_counter() - started
    journal.close(finished=False)
    spool.close()
    if store is not None:
        store.close(False)
    started = time.perf_counter()
    store, journal, spool, masks = start(True)
    found = sum(journal.done.get(("rows.csv", i + 2, f"../images/img_{i % 64:03d}.png", "organ_cls")) is not None
                for i in range(rows))
    assert found == rows
    times["resume_s"] = time.perf_counter() - started
    journal.close(finished=True)
    if store is not None:
        store.close(True)
    return {"variant": variant, "rows": rows, **{k: round(v, 3) for k, v in times.items()},
            "peak_above_imports_mb": round(_rss_mb() - base, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--work", type=Path, default=REPO / "data" / "bench" / "run_store")
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        variant, rows = args.one[0], int(args.one[1])
        print(json.dumps(one(variant, rows, args.work / f"{variant}-{rows}")))
        return 0
    print("| variant | rows | run s | read back s | resume s | peak above imports MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for rows in args.rows:
        for variant in ("hand-written", "sqlite"):
            done = subprocess.run([sys.executable, "-m", "benchmarks.run_store", "--work", str(args.work),
                                   "--one", variant, str(rows)], cwd=REPO, capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {variant} | {rows:,} | {r['run_s']} | {r['read_back_s']} | {r['resume_s']} | "
                  f"{r['peak_above_imports_mb']} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
