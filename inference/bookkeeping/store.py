"""PROTOTYPE (issue 20): the run's bookkeeping in one sqlite3 database instead of the hand-written journal,
record spool, hash index and path set. Selected with ``FMC_RUN_STORE=sqlite`` for measurement only.

``OUTPUT/.fmc-run[.TAG].sqlite`` (WAL, ``synchronous=NORMAL``: a commit survives a killed process),
committed once per batch (``Journal.flush``'s place). Three facades give the interfaces the batch
layout uses today: ``journal`` (``Journal``: finished rows, resumed from the database), ``spool``
(``RecordSpool``: records read back in row order through the primary key) and ``masks``
(``PathSet``: the masks in place). Memory is sqlite's page cache (2 MB by default), whatever the
number of rows.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

from contract.kinds import PREDICTION_FILES
from contract.tasks import TaskKind
from inference.bookkeeping.journal import CHECKPOINT_SECONDS, CHECKPOINT_SHARE, Key
from inference.errors import FatalError
from inference.outputs.writers import record_text

log = logging.getLogger(__name__)

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
