"""Many rows in flat memory: rows streamed from the CSVs, records spooled to disk, JSON files streamed out.

What a user relies on: a run over 100,000 rows needs no more memory than one over 1,000
(``benchmarks.scale memory`` measures whole runs; these tests pin the parts), and the files
are byte for byte what writing everything at once gives.
"""

from __future__ import annotations

import csv
import json
import logging
import tracemalloc
from pathlib import Path

import pytest

from contract.kinds import PREDICTION_FILES
from contract.tasks import TaskKind
from inference.layouts import pipeline as pipeline_module
from inference.layouts.batch_rows import InputRows, read_rows
from inference.cli import main
from inference.errors import FatalError
from inference.bookkeeping.record_spool import SPOOL_PREFIX, RecordSpool
from inference.outputs.results import Results
from inference.outputs.writers import json_bytes, json_chunks, record_text

from test_inference_cli import GOOD_ROWS, make_input

ROWS = 20_000


def _record(i: int) -> dict:
    return {"image_path": f"../images/caf\u00e9_{i}.png", "task_id": "organ_cls",
            "probabilities": [i / 7, 1 - i / 7, 1e-9], "extra": {"nested": [i, {"deep": None}], "empty": []}}


@pytest.mark.parametrize("count", [0, 1, 2, 17])
def test_streamed_json_equals_the_json_written_at_once(count):
    records = [_record(i) for i in range(count)]
    texts = [record_text(r) for r in records]
    chunks = json_chunks(iter(texts), count, sum(map(len, texts)), piece=64)
    data = b"".join(chunks)
    assert data == json_bytes(records)
    assert len(chunks) == len(data)  # the size a full-disk message quotes


def test_spool_returns_records_in_row_order_from_disk_and_is_removed(tmp_path):
    spool = RecordSpool(tmp_path, "part-0001-of-0002")
    for index in (5, 2, 9, 2):  # row 2 stored twice: the last record wins
        spool.add(TaskKind.CLASSIFICATION, index, _record(index * 10 + (index == 2) * len(spool.path.name)))
    spool.add(TaskKind.DETECTION, 3, _record(3))
    files = [p.name for p in tmp_path.iterdir()]
    assert files == [f"{SPOOL_PREFIX}.part-0001-of-0002.spool"]  # on disk, a bookkeeping name
    count, size, records = spool.ordered(TaskKind.CLASSIFICATION)
    got = list(records)
    assert [i for i, _ in got] == [2, 5, 9] and count == 3
    assert json.loads(got[0][1]) == _record(20 + len(spool.path.name))
    assert size == sum(len(text) for _, text in got)
    assert spool.count(TaskKind.REGRESSION) == 0 and spool.count(TaskKind.DETECTION) == 1
    spool.close()
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_spool_keeps_records_in_memory_and_loses_none(tmp_path, caplog):
    spool = RecordSpool(tmp_path)
    spool.path.mkdir()  # the spool's name is taken by a folder: it cannot be opened as a file
    caplog.set_level(logging.WARNING)
    for index in (3, 1, 2):
        spool.add(TaskKind.REGRESSION, index, _record(index))
    count, size, records = spool.ordered(TaskKind.REGRESSION)
    assert b"".join(json_chunks((t for _, t in records), count, size)) == json_bytes([_record(i) for i in (1, 2, 3)])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "keeping them in memory" in warnings[0] and SPOOL_PREFIX in warnings[0]


class _Row:
    def __init__(self, index: int):
        self.index, self.image_path, self.task_id = index, f"../images/{index}.png", "organ_cls"


class _Prediction:
    kind = TaskKind.CLASSIFICATION

    def __init__(self, index: int):
        self.index = index

    def record(self, image_path, task_id):
        class Payload:
            def model_dump(_self, mode):
                return {"image_path": image_path, "task_id": task_id, "probabilities": [self.index / ROWS]}
        return Payload()


def test_results_hold_a_few_bytes_per_row_and_write_the_same_file(tmp_path):
    results = Results(spool=RecordSpool(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for index in reversed(range(ROWS)):  # predicted out of order, as batches grouped by task are
        results.add(_Row(index), _Prediction(index))
    grown = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    # a record dict held in memory costs about 700 bytes; the spool keeps 3 integers per row
    assert grown / ROWS < 64, f"{grown / ROWS:.0f} bytes per row"
    assert results.write_json(tmp_path / "out") == []
    results.spool.close()
    expected = [{"image_path": f"../images/{i}.png", "task_id": "organ_cls", "probabilities": [i / ROWS]}
                for i in range(ROWS)]
    assert (tmp_path / "out" / PREDICTION_FILES[TaskKind.CLASSIFICATION]).read_bytes() == json_bytes(expected)
    assert (tmp_path / "out" / PREDICTION_FILES[TaskKind.DETECTION]).read_bytes() == b"[]\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(PREDICTION_FILES.values())


def _big_input(root: Path, rows: int) -> Path:
    (root / "csv_files").mkdir(parents=True)
    with (root / "csv_files" / "a.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_path", "task_id", "task_name", "num_classes"])
        writer.writerows([f"../images/img_{i:06d}.png", "organ_cls", "classification", "6"] for i in range(rows))
    (root / "csv_files" / "b.csv").write_text("no,useful,columns\n1,2,3\n")
    (root / "csv_files" / "c.csv").write_text("image_path,task_id\n../images/last.png,IUGC\n")
    return root


STREAM_ROWS = """
import json, sys, tracemalloc
from inference.layouts.batch_rows import InputRows
rows = InputRows.scan(sys.argv[1])
tracemalloc.start()
count, last = 0, None
for row in rows:
    count, last = count + 1, row
_, peak = tracemalloc.get_traced_memory()
# what stays allocated, less the interpreter's table of interned names (pathlib interns every path part;
# the table is reallocated as names come and go, a few MB whatever the number of rows)
kept = sum(t.size for t in tracemalloc.take_snapshot().filter_traces(
    [tracemalloc.Filter(False, "*pathlib.py")]).traces)
print(json.dumps({"count": count, "len": len(rows), "peak": peak, "kept": kept, "problems": rows.problems,
                  "last": [last.index, last.csv_name, last.image_path, last.task_id]}))
"""


def test_rows_are_streamed_not_held(tmp_path):
    """Measured in a fresh interpreter: the peak depends on the process's tables (interned names), which
    every earlier test of a session grows."""
    import subprocess
    import sys

    rows_count = 2 * ROWS
    inp = _big_input(tmp_path / "in", rows_count)
    done = subprocess.run([sys.executable, "-c", STREAM_ROWS, str(inp)], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    peak, kept = got["peak"], got["kept"]
    assert got["count"] == got["len"] == rows_count + 1
    assert got["last"] == [rows_count, "c.csv", "../images/last.png", "IUGC"]
    problems = got["problems"]
    assert len(problems) == 1 and problems[0].startswith("b.csv: no column(s) ['image_path', 'task_id']")
    # as a list these rows take 0.6-0.9 KB each (24-36 MB here); streamed, a few rows at a time
    assert peak < 12_000_000 and kept < 500_000, f"peak {peak / 1e6:.1f} MB, kept {kept / 1e6:.2f} MB"
    listed, listed_problems = read_rows(inp)
    assert [r.index for r in listed] == list(range(rows_count + 1)) and listed_problems == problems


def test_a_csv_changed_during_the_run_stops_it_with_a_clear_error(tmp_path):
    inp = _big_input(tmp_path / "in", 10)
    rows = InputRows.scan(inp)
    with (inp / "csv_files" / "a.csv").open("a") as handle:
        handle.write("../images/added.png,organ_cls,classification,6\n")
    with pytest.raises(FatalError, match="the CSV files changed while the run read them"):
        list(rows)


def test_a_small_window_predicts_the_same_bytes(tmp_path, tiny_model_dir, monkeypatch):
    """Rows grouped by task a window at a time (as for a long input) give the outputs of one window."""
    rows = [(*row[:4], row[4].replace("MASKS/", f"MASKS{copy}/")) for copy in range(5) for row in GOOD_ROWS]
    inp = make_input(tmp_path / "in", rows)  # each copy's masks in a folder of their own: one mask per row
    outputs = {}
    for window in (pipeline_module.WINDOW, 3):
        monkeypatch.setattr(pipeline_module, "WINDOW", window)
        out = tmp_path / f"out-{window}"
        assert main(["--input", str(inp), "--output", str(out), "--weights", str(tiny_model_dir),
                     "--batch-size", "2"]) == 0
        outputs[window] = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert outputs[3] == outputs[pipeline_module.WINDOW]
    assert sorted(outputs[3]) == sorted([*PREDICTION_FILES.values(), *(f"Segmentation/{task}/MASKS{copy}/{image}"
                                         for copy in range(5) for task, image in (("ds", "wide.png"),
                                                                                  ("multi", "tall.png")))])
    assert len(json.loads(outputs[3]["classification_predictions.json"])) == 10


def test_resume_reads_finished_rows_back_from_the_journal(tmp_path, monkeypatch):
    """--resume holds 24 bytes per finished row and reads each row's entry back; colliding hashes are told
    apart by the key, and a row journaled twice gives its last entry."""
    from inference.bookkeeping import journal as journal_module

    header = {"journal": 1, "inputs": "x"}
    first = journal_module.Journal.start(tmp_path, header, resume=False)
    keys = [(f"{i % 3}.csv", i + 2, f"../images/{i}.png", "organ_cls") for i in range(ROWS)]
    for i, key in enumerate(keys):
        first.add(key, "classification", record=_record(i))
    first.add(keys[7], "classification", record=_record(-7), failed="image unreadable", fallback=True)
    first.flush()
    first.close(finished=False)
    tracemalloc.start()
    resumed = journal_module.Journal.start(tmp_path, header, resume=True)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(resumed.done) == ROWS + 1 and current / ROWS < 64, f"{current / ROWS:.0f} bytes per row"
    assert resumed.done.get(keys[5])["record"] == _record(5)
    assert resumed.done.get(keys[7])["failed"] == "image unreadable"  # the last entry of a row wins
    assert resumed.done.get(("0.csv", 1, "../images/none.png", "organ_cls")) is None
    resumed.close(finished=False)

    monkeypatch.setattr(journal_module, "_key_hash", lambda key: 42)  # every key collides
    collided = journal_module.Journal.start(tmp_path, header, resume=True)
    assert collided.done.get(keys[3])["record"] == _record(3)
    assert collided.done.get(("9.csv", 1, "no", "organ_cls")) is None
    collided.close(finished=True)
    assert not (tmp_path / journal_module.JOURNAL_NAME).exists()


def test_a_disk_filling_up_mid_record_loses_nothing(tmp_path, monkeypatch, caplog):
    """The third record's write stops half way (ENOSPC): the spool is cut back to whole records, that record and
    the later ones are kept in memory, and the JSON file is complete and in order."""
    import errno
    import os

    from inference.bookkeeping import record_spool as spool_module

    real_pwrite, calls = os.pwrite, []

    def pwrite(fd, data, offset):
        calls.append(offset)
        if len(calls) == 3:
            real_pwrite(fd, bytes(data[: len(data) // 2]), offset)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(spool_module.os, "pwrite", pwrite)
    caplog.set_level(logging.WARNING)
    spool = RecordSpool(tmp_path)
    for index in (4, 0, 3, 1, 2):
        spool.add(TaskKind.CLASSIFICATION, index, _record(index))
    assert spool.path.stat().st_size == len(record_text(_record(4))) + len(record_text(_record(0)))
    count, size, records = spool.ordered(TaskKind.CLASSIFICATION)
    data = b"".join(json_chunks((t for _, t in records), count, size))
    assert data == json_bytes([_record(i) for i in range(5)]) and size + 2 * 4 + 5 == len(data)
    assert sum("keeping them in memory" in r.getMessage() for r in caplog.records) == 1
    spool.close()


def test_the_output_audit_holds_8_bytes_per_file(tmp_path):
    from inference.bookkeeping.output_audit import PathSet

    tracemalloc.start()
    written = PathSet(tmp_path / f"Segmentation/masks/{i:06d}.png" for i in range(ROWS))
    written.add(tmp_path / "Segmentation/masks/000007.png")  # a mask named by two rows
    kept = sum(t.size for t in tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, "*pathlib.py")]).traces)  # less pathlib's interned names (made by the test)
    tracemalloc.stop()
    assert kept / ROWS < 16, f"{kept / ROWS:.1f} bytes per path"
    assert len(written) == ROWS
    assert tmp_path / "Segmentation/masks/019999.png" in written
    assert str(tmp_path / "Segmentation/masks/000000.png") in written
    assert tmp_path / "Segmentation/masks/020000.png" not in written and 7 not in written
