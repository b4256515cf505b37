"""``python -m inference merge PARTS... --output OUT``: join the parts of a ``--shard I/N`` run.

PARTS are part files (``SHARD_OUT/shards/part-IIII-of-NNNN.json``) or shard output folders
(their ``shards/part-*.json``). Each part is checked whole first (``inference.scale.parts``: its
end line's digest, its header's counts against its body). The parts must be every shard of one
split (same N, each index once), of the same model (manifest sha256), the same input (row-list
digest) and the same engine, precision, TTA and ``--strict`` (``shard.SHARED_FIELDS``), with no
row in two parts; no shard may still be running in a part's folder. Then OUT, locked like any
run's output folder, receives exactly what a single run writes: the three
JSON files (records in the single run's row order, the same writer) and, for parts that
lie in other folders, their masks (copied to the same relative paths). Part files inside
OUT are removed afterwards (``--keep-parts`` keeps them), so OUT ends up byte for byte
the output of a single run.

Exit codes: 0 merged; 1 the parts do not fit together (the message says which and how to
fix it), OUT is not writable or in use, or a file could not be written (a full disk: free space
and run the same merge command again; parts are removed only after a merge succeeds); 2 usage
error; 3 merged, but some rows failed in the shards (their fallback predictions are included,
as in a single run).
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np

from contract.kinds import PREDICTION_FILES, RECORD_TYPES
from contract.tasks import TaskKind
from inference.bookkeeping.lock import Holder, folder_in_use
from inference.errors import EXIT_FATAL, EXIT_OK, EXIT_ROWS_FAILED, FatalError, OutputPathError
from inference.outputs.writers import OutputGuard, json_chunks, record_text, write_error, write_json_records
from inference.scale.parts import MergeError, Part, find_parts, load_part
from inference.scale.shard import PART_FOLDER, SHARED_FIELDS
from inference.startup import claim_output

log = logging.getLogger("inference.scale.merge")

AGAIN = "run the same merge command again"  # what finishes a merge whose file could not be written


def check_parts(parts: list[Part]) -> np.ndarray:
    """MergeError unless the parts are every shard of one split of one input, by one model, disjoint.

    Returns which part holds each row (by position in ``parts``): 4 bytes per row of the input."""
    first = parts[0]
    for key, what in SHARED_FIELDS:
        values = Counter(json.dumps(part.data.get(key)) for part in parts)
        if len(values) > 1:  # name the parts off the most common value (the first part's on a tie)
            usual = max(values, key=lambda v: (values[v], v == json.dumps(first.data.get(key))))
            odd = [part for part in parts if json.dumps(part.data.get(key)) != usual]
            raise MergeError(f"{odd[0].label} differs from the other parts in {what}: {odd[0].data.get(key)!r}, "
                             f"where {values[usual]} part(s) have {json.loads(usual)!r}"
                             f"{f' (and {len(odd) - 1} more part(s) differ)' if len(odd) > 1 else ''}; merge parts "
                             "of one run (same --shard .../N, model, input, engine, precision, TTA and --strict): "
                             "rerun that shard like the others")
    count = first.data["shards"]
    by_index: dict[int, Part] = {}
    for part in parts:
        other = by_index.setdefault(part.data["shard"], part)
        if other is not part:
            raise MergeError(f"shard {part.data['shard']}/{count} given twice: {other.path} and {part.path}; "
                             "pass each shard's part once")
    missing = [f"{i}/{count}" for i in range(count) if i not in by_index]
    if missing:
        raise MergeError(f"missing shard(s) {', '.join(missing)} of {count}; run python -m inference "
                         f"--shard {missing[0]} ... and pass its output too")
    total = first.data["input_rows"]
    owner = np.full(total, -1, dtype=np.int32)
    held = 0
    for number, part in enumerate(parts):
        for index in part.chunks("rows"):
            if not isinstance(index, int) or not 0 <= index < total:
                raise MergeError(f"{part.label} names row {index!r}, the input has {total}; rerun that shard")
            if owner[index] >= 0:
                raise MergeError(f"row {index} is in both {parts[owner[index]].label} and {part.label}; "
                                 "the parts overlap: rerun those shards with this runtime")
            owner[index] = number
            held += 1
    if held != total:
        raise MergeError(f"the parts hold {held} rows, the input has {total}; rerun the shards")
    return owner


def _records(parts: list[Part], owner: np.ndarray, kind: TaskKind) -> Iterator[tuple[int, bytes]]:
    """Every part's records of ``kind``, validated, as ``(row index, record text)`` in the single run's order."""
    def validated(number: int, part: Part) -> Iterator[tuple[int, bytes]]:
        for index, fields in part.records(kind):
            if not 0 <= index < len(owner) or owner[index] != number:
                raise MergeError(f"{part.path}: a record of row {index}, which is not this shard's; rerun that shard")
            try:
                record = RECORD_TYPES[kind].model_validate(fields)
            except ValueError as exc:
                raise MergeError(f"{part.path}: record of row {index} is invalid ({exc}); rerun that shard") from exc
            yield index, record_text(record)

    return heapq.merge(*(validated(number, part) for number, part in enumerate(parts)), key=lambda item: item[0])


def _copy_masks(parts: list[Part], output_dir: Path) -> int:
    """Masks of parts written elsewhere -> the same relative paths under ``output_dir``."""
    target_guard = OutputGuard(output_dir)
    copied = 0
    for part in parts:
        if part.folder.resolve() == target_guard.root:
            continue
        source_guard = OutputGuard(part.folder)
        for relative in part.chunks("masks"):
            try:
                source, target = source_guard.mask_target(relative), target_guard.mask_target(relative)
                data = source.read_bytes()
            except (OSError, OutputPathError) as exc:
                raise MergeError(f"{part.path}: mask {relative} cannot be copied ({exc}); "
                                 "check the shard's output folder") from exc
            try:
                target_guard.write_bytes(target, data, retry=AGAIN)
            except OSError as exc:
                raise MergeError(str(write_error(target, len(data), exc, AGAIN))) from exc
            copied += 1
    target_guard.close()
    return copied


def merge(paths: list[Path], output_dir: Path, keep_parts: bool = False) -> dict[str, int]:
    """Merge the parts into ``output_dir``; returns counts (rows, records, masks copied, failed).

    Streamed: memory holds 4 bytes per input row (which part has it) and a line per part; every part
    is checked (rows, then every record) before anything is written."""
    parts = [load_part(path) for path in find_parts(paths)]
    owner = check_parts(parts)
    counts: dict[TaskKind, int] = {}
    for kind in PREDICTION_FILES:
        counts[kind] = sum(1 for _ in _records(parts, owner, kind))
    for folder in {part.folder.resolve() for part in parts} - {output_dir.resolve()}:
        holder = folder_in_use(folder)
        if holder is not None:
            raise MergeError(f"{folder} is in use ({holder}); wait for that run to end, then merge")
    try:
        with claim_output(output_dir, Holder("merge")):
            copied = _write(parts, owner, counts, output_dir, keep_parts)
    except FatalError as exc:  # the output folder is not writable, or another run holds it
        raise MergeError(str(exc)) from exc
    return {
        "parts": len(parts), "rows": parts[0].data["input_rows"], "records": sum(counts.values()), "masks": copied,
        "failed": sum(p.data["failed"] for p in parts) + parts[0].data["input_problems"],
    }


def _write(parts: list[Part], owner: np.ndarray, counts: dict[TaskKind, int], output_dir: Path,
           keep_parts: bool) -> int:
    """The three JSON files and the masks copied into ``output_dir``, then its parts removed; the masks copied."""
    copied = _copy_masks(parts, output_dir)
    for kind, name in PREDICTION_FILES.items():
        texts = (text for _, text in _records(parts, owner, kind))
        try:
            write_json_records(output_dir / name, json_chunks(texts, counts[kind], None), retry=AGAIN)
        except OSError as exc:
            raise MergeError(f"{output_dir / name} not written: {exc}") from exc
    root = output_dir.resolve()
    if not keep_parts:
        for part in parts:
            if part.folder.resolve() == root:
                part.path.unlink(missing_ok=True)
        shards_dir = output_dir / PART_FOLDER
        if shards_dir.is_dir() and not any(shards_dir.iterdir()):
            shards_dir.rmdir()
    return copied


def run_merge(args: argparse.Namespace) -> int:
    """``python -m inference merge`` (its arguments: ``inference.scale.commands``); the exit code."""
    logging.basicConfig(level=logging.INFO, format="inference merge: %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        counts = merge(args.parts, args.output, args.keep_parts)
    except MergeError as exc:
        log.error("%s", exc)
        return EXIT_FATAL
    log.info("merged %(parts)d parts: %(rows)d rows, %(records)d JSON records, %(masks)d masks copied", counts)
    if counts["failed"]:
        log.warning("%d rows failed in the shards (see their logs); their fallback predictions are included",
                    counts["failed"])
        return EXIT_ROWS_FAILED
    return EXIT_OK
