"""The batch layout's journal of finished rows, so a killed or stopped run resumes (``--resume``).

``OUTPUT/.fmc-journal.jsonl``: a header line (the fingerprint of the run: the input CSVs'
sha256, the model manifest's sha256, the options that change outputs), then one line
per finished row, keyed by CSV name, line, ``image_path`` and ``task_id``: its record
(JSON kinds), or that its mask is written, or its failure and whether its fallback is
in place, and its image's fingerprint (size and modification time, taken before it was
read). A row is journaled only once its outputs are on disk; lines are flushed to
the OS after every batch and before the final write, so they survive a SIGKILL (a
half-written last line is ignored). A row whose outputs could not be written (a full
disk) is not journaled: ``--resume`` tries it again, and so it does a row whose image's
fingerprint changed since (``layouts.batch_jobs``).

``--resume`` keeps the journaled rows (their records come back byte for byte, read back
from the journal as each row comes up: ``FinishedRows`` holds about 36 bytes per row) and
predicts the others; a journal of other inputs, another model or other options is
refused. Without ``--resume`` a run starts afresh: the old journal and the three JSON
files of an earlier run are removed first, so no stale JSON looks current. The JSON
files are rewritten atomically at checkpoints (after the first batch, then every
``CHECKPOINT_SECONDS``, or ``CHECKPOINT_SHARE`` times the last checkpoint's own cost when that
is longer, so that rewriting the growing files never takes more than about 5 % of a large
run) from the rows done, in CSV order: complete whenever they exist.
When every row is settled and written, the journal is removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.csv_layout import list_csv_files
from contract.kinds import PREDICTION_FILES
from contract.manifest import MANIFEST_NAME, ModelFolder
from inference.errors import FatalError
from inference.bookkeeping.hash_index import HashIndex, hash64

log = logging.getLogger(__name__)

JOURNAL_NAME = ".fmc-journal.jsonl"
FORMAT = 2  # 2: each row's image fingerprint
CHECKPOINT_SECONDS = 5.0
CHECKPOINT_SHARE = 20.0  # at least this many times a checkpoint's cost between two checkpoints

Key = tuple[str, int, str, str]  # csv name, line, image_path, task_id


def row_key(row: Any) -> Key:
    """A CSV row's journal key (``batch_csv.Row``)."""
    return (row.csv_name, int(row.line), row.image_path, row.task_id)


def _sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:  # streamed: a CSV of any size costs the same memory
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def fingerprint(input_dir: Path, folder: ModelFolder, options: Any) -> dict[str, Any]:
    """What a journal's rows depend on: the CSVs, the model, the options that can change outputs.

    ``options``: the layout's ``RunOptions``. Engine, device and precision are compared as
    given (``auto`` resolves per machine: resume on the machine that started the run).
    Images are fingerprinted row by row instead (``Journal.add``'s ``image``).
    """
    return {
        "journal": FORMAT,
        "inputs": _sha256_files(list_csv_files(input_dir)),
        "model": _sha256_files([folder.path / MANIFEST_NAME]),
        "engine": options.engine,
        "device": options.device,
        "precision": options.precision,
        "strict": options.strict,
        "tta": options.tta,  # flip TTA changes the outputs: a resume must not mix the two
    }


def _key_hash(key: Key) -> int:
    return hash64("\0".join(map(str, key)))


class FinishedRows:
    """The journal's rows of an earlier run, by key, without holding them: about 36 bytes per row in memory
    (a 64-bit hash of the key, the line's offset and length, the sort order); ``get`` reads the line back
    from the journal."""

    def __init__(self):
        self._index = HashIndex()
        self._offsets, self._lengths = array("q"), array("q")
        self._fd: int | None = None  # the journal, open for reading back lines

    def add(self, key: Key, offset: int, length: int) -> None:
        self._index.add(_key_hash(key))
        self._offsets.append(offset)
        self._lengths.append(length)

    def open(self, path: Path) -> None:
        """The rows are all added: their lines can be read back from ``path``."""
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __len__(self) -> int:
        return len(self._index)

    def get(self, key: Key) -> dict[str, Any] | None:
        """The journal entry of ``key`` (its record, failure, fallback), or None when it was not finished.

        A key journaled twice gives its last line; keys that share a hash are told apart by the line's key."""
        if not len(self) or self._fd is None:
            return None
        for slot in self._index.positions(_key_hash(key)):
            entry = json.loads(os.pread(self._fd, self._lengths[slot], self._offsets[slot]))
            if (entry["key"][0], int(entry["key"][1]), entry["key"][2], entry["key"][3]) == key:
                return entry
        return None


@dataclass
class Journal:
    path: Path
    header: dict[str, Any]
    done: "FinishedRows" = field(default_factory=lambda: FinishedRows())  # rows finished before this run
    _handle: Any = None
    _broken: bool = False
    _last_checkpoint: float | None = None
    _checkpoint_cost: float = 0.0

    @classmethod
    def start(cls, output_root: Path, header: dict[str, Any], resume: bool, tag: str | None = None) -> "Journal":
        """Open the journal: resumed (its rows in ``done``) or fresh (old journal and JSON files removed).

        ``tag``: a shard's name: its own journal, and the folder's JSON files are left alone (a shard writes
        a part file; ``python -m inference merge`` writes the JSON files).
        """
        name = JOURNAL_NAME if tag is None else f".fmc-journal.{tag}.jsonl"
        journal = cls(Path(output_root) / name, header)
        if resume:
            journal._read()
        else:
            if journal.path.exists():
                log.warning("%s holds the journal of an unfinished run; starting afresh "
                            "(pass --resume to finish that run instead)", output_root)
            for name in [journal.path.name, *(PREDICTION_FILES.values() if tag is None else ())]:
                (Path(output_root) / name).unlink(missing_ok=True)
        journal._open(write_header=not journal.path.exists())
        return journal

    def _read(self) -> None:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            log.info("--resume: no journal in %s (nothing was interrupted there); predicting every row",
                     self.path.parent)
            return
        with handle:
            try:
                header = json.loads(handle.readline())
            except ValueError:
                raise FatalError(f"{self.path} is not a journal this runtime can read; run without --resume "
                                 "to start afresh") from None
            if header != self.header:
                changed = [k for k in self.header if header.get(k) != self.header[k]] or ["format"]
                raise FatalError(f"--resume: the journal in {self.path.parent} was written for other "
                                 f"{', '.join(changed)} than this run's; run without --resume to start afresh")
            offset, number = handle.tell(), 1
            for line in handle:
                number += 1
                if not line.endswith(b"\n"):  # a line cut by a kill: appends start on a line of their own
                    os.truncate(self.path, offset)
                    break
                try:
                    entry = json.loads(line)
                    key = (entry["key"][0], int(entry["key"][1]), entry["key"][2], entry["key"][3])
                except (ValueError, KeyError, IndexError, TypeError):
                    raise FatalError(f"{self.path} line {number} is damaged; run without --resume to start "
                                     "afresh") from None
                self.done.add(key, offset, len(line))
                offset += len(line)
        self.done.open(self.path)
        log.info("--resume: %d row(s) finished before; predicting the others", len(self.done))

    def _open(self, write_header: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self._handle = os.fdopen(os.open(self.path, flags, 0o644), "a", encoding="utf-8")
            if write_header:
                self._handle.write(json.dumps(self.header) + "\n")
                self._handle.flush()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if not self._broken:
            log.error("the journal %s cannot be written (%s); this run goes on, but --resume will redo "
                      "the rows finished from now on", self.path, exc.strerror or exc)
        self._broken = True

    def add(self, key: Key, kind: str, record: dict | None = None, failed: str | None = None,
            fallback: bool = False, image: tuple[int, int] | None = None) -> None:
        """One finished row; ``image``: its image's (size, modification time in ns) when it was read."""
        if self._broken or self._handle is None:
            return
        entry = {"key": list(key), "kind": kind, "record": record, "failed": failed, "fallback": fallback,
                 "image": image}
        try:
            self._handle.write(json.dumps(entry, allow_nan=False) + "\n")
        except OSError as exc:
            self._fail(exc)

    def flush(self) -> None:
        """The lines so far to the OS (a SIGKILL loses none of them)."""
        if self._broken or self._handle is None:
            return
        try:
            self._handle.flush()
        except OSError as exc:
            self._fail(exc)

    def checkpoint_due(self) -> bool:
        """True after the first batch, then every CHECKPOINT_SECONDS (longer when checkpoints grow costly)."""
        interval = max(CHECKPOINT_SECONDS, CHECKPOINT_SHARE * self._checkpoint_cost)
        return self._last_checkpoint is None or time.monotonic() - self._last_checkpoint >= interval

    def checkpoint_done(self, seconds: float) -> None:
        """A checkpoint was written, taking ``seconds``: the next one waits accordingly."""
        self._last_checkpoint, self._checkpoint_cost = time.monotonic(), seconds

    def close(self, finished: bool) -> None:
        """Close; ``finished`` (every row settled and written): the journal is no longer needed."""
        self.done.close()
        if self._handle is not None:
            try:
                self._handle.close()
            except OSError as exc:
                self._fail(exc)
            self._handle = None
        if finished:
            self.path.unlink(missing_ok=True)
