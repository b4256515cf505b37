"""``python -m inference merge PARTS... --output OUT``: join the parts of a ``--shard I/N`` run.

PARTS are part files (``SHARD_OUT/shards/part-IIII-of-NNNN.json``) or shard output folders
(their ``shards/part-*.json``). The parts must be every shard of one split (same N, each
index once), of the same model (manifest sha256) and the same input (row-list digest),
with no row in two parts. Then OUT receives exactly what a single run writes: the three
JSON files (records in the single run's row order, the same writer) and, for parts that
lie in other folders, their masks (copied to the same relative paths). Part files inside
OUT are removed afterwards (``--keep-parts`` keeps them), so OUT ends up byte for byte
the output of a single run.

Exit codes: 0 merged; 1 the parts do not fit together (the message says which and how to
fix it) or OUT is not writable; 2 usage error; 3 merged, but some rows failed in the shards
(their fallback predictions are included, as in a single run).
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from contract.atomic import atomic_write_bytes
from contract.kinds import PREDICTION_FILES, RECORD_TYPES
from contract.tasks import TaskKind
from inference.errors import EXIT_FATAL, EXIT_OK, EXIT_ROWS_FAILED, OutputPathError
from inference.scale.shard import PART_FOLDER, PART_FORMAT, PART_VERSION
from inference.outputs.writers import OutputGuard, check_writable, json_chunks, record_text, write_json_records

log = logging.getLogger("inference.scale.merge")

_SAME = (("shards", "shard count N"), ("model_sha256", "model (manifest sha256)"),
         ("input_digest", "input rows"))


class MergeError(ValueError):
    """Parts that cannot be merged; the message names the parts and the fix."""


@dataclass(frozen=True)
class Part:
    path: Path
    data: dict[str, Any]  # the header line

    @property
    def folder(self) -> Path:
        """The shard's output folder (the part file lies in its ``shards/``)."""
        return self.path.parent.parent

    @property
    def label(self) -> str:
        return f"{self.path} (shard {self.data['shard']}/{self.data['shards']})"

    def lines(self) -> Iterator[Any]:
        """The part's lines after the header, parsed, one at a time."""
        try:
            with self.path.open("rb") as handle:
                handle.readline()
                for number, line in enumerate(handle, start=2):
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise MergeError(f"{self.path} line {number} is damaged ({exc}); rerun that shard") from None
        except OSError as exc:
            raise MergeError(f"{self.path}: cannot be read ({exc}); rerun that shard") from exc

    def chunks(self, key: str) -> Iterator[Any]:
        """The items of the part's ``{key: [...]}`` lines (``rows``, ``masks``)."""
        for line in self.lines():
            if isinstance(line, dict) and key in line:
                yield from line[key]

    def records(self, kind: TaskKind) -> Iterator[tuple[int, dict]]:
        """``(row index, record)`` of one kind, in row order (MergeError when the part is out of order)."""
        last = -1
        for line in self.lines():
            if isinstance(line, list) and len(line) == 3 and line[0] == kind.value:
                if not isinstance(line[1], int) or line[1] <= last:
                    raise MergeError(f"{self.path}: {kind.value} records are not in row order at row {line[1]}; "
                                     "rerun that shard")
                last = line[1]
                yield line[1], line[2]


def find_parts(paths: list[Path]) -> list[Path]:
    found: dict[Path, Path] = {}
    for path in paths:
        if path.is_dir():
            files = sorted((path / PART_FOLDER).glob("part-*-of-*.json"))
            if not files:
                raise MergeError(f"{path} holds no {PART_FOLDER}/part-*-of-*.json; run "
                                 f"python -m inference --shard I/N --output {path} first, or pass part files")
        elif path.is_file():
            files = [path]
        else:
            raise MergeError(f"{path}: no such part file or shard output folder")
        for file in files:
            found.setdefault(file.resolve(), file)
    return list(found.values())


def load_part(path: Path) -> Part:
    """The part's header line (the rest is read later, a line at a time)."""
    try:
        with path.open("rb") as handle:
            data = json.loads(handle.readline())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MergeError(f"{path}: cannot be read as a part file ({exc}); rerun that shard") from exc
    if not isinstance(data, dict) or data.get("format") != PART_FORMAT:
        raise MergeError(f"{path}: not a shard part file (written by python -m inference --shard I/N)")
    if data.get("version") != PART_VERSION:
        raise MergeError(f"{path}: part format version {data.get('version')}, this runtime reads {PART_VERSION}; "
                         "rerun the shard with this runtime")
    return Part(path, data)


def check_parts(parts: list[Part]) -> np.ndarray:
    """MergeError unless the parts are every shard of one split of one input, by one model, disjoint.

    Returns which part holds each row (by position in ``parts``): 4 bytes per row of the input."""
    first = parts[0]
    for key, what in _SAME:
        for part in parts[1:]:
            if part.data[key] != first.data[key]:
                raise MergeError(f"{part.label} and {first.label} differ in {what}: "
                                 f"{part.data[key]!r} vs {first.data[key]!r}; merge parts of one run "
                                 "(same --shard .../N, model and input)")
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
                source, target = source_guard.resolve(relative), target_guard.resolve(relative)
                atomic_write_bytes(target, source.read_bytes())
            except (OSError, OutputPathError) as exc:
                raise MergeError(f"{part.path}: mask {relative} cannot be copied ({exc}); "
                                 "check the shard's output folder") from exc
            copied += 1
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
    try:
        check_writable(output_dir)
    except OSError as exc:
        raise MergeError(f"output folder {output_dir} is not writable ({exc})") from exc
    copied = _copy_masks(parts, output_dir)
    for kind, name in PREDICTION_FILES.items():
        texts = (text for _, text in _records(parts, owner, kind))
        try:
            write_json_records(output_dir / name, json_chunks(texts, counts[kind], None))
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
    return {
        "parts": len(parts), "rows": parts[0].data["input_rows"],
        "records": sum(counts.values()), "masks": copied,
        "failed": sum(p.data["failed"] for p in parts) + parts[0].data["input_problems"],
    }


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
