"""--shard I/N and python -m inference merge: 4 shards merged equal one run byte for byte; bad parts refused.

Input: the sample set test/input (54 rows, every kind) plus a CSV of two rows that fail
(missing images), so fallback predictions go through the shards too. Model: model_weights/.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inference.layouts.batch_rows import read_rows
from inference.cli import main
from inference.errors import EXIT_FATAL, EXIT_ROWS_FAILED
from inference.scale.shard import INDEX_ENV, PART_FOLDER, Shard, ShardError, parse_shard, ShardRows, shard_of

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "model_weights"
SHARDS = 4
BAD_CSV = (
    "image_path,task_id,task_name,num_classes,mask_path\n"
    "../Classification/organ_cls/images/missing.png,organ_cls,classification,6,\n"
    "../Segmentation/Two/lung/images/missing.png,lung,segmentation,2,../Segmentation/Two/lung/masks/missing.png\n"
)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def predict(inp: Path, out: Path, *extra: str) -> int:
    return main(["--input", str(inp), "--output", str(out), "--weights", str(WEIGHTS), "--device", "cpu", *extra])


def merge(*args: str | Path) -> int:
    return main(["merge", *map(str, args)])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shards")
    inp = root / "input"
    shutil.copytree(REPO / "test" / "input", inp)
    (inp / "csv_files" / "zz_missing_images.csv").write_text(BAD_CSV)
    assert predict(inp, root / "single") == EXIT_ROWS_FAILED  # the two bad rows
    folders = {"input": inp, "single": root / "single"}
    for i in range(SHARDS):
        folders[f"shard{i}"] = root / f"shard{i}"
        assert predict(inp, folders[f"shard{i}"], "--shard", f"{i}/{SHARDS}") in (0, EXIT_ROWS_FAILED)
    return folders


def shard_dirs(runs) -> list[Path]:
    return [runs[f"shard{i}"] for i in range(SHARDS)]


def parts(runs) -> list[Path]:
    return [next((d / PART_FOLDER).glob("*.json")) for d in shard_dirs(runs)]


def test_four_shards_merged_equal_one_run_byte_for_byte(runs, tmp_path):
    single = snapshot(runs["single"])
    for folder in shard_dirs(runs):  # a shard writes its masks and its part, never the JSON files
        assert not list(folder.glob("*.json"))
    out = tmp_path / "merged"
    assert merge(*shard_dirs(runs), "--output", out) == EXIT_ROWS_FAILED  # the failed rows are reported
    assert snapshot(out) == single
    compared = subprocess.run([sys.executable, str(REPO / "test" / "compare.py"), str(runs["single"]), str(out)],
                              capture_output=True, text=True, timeout=120)
    assert compared.returncode == 0, compared.stdout + compared.stderr


def test_shards_sharing_one_output_folder_merge_in_place(runs, tmp_path):
    shared = tmp_path / "shared"
    for folder in shard_dirs(runs):  # what N pods writing to one volume leave there
        shutil.copytree(folder, shared, dirs_exist_ok=True)
    assert len(list((shared / PART_FOLDER).iterdir())) == SHARDS
    assert merge(shared, "--output", shared) == EXIT_ROWS_FAILED
    assert snapshot(shared) == snapshot(runs["single"])  # the part files are gone too


def test_every_row_in_exactly_one_shard_whatever_the_csv_order(runs):
    rows, _ = read_rows(runs["input"])
    keys = [(r.csv_name, r.image_path, r.task_id) for r in rows]
    by_shard = [{(r.csv_name, r.image_path, r.task_id) for r in ShardRows(rows, Shard(i, SHARDS))}
                for i in range(SHARDS)]
    assert sorted(k for s in by_shard for k in s) == sorted(keys)
    assert [len(s) for s in by_shard] == [6, 15, 17, 18]  # pinned: parts of other versions must merge
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    assert all(shard_of(r, SHARDS) == i for i, s in enumerate(by_shard) for r in shuffled
               if (r.csv_name, r.image_path, r.task_id) in s)
    part_rows = [_part_rows(p) for p in parts(runs)]
    assert sorted(i for rows_ in part_rows for i in rows_) == list(range(len(rows)))


@pytest.mark.parametrize("text, environ, expected", [
    ("0/4", {}, Shard(0, 4)), (" 3/4 ", {}, Shard(3, 4)), ("auto/4", {INDEX_ENV: "2"}, Shard(2, 4)),
    ("0/1", {}, Shard(0, 1)), ("/3", {INDEX_ENV: "0"}, Shard(0, 3)),
])
def test_parse_shard(text, environ, expected):
    assert parse_shard(text, environ) == expected


@pytest.mark.parametrize("text, environ, message", [
    ("4/4", {}, "outside 0..3"), ("-1/4", {}, "outside 0..3"), ("1", {}, "expected I/N"),
    ("x/4", {}, "not a whole number"), ("1/0", {}, "at least 1"), ("auto/4", {}, INDEX_ENV),
    ("auto/4", {INDEX_ENV: "7"}, "outside 0..3"),
])
def test_bad_shard_values_are_refused(text, environ, message):
    with pytest.raises(ShardError, match=message):
        parse_shard(text, environ)


@pytest.mark.parametrize("value,reason", [("4/4", "outside 0..3"), ("5/4", "outside 0..3"),
                                          ("abc", "expected I/N"), ("1/x", "N must be a whole number")])
def test_a_malformed_shard_is_a_usage_error_before_the_model_loads(runs, tmp_path, capsys, monkeypatch, value, reason):
    import contract.manifest

    def no_model(*args, **kwargs):
        raise AssertionError("the model folder was opened before --shard was checked")

    monkeypatch.setattr(contract.manifest.ModelFolder, "open", no_model)
    with pytest.raises(SystemExit) as exit_info:
        predict(runs["input"], tmp_path / "out", "--shard", value)
    assert exit_info.value.code == 2  # the usage exit code, as --help says
    assert reason in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _part_rows(part: Path) -> list[int]:
    """The row indexes a part file lists (its ``{"rows": [...]}`` lines)."""
    lines = [json.loads(line) for line in part.read_text().splitlines()[1:]]
    return [i for line in lines if isinstance(line, dict) and "rows" in line for i in line["rows"]]


def _edited(part: Path, tmp_path: Path, name: str, rows: list[int] | None = None, lines: list[str] | None = None,
            **changes) -> Path:
    """A copy of ``part`` with header fields changed, its rows replaced, or its body lines replaced: a forged part
    whose header counts and end line agree with its body (so that merge's later checks are what refuses it)."""
    head, *body = part.read_text().splitlines()
    body = [line for line in body if not line.startswith('{"end"')]
    data = json.loads(head)
    if rows is not None:
        body = [json.dumps({"rows": rows})] + [line for line in body if not line.startswith('{"rows"')]
    body = body if lines is None else lines
    counts = {"rows": sum(len(json.loads(line)["rows"]) for line in body if line.startswith('{"rows"'))}
    for line in body:
        if line.startswith('["'):
            kind = line[2:line.index('"', 2)]
            counts[kind] = counts.get(kind, 0) + 1
    data["counts"] = {key: counts.get(key, 0) for key in data["counts"]}
    data.update(changes)
    return _with_end(tmp_path / name / PART_FOLDER / part.name, [json.dumps(data), *body])


def _with_end(target: Path, lines: list[str]) -> Path:
    """``lines`` written to ``target`` with the end line a shard writes (their count and sha256, the masks)."""
    text = "".join(line + "\n" for line in lines)
    masks = sum(len(json.loads(line)["masks"]) for line in lines[1:] if line.startswith('{"masks"'))
    end = {"end": {"lines": len(lines), "masks": masks, "sha256": hashlib.sha256(text.encode()).hexdigest()}}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text + json.dumps(end) + "\n")
    return target


def test_merge_refuses_parts_that_do_not_fit(runs, tmp_path, caplog):
    p = parts(runs)
    first = _part_rows(p[0])
    record_lines = [line for line in p[2].read_text().splitlines()[1:] if line.startswith("[")]
    cases = [
        (p[:3], "missing shard(s) 3/4"),
        ([*p, _edited(p[1], tmp_path, "copy", masks=[])], "shard 1/4 given twice"),
        ([_edited(p[0], tmp_path, "n", shards=5), *p[1:]], "shard count N"),
        ([_edited(p[0], tmp_path, "model", model_sha256="0" * 64), *p[1:]], "model (manifest sha256)"),
        ([_edited(p[0], tmp_path, "input", input_digest="0" * 64), *p[1:]], "input rows"),
        ([_edited(p[0], tmp_path, "overlap", rows=first + [_part_rows(p[1])[0]]), *p[1:]], "the parts overlap"),
        ([_edited(p[0], tmp_path, "short", rows=first[1:]), *p[1:]], "the parts hold"),
        ([*p[:2], _edited(p[2], tmp_path, "order", lines=[json.dumps({"rows": _part_rows(p[2])}),
                                                         *record_lines[::-1]]), p[3]], "not in row order"),
        ([*p[:2], _edited(p[2], tmp_path, "cut", lines=[json.dumps({"rows": _part_rows(p[2])}),
                                                       record_lines[0][:-5]]), p[3]], "line 3 is damaged"),
        ([_edited(p[0], tmp_path, "v2", version=2), *p[1:]], "part format version 2, this runtime reads 3; rerun"),
        ([tmp_path / "nowhere"], "no such part file"),
        ([runs["input"]], "holds no shards/part-"),
    ]
    for i, (given, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        caplog.clear()
        assert merge(*given, "--output", out) == EXIT_FATAL, message
        assert message in caplog.text
        assert not out.exists()  # nothing written when the parts do not fit


def test_shard_is_refused_for_a_grand_challenge_case(tmp_path, caplog):
    case = tmp_path / "case"
    case.mkdir()
    (case / "inputs.json").write_text("[]")
    assert predict(case, tmp_path / "out", "--shard", "0/2") == EXIT_FATAL
    assert "applies to the batch layout" in caplog.text


def test_merge_checks_every_part_whole(runs, tmp_path, caplog):
    """A part cut at a line boundary, changed after it was written, or whose header's counts differ from its body is
    refused naming the part, before anything is written."""
    p = parts(runs)
    lines = p[2].read_text().splitlines()
    head = json.loads(lines[0])
    forged = dict(head, counts={**head["counts"], "rows": head["counts"]["rows"] + 1})
    changed = [line.replace("0.", "0.9", 1) if line.startswith("[") else line for line in lines]
    cases = {
        "cut": ("\n".join(lines[:-3]) + "\n", "incomplete, it has no end line"),
        "changed": ("\n".join(changed) + "\n", "differ from what its end line says"),
    }
    for name, (text, message) in cases.items():
        target = tmp_path / name / PART_FOLDER / p[2].name
        target.parent.mkdir(parents=True)
        target.write_text(text)
        cases[name] = ([*p[:2], target, p[3]], message)
    cases["counts"] = ([*p[:2], _with_end(tmp_path / "counts" / PART_FOLDER / p[2].name,
                                         [json.dumps(forged), *[x for x in lines[1:] if not x.startswith('{"end"')]]),
                        p[3]], f"it promises {forged['counts']['rows']} rows, it holds {head['counts']['rows']}")
    for i, (given, message) in enumerate(cases.values()):
        caplog.clear()
        out = tmp_path / f"out{i}"
        assert merge(*given, "--output", out) == EXIT_FATAL, message
        assert message in caplog.text and str(given[2]) in caplog.text and "rerun that shard" in caplog.text
        assert not out.exists()


def test_merge_refuses_a_mix_of_precision_tta_strict_or_engine(runs, tmp_path, caplog):
    int8 = tmp_path / "int8"
    assert predict(runs["input"], int8, "--shard", f"0/{SHARDS}", "--precision", "int8") in (0, EXIT_ROWS_FAILED)
    p = parts(runs)
    [int8_part] = (int8 / PART_FOLDER).glob("*.json")
    assert json.loads(int8_part.read_text().splitlines()[0])["precision"] == "int8"
    cases = [
        ([int8_part, *p[1:]], "differs from the other parts in precision: 'int8', where 3 part(s) have 'fp32'"),
        ([_edited(p[0], tmp_path, "tta", tta="flip"), *p[1:]], "in test-time augmentation: 'flip'"),
        ([_edited(p[0], tmp_path, "strict", strict=True), *p[1:]], "in --strict: True"),
        ([_edited(p[0], tmp_path, "engine", engine="torch"), *p[1:]], "in engine: 'torch'"),
    ]
    for i, (given, message) in enumerate(cases):
        caplog.clear()
        out = tmp_path / f"out{i}"
        assert merge(*given, "--output", out) == EXIT_FATAL, message
        assert message in caplog.text and str(given[0]) in caplog.text
        assert not out.exists()


def test_merge_on_a_full_disk_says_to_run_the_merge_again(runs, tmp_path, monkeypatch, caplog):
    import errno
    import os

    from inference.outputs import writers

    shared = tmp_path / "shared"
    for folder in shard_dirs(runs):
        shutil.copytree(folder, shared, dirs_exist_ok=True)
    real = writers._atomic_write_bytes

    def full(target, data, durable=False):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writers, "_atomic_write_bytes", full)
    assert merge(shared, "--output", shared) == EXIT_FATAL
    assert "no space left" in caplog.text and "run the same merge command again" in caplog.text
    assert "--resume" not in caplog.text
    assert len(list((shared / PART_FOLDER).iterdir())) == SHARDS  # the parts stay until a merge succeeds
    monkeypatch.setattr(writers, "_atomic_write_bytes", real)
    assert merge(shared, "--output", shared) == EXIT_ROWS_FAILED
    assert snapshot(shared) == snapshot(runs["single"])
