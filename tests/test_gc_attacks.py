"""The Grand-Challenge per-case layout under attack: a kill at any moment, a full disk, a damaged graph, a symbolic
link in the output folder, a huge image. Each ends with exit 1 and one message, or the expected output; never a
partial file, never a write outside the output folder."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from contract.manifest import load_manifest
from inference.cli import main
from inference.layouts import case as case_module

REPO = Path(__file__).resolve().parent.parent
SEG_CASE = REPO / "test" / "gc" / "seg_fetal_head" / "input"
CLS_CASE = REPO / "test" / "gc" / "cls_fetal_plane_cls_rgb" / "input"
MASK = "images/segmentation-mask/output.mha"
# python -m inference with the case's write slowed (50 ms per step), so kills land while it writes
SLOW_CASE = """
import sys, time
from inference.layouts import case
for name in ("_write_mask", "_publish"):
    real = getattr(case, name)
    def slow(*args, _real=real, **kwargs):
        time.sleep(0.05)
        result = _real(*args, **kwargs)
        time.sleep(0.05)
        return result
    setattr(case, name, slow)
from inference.cli import main
sys.exit(main(sys.argv[1:]))
"""


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run(case: Path, out: Path, model: Path, *flags: str) -> int:
    return main(["--input", str(case), "--output", str(out), "--weights", str(model), *flags])


def fails(case: Path, out: Path, model: Path, caplog, *flags: str) -> str:
    """Exit 1 with one error line; no file of the case in ``out`` (and no staging folder, lock or temporary)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="inference"):
        assert run(case, out, model, *flags) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert [p for p in out.rglob("*") if not p.is_dir()] == [], "partial output left behind"
    return errors[0]


@pytest.fixture(scope="module")
def expected(tiny_model_dir, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("gc_expected") / "out"
    assert run(SEG_CASE, out, tiny_model_dir) == 0
    assert list(files(out)) == [MASK]
    return files(out)


def test_kills_at_any_moment_leave_nothing_partial_and_a_rerun_completes(tiny_model_dir, expected, tmp_path):
    rng = random.Random(24)
    for trial in range(5):  # kills before, during and after the write (which, varies with the machine's speed)
        out = tmp_path / f"out{trial}"
        proc = subprocess.Popen([sys.executable, "-c", SLOW_CASE, "--input", str(SEG_CASE), "--output", str(out),
                                 "--weights", str(tiny_model_dir)], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # the output folder appears once the case is predicted: the writing starts
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.wait(timeout=60)
        found = files(out) if out.exists() else {}
        socket = {k: v for k, v in found.items() if not k.startswith(".")}  # staging folder, lock file aside
        assert socket in ({}, expected), f"trial {trial}: partial output {sorted(found)}"
        assert run(SEG_CASE, out, tiny_model_dir) == 0
        assert files(out) == expected  # no staging folder, lock or temporary left


def test_a_full_disk_while_writing_leaves_no_partial_file(tiny_model_dir, tmp_path, monkeypatch, caplog):
    real_write = case_module._write_value

    def write_value(target, prediction, case):
        real_write(target, prediction, case)
        with target.open("r+b") as handle:  # the disk filled up half way through the file
            handle.truncate(target.stat().st_size // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(case_module, "_write_value", write_value)
    message = fails(CLS_CASE, tmp_path / "out", tiny_model_dir, caplog)
    assert "classification-prediction" in message and "No space left" in message


@pytest.fixture
def small_tmpfs(tmp_path):
    mount_point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_disk_is_refused_with_the_bytes_needed(tiny_model_dir, small_tmpfs, expected, caplog):
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"x" * (256 - 32) * 1024)
    out = small_tmpfs / "out"
    message = fails(SEG_CASE, out, tiny_model_dir, caplog)
    assert "no space left" in message and "bytes needed" in message
    filler.unlink()
    assert run(SEG_CASE, out, tiny_model_dir) == 0 and files(out) == expected


def _model_copy(tiny_model_dir: Path, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    graphs = load_manifest(model).graph_sets["fp32"].graphs
    return model, {name: model / graph.path for name, graph in graphs.items()}


@pytest.mark.parametrize("flags", [[], ["--no-verify-hashes"]], ids=["hashes", "no-hashes"])
@pytest.mark.parametrize("damage", ["garbage head", "another task's head", "cut encoder"])
def test_a_damaged_graph_fails_the_case_with_one_message(tiny_model_dir, tmp_path, caplog, flags, damage):
    model, graphs = _model_copy(tiny_model_dir, tmp_path)
    if damage == "garbage head":
        graphs["head.fetal_head"].write_bytes(b"not an ONNX graph")
    elif damage == "another task's head":
        shutil.copyfile(graphs["head.lung"], graphs["head.fetal_head"])
    else:
        graphs["encoder"].write_bytes(graphs["encoder"].read_bytes()[:1000])
    message = fails(SEG_CASE, tmp_path / "out", model, caplog, *flags)
    graph = "encoder" if damage == "cut encoder" else "fetal_head"
    assert graph in message
    if not flags:
        assert "sha256 differs" in message
    elif damage == "another task's head":
        assert "the manifest lists fetal_head.logits" in message


def test_a_symbolic_link_in_the_output_folder_redirects_nothing(tiny_model_dir, expected, tmp_path, caplog):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "images").symlink_to(outside, target_is_directory=True)
    caplog.set_level(logging.ERROR)
    assert run(SEG_CASE, out, tiny_model_dir) == 1
    assert "symbolic link" in caplog.text and "segmentation-mask" in caplog.text
    assert list(outside.rglob("*")) == []  # nothing written through the link
    assert sorted(p.name for p in out.iterdir()) == ["images"]  # the link itself, nothing staged left
    (out / "images").unlink()
    decoy = tmp_path / "decoy.mha"
    decoy.write_bytes(b"not to be overwritten")
    (out / "images/segmentation-mask").mkdir(parents=True)
    (out / MASK).symlink_to(decoy)  # the output file itself a link: replaced, its target untouched
    assert run(SEG_CASE, out, tiny_model_dir) == 0
    assert decoy.read_bytes() == b"not to be overwritten" and not (out / MASK).is_symlink()
    assert files(out) == expected


def test_a_huge_image_is_refused_before_its_pixels_are_read(tiny_model_dir, tmp_path, caplog):
    case = tmp_path / "case"
    shutil.copytree(SEG_CASE, case)
    [image] = (case / "images/ultrasound-image").iterdir()
    image.write_text("ObjectType = Image\nNDims = 2\nDimSize = 60000 60000\nElementType = MET_UCHAR\n"
                     "ElementDataFile = LOCAL\n" + "\0" * 16)
    started = time.perf_counter()
    message = fails(case, tmp_path / "out", tiny_model_dir, caplog)
    assert "60000 x 60000 pixels" in message and "more than the" in message and "socket ultrasound-image" in message
    assert time.perf_counter() - started < 30  # 3.6 GB were never allocated


def test_running_out_of_memory_is_one_clear_message(tiny_model_dir, tmp_path, monkeypatch, caplog):
    from inference.engines.predictor import Predictor

    def predict(self, task_id, images):
        raise MemoryError()

    monkeypatch.setattr(Predictor, "predict", predict)
    message = fails(SEG_CASE, tmp_path / "out", tiny_model_dir, caplog)
    assert "out of memory" in message and "fetal_head" in message
    assert json.loads((SEG_CASE / "task-id.json").read_text()) == "fetal_head"
