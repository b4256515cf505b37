"""``--shard I/N``: a deterministic split of the batch layout's rows, each shard writing its own part.

Which shard a row belongs to depends only on the row's content: the sha256 of its CSV
file's name, its ``image_path`` and its ``task_id`` (as written), modulo N. The split is
therefore the same on every machine and whatever order the CSV files are listed in; two
identical rows always land in the same shard. ``I`` counts from 0 (``0/4`` .. ``3/4``).

``--shard auto/N`` (or ``/N``) takes ``I`` from ``$JOB_COMPLETION_INDEX`` (set by a Kubernetes Indexed
Job in each pod); ``$FMC_SHARD`` is the default of ``--shard`` (for a container whose
command line is fixed).

A shard run writes its masks to their usual places under the output folder and, instead
of the three JSON files, one part file ``OUTPUT/shards/part-IIII-of-NNNN.json`` (zero-padded) (``PART_FOLDER``):
the JSON records of its rows with each row's position in the single run, the rows it
handled, the model manifest's sha256 and a digest of the whole input's row list.
``python -m inference merge`` (``inference.scale.merge``) checks the parts against each other and
writes the files a single run writes, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from array import array
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from contract.atomic import Chunks, atomic_write_bytes
from contract.kinds import PREDICTION_FILES
from contract.manifest import MANIFEST_NAME, ModelFolder, sha256_of
from inference.layouts.batch_rows import InputRows, Row
from inference.errors import FatalError, OutputPathError
from inference.outputs.writers import PART_FOLDER, OutputGuard

if TYPE_CHECKING:
    from inference.bookkeeping.output_audit import PathSet
    from inference.outputs.results import Results

log = logging.getLogger(__name__)

SHARD_ENV = "FMC_SHARD"
INDEX_ENV = "JOB_COMPLETION_INDEX"
PART_FORMAT = "fmc-uia-shard-part"
PART_VERSION = 3  # 2: JSON Lines, read a line at a time; 3: settings in the header, an end line with a digest
#: Header fields every part of one merge must share, and what they mean in a message.
SHARED_FIELDS = (("shards", "shard count N"), ("model_sha256", "model (manifest sha256)"),
                 ("input_digest", "input rows"), ("engine", "engine"), ("precision", "precision"),
                 ("tta", "test-time augmentation"), ("strict", "--strict"))
CHUNK = 4096  # row indexes or mask paths per line of a part file
#: The JSON file a kind's records go to, by the kind's value (what a part file stores).
KIND_FILES: dict[str, str] = {kind.value: name for kind, name in PREDICTION_FILES.items()}


class ShardError(ValueError):
    """A ``--shard`` value that cannot be used; the message says the accepted forms."""


@dataclass(frozen=True)
class Shard:
    index: int  # 0 .. count-1
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """``part-000I-of-000N``: names this shard's part file, lock and journal in a shared folder."""
        width = max(4, len(str(self.count)))
        return f"part-{self.index:0{width}d}-of-{self.count:0{width}d}"

    @property
    def part_name(self) -> str:
        return f"{self.tag}.json"


def parse_shard(text: str, environ: dict[str, str] | None = None) -> Shard:
    """``I/N``, or ``auto/N`` / ``/N`` (I from ``$JOB_COMPLETION_INDEX``) -> Shard; ShardError otherwise."""
    env = os.environ if environ is None else environ
    forms = "expected I/N with 0 <= I < N (e.g. 0/4), or auto/N to take I from $" + INDEX_ENV
    head, sep, tail = text.strip().partition("/")
    if not sep:
        raise ShardError(f"--shard {text!r}: {forms}")
    try:
        count = int(tail)
    except ValueError:
        raise ShardError(f"--shard {text!r}: N must be a whole number; {forms}") from None
    if count < 1:
        raise ShardError(f"--shard {text!r}: N must be at least 1; {forms}")
    if head.strip().lower() in ("auto", ""):
        raw = env.get(INDEX_ENV, "").strip()
        if not raw:
            raise ShardError(f"--shard {text!r}: ${INDEX_ENV} is not set (it is in a Kubernetes Indexed Job); "
                             "pass the index explicitly, e.g. --shard 0/" + str(count))
        head, source = raw, f"${INDEX_ENV}={raw}"
    else:
        source = "I"
    try:
        index = int(head)
    except ValueError:
        raise ShardError(f"--shard {text!r}: {source} is not a whole number; {forms}") from None
    if not 0 <= index < count:
        raise ShardError(f"--shard {text!r}: {source} gives index {index}, outside 0..{count - 1}; {forms}")
    return Shard(index, count)


def row_key(csv_name: str, image_path: str, task_id: str) -> bytes:
    """The sha256 of what identifies a row, independent of where the CSV files are listed."""
    return hashlib.sha256("\0".join((csv_name, image_path, task_id)).encode("utf-8")).digest()


class ShardRows:
    """The rows of one shard, streamed from the whole input's rows (``InputRows``) on each iteration.

    ``len()`` first reads the whole input once (``summary``): the shard's row count, its row indexes
    (8 bytes each) and the digest of the whole input's row list, which the part file needs."""

    def __init__(self, rows: Iterable[Row], shard: Shard):
        self.rows, self.shard = rows, shard
        self._summary: tuple[array, str] | None = None

    def __iter__(self) -> Iterator[Row]:
        count = self.shard.count
        return (row for row in self.rows if shard_of(row, count) == self.shard.index)

    def __len__(self) -> int:
        return len(self.summary()[0])

    def summary(self) -> tuple[array, str]:
        """``(indexes, input digest)``: this shard's row indexes, and a fingerprint of the whole input's row
        list (every shard must have read the same rows), in one pass."""
        if self._summary is None:
            indexes, digest = array("q"), hashlib.sha256()
            for row in self.rows:
                key = row_key(row.csv_name, row.image_path, row.task_id)
                digest.update(key)
                digest.update(f"{row.index}:{row.line}".encode())
                if _shard_of_key(key, self.shard.count) == self.shard.index:
                    indexes.append(row.index)
            self._summary = (indexes, digest.hexdigest())
        return self._summary


def shard_of(row: Row, count: int) -> int:
    return _shard_of_key(row_key(row.csv_name, row.image_path, row.task_id), count)


def _shard_of_key(key: bytes, count: int) -> int:
    return int.from_bytes(key[:8], "big") % count


def model_digest(folder: ModelFolder) -> str:
    return sha256_of(folder.path / MANIFEST_NAME)


def write_part(output_dir: Path, all_rows: InputRows, rows: ShardRows, results: "Results", folder: ModelFolder,
               settings: dict) -> Path:
    """The shard's part file (``PART_FOLDER/part-IIII-of-NNNN.json``), streamed and written atomically.

    JSON Lines (``PART_VERSION`` 3), so that ``merge`` reads it a line at a time: a header object (what
    the parts must share: ``SHARED_FIELDS``, with ``settings``, the engine, precision, TTA and strict the
    shard ran with; the counts), then ``{"rows": [...]}`` lines (the row indexes this shard
    handled, ``CHUNK`` per line), one ``[kind, row index, record]`` line per JSON record (by kind, in
    row order), ``{"masks": [...]}`` lines (the masks in place, relative to the output folder) and an
    end line ``{"end": {"lines": L, "masks": M, "sha256": D}}``: the count and sha256 of every line before
    it and the masks listed, so that ``merge`` refuses a part cut short or changed.

    ``all_rows``: the whole input (its ``problems`` are counted), ``rows``: this shard's (their indexes and the
    input's digest come from ``ShardRows.summary``), ``results``: the run's (records streamed from its spool,
    masks in place, failures).
    """
    guard, shard = OutputGuard(output_dir), rows.shard
    indexes, input_digest = rows.summary()
    streams = [(kind.value, *results.spool.ordered(kind)) for kind in PREDICTION_FILES]
    head = {
        "format": PART_FORMAT,
        "version": PART_VERSION,
        "shard": shard.index,
        "shards": shard.count,
        "model_sha256": model_digest(folder),
        **{key: settings[key] for key in ("engine", "precision", "tta", "strict")},
        "input_rows": len(all_rows),
        "input_digest": input_digest,
        "input_problems": len(all_rows.problems),
        "failed": results.failed,
        "counts": {"rows": len(indexes), **{kind: count for kind, count, _, _ in streams}},
    }

    def body() -> Iterator[bytes]:
        yield _line(head)
        for start in range(0, len(indexes), CHUNK):
            yield _line({"rows": indexes[start:start + CHUNK].tolist()})
        for kind, _, _, records in streams:
            for index, text in records:
                yield f'["{kind}",{index},'.encode() + text.strip().replace(b"\n", b"") + b"]\n"
        masks = _masks_in_place(rows, guard, results.masks) if len(results.masks) else iter(())
        while chunk := list(islice(masks, CHUNK)):
            listed[0] += len(chunk)
            yield _line({"masks": chunk})

    def lines() -> Iterator[bytes]:
        digest, count = hashlib.sha256(), 0
        for line in body():
            digest.update(line)
            count += 1
            yield line
        yield _line({"end": {"lines": count, "masks": listed[0], "sha256": digest.hexdigest()}})

    listed = [0]  # masks listed, counted as they are streamed

    target = Path(output_dir) / PART_FOLDER / shard.part_name
    atomic_write_bytes(target, Chunks(lines()), durable=True)
    log.info("shard %s: %d of %d rows; part written to %s", shard, len(indexes), len(all_rows), target)
    return target


def _masks_in_place(rows: Iterable[Row], guard: OutputGuard, written: "PathSet") -> Iterator[str]:
    """The masks (relative to the output folder) that the shard's rows have in place, in row order."""
    for row in rows:
        if row.mask_path is None:
            continue
        try:
            target = guard.mask_target(row.mask_path)
        except OutputPathError:
            continue
        if target in written and target.is_file():
            yield target.relative_to(guard.root).as_posix()


def _line(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8") + b"\n"


def shard_option(text: str | None, layout_name: str) -> Shard | None:
    """The CLI's ``--shard`` (or ``$FMC_SHARD``) for a layout; FatalError when unusable."""
    if text is None or not text.strip():
        return None
    if layout_name != "batch":
        raise FatalError(f"--shard {text} applies to the batch layout (INPUT/csv_files/*.csv) only, "
                         f"not to the {layout_name} layout; drop --shard (and ${SHARD_ENV})")
    try:
        return parse_shard(text)
    except ShardError as exc:
        raise FatalError(str(exc)) from exc
