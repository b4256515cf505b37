"""The challenge's batch layout on disk: ``INPUT/csv_files/*.csv``, read once for every consumer.

The runtime (``inference.layouts.batch_rows``), the evaluator (``evaluation.labels``) and the
training data loader all read the same files the same way: every ``*.csv`` of the
``csv_files/`` folder in name order, UTF-8 (a BOM is accepted), header names stripped.
Paths inside a CSV are relative to the ``csv_files/`` folder (``resolve``). What a row
means (a prediction job, a label) is the consumer's business.
"""

from __future__ import annotations

import csv
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

CSV_FOLDER = "csv_files"


class CsvLayoutError(ValueError):
    """The folder is not in the challenge's batch layout (no ``csv_files/`` folder, or no CSV in it)."""


@dataclass(frozen=True)
class CsvRecord:
    """One data row of a CSV file: where it is, and its cells by (stripped) column name."""

    csv_name: str
    line: int  # physical line in the file (the header is line 1)
    row: int  # 1-based data row (the header not counted)
    cells: dict[str, str]

    def get(self, column: str) -> str | None:
        """The cell's text, or None when the column is absent or the cell blank."""
        value = self.cells.get(column)
        return value if value is not None and value.strip() != "" else None


@dataclass(frozen=True)
class CsvFile:
    path: Path
    columns: list[str]
    records: list[CsvRecord] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def csv_folder(input_dir: Path) -> Path:
    return Path(input_dir) / CSV_FOLDER


def list_csv_files(input_dir: Path) -> list[Path]:
    """The CSV files of ``input_dir`` in name order; CsvLayoutError when there are none."""
    root = Path(input_dir)
    folder = csv_folder(root)
    if not folder.is_dir():
        raise CsvLayoutError(f"{root} has no {CSV_FOLDER}/ folder; expected INPUT/{CSV_FOLDER}/*.csv")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
    if not files:
        raise CsvLayoutError(f"{folder} holds no .csv files; put the challenge's index CSVs there")
    return files


def read_csv_file(path: Path) -> CsvFile:
    """All data rows of one CSV file (OSError, UnicodeDecodeError or csv.Error when unreadable)."""
    with open_csv_file(path) as (columns, records):
        return CsvFile(Path(path), columns, list(records))


@contextmanager
def open_csv_file(path: Path) -> Iterator[tuple[list[str], Iterator[CsvRecord]]]:
    """One CSV file, streamed: ``(columns, records)``, the records read one at a time.

    Only the current row is in memory, so a file of any length costs the same; errors
    (OSError, UnicodeDecodeError, csv.Error) surface at the row where they occur.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [(c or "").strip() for c in reader.fieldnames or []]

        def records() -> Iterator[CsvRecord]:
            for number, raw in enumerate(reader, start=1):
                cells = {(k or "").strip(): (v if isinstance(v, str) else "") for k, v in raw.items()}
                yield CsvRecord(path.name, reader.line_num, number, cells)

        yield columns, records()


def input_rows(input_dir: Path) -> list[dict[str, str]]:
    """Every data row of every CSV file (name order) as a plain dict of its cells, plus ``"_where"``:
    ``"NAME.csv line N"``, for tools that compare outputs row by row (benchmarks, the CPU check)."""
    rows: list[dict[str, str]] = []
    for path in list_csv_files(input_dir):
        with open_csv_file(path) as (_, records):
            rows += [{**record.cells, "_where": f"{record.csv_name} line {record.line}"} for record in records]
    return rows


def resolve(input_dir: Path, relative: str) -> Path:
    """A path written in a CSV (relative to ``csv_files/``) as a normalized path on disk."""
    return Path(os.path.normpath(csv_folder(input_dir) / relative.strip()))


def output_mask_path(mask_path: str) -> str:
    """Where a row's mask lies in an output folder: the CSV's ``mask_path`` with its leading ``../`` (and
    ``./``, ``/``) parts removed, as the runtime writes it (``""`` when nothing is left)."""
    parts = list(PurePosixPath(mask_path.replace("\\", "/")).parts)
    while parts and parts[0] in ("..", ".", "/"):
        parts.pop(0)
    return str(PurePosixPath(*parts)) if parts else ""
