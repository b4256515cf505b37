"""The run's bookkeeping alone, hand-written (journal + record spool + path set) against one sqlite3 database
(``RunStore`` below, the issue-20 prototype): time and memory for N rows.

    python -m benchmarks.run_store [--rows 1000 100000] [--work DIR]
    python -m benchmarks.run_store --full-disk DIR     (DIR on a small file system, e.g. a 256 KiB tmpfs)

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
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from contract.kinds import PREDICTION_FILES
from contract.tasks import TaskKind
from inference.bookkeeping.journal import CHECKPOINT_SECONDS, CHECKPOINT_SHARE, Key
from inference.errors import FatalError
from inference.outputs.writers import record_text

REPO = Path(__file__).resolve().parent.parent
BATCH = 8
JSON_KIND = next(iter(PREDICTION_FILES))  # the records measured: those of the first kind with a JSON file
ROWS_FOR_FULL_DISK = 5000  # about 1.5 MB of journal and records: more than a 256 KiB file system holds


# The prototype: one sqlite3 database per run (``OUTPUT/.fmc-run[.TAG].sqlite``; WAL, ``synchronous=NORMAL``:
# a commit survives a killed process), committed once per batch, behind the three interfaces the batch layout
# uses (``Journal``, ``RecordSpool``, ``PathSet``). At commit bf0d1c6 it was wired into the runtime
# (``FMC_RUN_STORE=sqlite``) and measured whole (docs/failures.md); it stayed out (same file).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (csv TEXT, line INTEGER, image_path TEXT, task_id TEXT, entry TEXT NOT NULL,
                                 PRIMARY KEY (csv, line, image_path, task_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (kind TEXT, row INTEGER, text BLOB NOT NULL, PRIMARY KEY (kind, row)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS masks (path TEXT PRIMARY KEY) WITHOUT ROWID;
"""


class RunStore:
    def __init__(self, output_root: Path, header: dict[str, Any], resume: bool, tag: str | None = None):
        self.path = Path(output_root) / (f".fmc-run.{tag}.sqlite" if tag else ".fmc-run.sqlite")
        if not resume:
            for name in [self.path.name, self.path.name + "-wal", self.path.name + "-shm",
                         *(PREDICTION_FILES.values() if tag is None else ())]:
                (Path(output_root) / name).unlink(missing_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        stored = self.db.execute("SELECT value FROM meta WHERE key = 'header'").fetchone()
        if stored is not None and json.loads(stored[0]) != header:
            raise FatalError(f"--resume: the run store in {output_root} was written for another run; "
                             "run without --resume to start afresh")
        self.db.execute("BEGIN")
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('header', ?)", (json.dumps(header),))
        self.db.execute("DELETE FROM records")  # this run's records: restored rows add theirs again
        self.db.execute("DELETE FROM masks")
        self.journal, self.spool, self.masks = _Journal(self), _Spool(self), _Masks(self)

    def commit(self) -> None:
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    finished = False

    def close(self, finished: bool) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        self.db.close()
        if finished:
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)


class _Done:
    def __init__(self, store: RunStore):
        self.store = store
        self.count = store.db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]

    def __len__(self) -> int:
        return self.count

    def get(self, key: Key) -> dict | None:
        found = self.store.db.execute("SELECT entry FROM rows WHERE csv=? AND line=? AND image_path=? AND task_id=?",
                                      key).fetchone()
        return json.loads(found[0]) if found else None


class _Journal:
    def __init__(self, store: RunStore):
        self.store, self.done = store, _Done(store)
        self._last: float | None = None
        self._cost = 0.0

    def add(self, key: Key, kind: str, record: dict | None = None, failed: str | None = None, fallback: bool = False,
            image: tuple[int, int] | None = None) -> None:
        entry = {"kind": kind, "record": record, "failed": failed, "fallback": fallback, "image": image}
        self.store.db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?, ?)",
                              (*key, json.dumps(entry, allow_nan=False)))

    def flush(self) -> None:
        self.store.commit()

    def checkpoint_due(self) -> bool:
        interval = max(CHECKPOINT_SECONDS, CHECKPOINT_SHARE * self._cost)
        return self._last is None or time.monotonic() - self._last >= interval

    def checkpoint_done(self, seconds: float) -> None:
        self._last, self._cost = time.monotonic(), seconds

    def close(self, finished: bool) -> None:
        """Committed; the database stays open for the output audit (``RunStore.close`` at the run's end)."""
        self.store.finished = finished
        self.store.db.execute("COMMIT")


class _Spool:
    def __init__(self, store: RunStore):
        self.store = store

    def add(self, kind: TaskKind, index: int, payload: dict) -> None:
        self.store.db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                              (kind.value, index, record_text(payload)))

    def count(self, kind: TaskKind) -> int:
        return self.store.db.execute("SELECT COUNT(*) FROM records WHERE kind=?", (kind.value,)).fetchone()[0]

    def ordered(self, kind: TaskKind) -> tuple[int, int, Iterator[tuple[int, bytes]]]:
        count, size = self.store.db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(text)), 0) FROM records WHERE kind=?",
                                            (kind.value,)).fetchone()
        cursor = self.store.db.execute("SELECT row, text FROM records WHERE kind=? ORDER BY row", (kind.value,))
        return count, size, ((row, bytes(text)) for row, text in cursor)

    def close(self) -> None:
        """The database closes with the journal."""


class _Masks:
    def __init__(self, store: RunStore):
        self.store = store

    def add(self, path: Path | str) -> None:
        self.store.db.execute("INSERT OR IGNORE INTO masks VALUES (?)", (os.path.abspath(path),))

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, (str, os.PathLike)):
            return False
        return self.store.db.execute("SELECT 1 FROM masks WHERE path=?", (os.path.abspath(path),)).fetchone() is not None

    def __len__(self) -> int:
        return self.store.db.execute("SELECT COUNT(*) FROM masks").fetchone()[0]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _payload(i: int) -> dict:
    probs = [((i * 7 + k) % 11) / 66 for k in range(6)]
    return {"image_path": f"../images/img_{i % 64:03d}.png", "task_id": "organ_cls", "predicted_class": i % 6,
            "predicted_probs": probs}


def one(variant: str, rows: int, folder: Path) -> dict:
    """The bookkeeping of ``rows`` rows with ``variant`` ("hand-written" or "sqlite"); figures."""
    from inference.bookkeeping.journal import Journal
    from inference.bookkeeping.output_audit import PathSet
    from inference.bookkeeping.record_spool import RecordSpool

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
        spool.add(JSON_KIND, i, payload)
        journal.add(key, "classification", record=payload, image=(1000 + i, 10**18 + i))
        if i % 3 == 0:
            masks.add(folder / "masks" / f"{i:07d}.png")
        if i % BATCH == BATCH - 1:
            journal.flush()
    journal.flush()
    times["run_s"] = time.perf_counter() - started
    started = time.perf_counter()
    count, size, records = spool.ordered(JSON_KIND)
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


def full_disk(folder: Path) -> None:
    """Both variants fill ``folder`` (a small file system, e.g. a 256 KiB tmpfs) until it is full; how many of the
    rows given are still there to be written into the JSON file."""
    from inference.bookkeeping.journal import Journal
    from inference.bookkeeping.record_spool import RecordSpool

    for variant in ("hand-written", "sqlite"):
        target = folder / variant
        target.mkdir()
        if variant == "sqlite":
            store = RunStore(target, {"journal": 2}, False)
            journal, spool = store.journal, store.spool
        else:
            journal, spool = Journal.start(target, {"journal": 2}, False), RecordSpool(target)
        given, error = 0, "none"
        try:
            while given < ROWS_FOR_FULL_DISK:
                key = ("rows.csv", given + 2, "x.png", "organ_cls")
                spool.add(JSON_KIND, given, _payload(given))
                journal.add(key, "classification", record=_payload(given))
                given += 1
                if given % BATCH == 0:
                    journal.flush()
        except Exception as exc:  # what the variant raises on a full disk, whatever its type
            error = f"{type(exc).__name__}: {exc}"
        count = spool.ordered(JSON_KIND)[0]
        print(f"{variant}: {given} rows given, {count} records kept for the JSON file; error raised: {error}")
        spool.close()
        shutil.rmtree(target)  # room again for the next variant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--work", type=Path, default=REPO / "data" / "bench" / "run_store")
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "ROWS"), help=argparse.SUPPRESS)
    parser.add_argument("--full-disk", type=Path, metavar="DIR",
                        help="instead: fill DIR (a small file system) with each variant; what survives")
    args = parser.parse_args(argv)
    if args.full_disk:
        full_disk(args.full_disk)
        return 0
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
