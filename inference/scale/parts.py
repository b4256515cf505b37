"""Reading a shard's part file (``inference.scale.shard.write_part``) for ``merge``: found, read, checked whole.

``load_part`` reads a part once from end to end before anything uses it: its format version, its
end line (a part cut short has none), the sha256 and count of every line before the end line
(a changed or damaged part differs), and the header's counts against the body (rows, each kind's
records, masks). A part that fails any check is refused with its path and "rerun that shard".
Later reads (``Part.lines``) stream it a line at a time: memory holds one line.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from contract.tasks import TaskKind
from inference.scale.shard import KIND_FILES, PART_FOLDER, PART_FORMAT, PART_VERSION


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
        """The part's lines after the header, parsed, one at a time (the end line included)."""
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
    """The part's header, once the whole part is checked (module docstring); MergeError otherwise."""
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
    part = Part(path, data)
    _check_whole(part)
    return part


def _check_whole(part: Part) -> None:
    """The end line's digest and count, and the header's counts, against what the part holds."""
    digest, lines, end = hashlib.sha256(), 0, None
    held: Counter = Counter()
    try:
        with part.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if end is not None or not line.endswith(b"\n"):
                    raise MergeError(f"{part.path}: line {number} follows the end line or is cut; rerun that shard")
                if line.startswith(b'{"end":'):
                    end = _parse(part, line, number).get("end")
                    continue
                digest.update(line)
                lines += 1
                if line.startswith(b'["'):  # a record: ["kind",index,{...}]
                    held[line[2:line.index(b'"', 2)].decode("utf-8", "replace")] += 1
                elif number > 1:
                    value = _parse(part, line, number)
                    for key in ("rows", "masks"):
                        if isinstance(value, dict) and isinstance(value.get(key), list):
                            held[key] += len(value[key])
    except OSError as exc:
        raise MergeError(f"{part.path}: cannot be read ({exc}); rerun that shard") from exc
    if not isinstance(end, dict):
        raise MergeError(f"{part.path}: incomplete, it has no end line (cut short, or still being written); "
                         "rerun that shard")
    if end.get("lines") != lines or end.get("sha256") != digest.hexdigest():
        raise MergeError(f"{part.path}: its {lines} lines differ from what its end line says "
                         f"({end.get('lines')} lines, sha256 {str(end.get('sha256'))[:12]}...): changed or "
                         "damaged; rerun that shard")
    promised = {**part.data.get("counts", {}), "masks": end.get("masks")}
    for key in ("rows", "masks", *KIND_FILES):
        if promised.get(key, 0) != held[key]:
            what = f"{key} records" if key in KIND_FILES else key
            raise MergeError(f"{part.path}: it promises {promised.get(key, 0)} {what}, it holds {held[key]}; "
                             "rerun that shard")
    extra = set(held) - {"rows", "masks", *KIND_FILES}
    if extra:
        raise MergeError(f"{part.path}: records of unknown kind(s) {sorted(extra)}; rerun that shard")


def _parse(part: Part, line: bytes, number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise MergeError(f"{part.path} line {number} is damaged ({exc}); rerun that shard") from None
