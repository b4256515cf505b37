"""The upload step (scripts/package_submission.sh, scripts/zip_predictions.py): the organisers' run line,
predictions.zip exactly as `cd OUT && zip -r predictions.zip .` without the run's bookkeeping, the
saved image and its sha256.

Without a container engine the run line is checked against a fake engine (a script that records its
arguments and writes a finished run's files); with one (the `container` mark) the real image runs.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INPUT, EXPECTED = ROOT / "test" / "input", ROOT / "test" / "expected_output"
SCRIPT, ZIPPER = ROOT / "scripts" / "package_submission.sh", ROOT / "scripts" / "zip_predictions.py"
IMAGE = "localhost/fmc-test:1"

FAKE_ENGINE = r"""#!/usr/bin/env bash
# A container engine for tests: records each call; `run` fills the /output mount as a finished run would
# (plus a stale .fmc-run.lock, as a killed earlier run can leave), `save` prints a stand-in image.
echo "$*" >>"$FAKE_LOG"
case "$1" in
    --version) echo "Docker version 0.0-fake" ;;
    info) ;;
    image) [ "$2" = inspect ] && [ "$3" = "$FAKE_IMAGE" ] || exit 1 ;;
    run) shift; out=""
         while [ $# -gt 0 ]; do
             if [ "$1" = -v ] && [ "${2%:/output}" != "$2" ]; then out=${2%:/output}; fi; shift
         done
         if [ -n "${FAKE_FAIL:-}" ]; then echo "inference: ERROR: simulated failure" >&2; exit 3; fi
         cp -r "$FAKE_RESULT"/. "$out"/ && touch "$out/.fmc-run.lock" && echo "2 rows done" ;;
    save) printf 'image %s' "$2" ;;
    *) exit 1 ;;
esac
"""


def expected_names(folder: Path) -> list[str]:
    """What `cd folder && zip -r x.zip .` stores, less .fmc-*: folders as NAME/, files, relative paths."""
    names = []
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        rel = Path(base).relative_to(folder).as_posix()
        prefix = "" if rel == "." else rel + "/"
        names += [prefix] if prefix else []
        names += [prefix + f for f in sorted(files) if not (not prefix and f.startswith(".fmc-"))]
    return names


@pytest.fixture
def engine(tmp_path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "fake-docker"
    fake.write_text(FAKE_ENGINE)
    fake.chmod(0o755)
    no_gpu = bin_dir / "nvidia-smi"  # deterministic: no GPU unless a test says otherwise
    no_gpu.write_text("#!/bin/sh\nexit 1\n")
    no_gpu.chmod(0o755)
    return {**os.environ, "CONTAINER_ENGINE": str(fake), "FAKE_LOG": str(tmp_path / "engine.log"),
            "FAKE_IMAGE": IMAGE, "FAKE_RESULT": str(EXPECTED), "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PYTHON": sys.executable}


def _package(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def _runs(tmp_path: Path) -> list[str]:
    return [line for line in (tmp_path / "engine.log").read_text().splitlines() if line.startswith("run ")]


def test_one_command_runs_the_organisers_line_zips_and_saves(engine, tmp_path):
    dist = tmp_path / "dist"
    result = _package(engine, "--image", IMAGE, "--out", str(dist), str(INPUT))
    assert result.returncode == 0, result.stderr
    [run] = _runs(tmp_path)
    staging = run.split(" -v ")[2].split(":/output")[0]
    assert run == f"run --rm -v {INPUT}:/input/:ro -v {staging}:/output {IMAGE}"  # the organisers' line, no GPU here
    assert Path(staging).parent == dist and not Path(staging).exists()  # run in a fresh folder, then moved in place
    # the zip: exactly the output folder's files and folders, relative, without the run's .fmc-* file
    assert (dist / "output" / ".fmc-run.lock").is_file()
    with zipfile.ZipFile(dist / "predictions.zip") as archive:
        assert archive.namelist() == expected_names(EXPECTED)
        assert not any(".fmc-" in name for name in archive.namelist())
        for name in archive.namelist():
            if not name.endswith("/"):
                assert archive.read(name) == (EXPECTED / name).read_bytes(), name
    # the saved image and its sha256, checkable with sha256sum -c
    saved = dist / "fmc-test.tar.gz"
    assert gzip.decompress(saved.read_bytes()) == f"image {IMAGE}".encode()
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    assert (dist / "fmc-test.tar.gz.sha256").read_text() == f"{digest}  fmc-test.tar.gz\n"
    assert subprocess.run(["sha256sum", "-c", "fmc-test.tar.gz.sha256"], cwd=dist, capture_output=True).returncode == 0
    assert sorted(p.name for p in dist.iterdir()) == ["fmc-test.tar.gz", "fmc-test.tar.gz.sha256", "output",
                                                      "output.log", "predictions.zip"]
    assert f"run: {engine['CONTAINER_ENGINE']} run --rm -v {INPUT}:/input/:ro" in result.stderr
    assert result.stderr.rstrip().endswith(f"upload {dist}/predictions.zip to Codabench (validation phase); send "
                                           f"{dist}/fmc-test.tar.gz and its sha256 to the organisers")


def test_a_visible_gpu_adds_gpus_all_as_the_organisers_do(engine, tmp_path):
    (Path(engine["PATH"].split(":")[0]) / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: fake'\n")
    assert _package(engine, "--image", IMAGE, "--out", str(tmp_path / "dist"), "--no-save", str(INPUT)).returncode == 0
    [run] = _runs(tmp_path)
    assert run.startswith(f"run --gpus all --rm -v {INPUT}:/input/:ro -v ")
    assert not (tmp_path / "dist" / "fmc-test.tar.gz").exists()  # --no-save


def test_a_failed_run_leaves_no_archive(engine, tmp_path):
    dist = tmp_path / "dist"
    assert _package(engine, "--image", IMAGE, "--out", str(dist), "--no-save", str(INPUT)).returncode == 0
    before = expected_names(dist / "output")
    result = _package({**engine, "FAKE_FAIL": "1"}, "--image", IMAGE, "--out", str(dist), "--no-save", str(INPUT))
    assert result.returncode == 1
    assert "FAIL: the run exited with 3" in result.stderr and "simulated failure" in result.stderr
    assert not (dist / "predictions.zip").exists()  # the earlier archive is gone: it is not this run's
    assert expected_names(dist / "output") == before  # the earlier output stays, nothing staged is left
    assert sorted(p.name for p in dist.iterdir()) == ["output", "output.log"]


@pytest.mark.parametrize("args, code, message", [
    ([], 2, "VALIDATION_DIR is required"),
    (["--bogus", "x"], 2, "unknown option --bogus"),
    ([str(ROOT / "test")], 2, "csv_files is not a folder"),
    (["--image", "localhost/absent:1", str(INPUT)], 1, "no image localhost/absent:1; build it first"),
])
def test_usage_and_setup_errors(engine, tmp_path, args, code, message):
    result = _package(engine, "--out", str(tmp_path / "dist"), *args)
    assert result.returncode == code and message in result.stderr, result.stderr


def _zip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ZIPPER), *args], capture_output=True, text=True, timeout=120)


def test_zip_leaves_out_bookkeeping_and_temporaries_only(tmp_path):
    out = tmp_path / "out"
    shutil.copytree(EXPECTED, out)
    (out / ".fmc-run.shard1.lock").write_text("")
    (out / "Segmentation" / ".x.png.abcd1234.tmp").write_bytes(b"half")
    (out / ".hidden-by-the-team").write_text("kept: zip -r keeps dot files")
    result = _zip(str(out), str(out / "predictions.zip"))  # inside the folder, as `cd OUT && zip -r` puts it
    assert result.returncode == 0, result.stderr
    assert "left out the run's own .fmc-run.shard1.lock, Segmentation/.x.png.abcd1234.tmp" in result.stdout
    names = zipfile.ZipFile(out / "predictions.zip").namelist()
    assert ".hidden-by-the-team" in names and "predictions.zip" not in names
    assert not any(".fmc-" in n or n.endswith(".tmp") for n in names)
    if shutil.which("zip"):  # the organisers' own command gives the same list (order aside)
        subprocess.run(["zip", "-qr", str(tmp_path / "ref.zip"), ".", "-x", ".fmc-*", "*.tmp", "predictions.zip"], cwd=out, check=True)
        assert sorted(zipfile.ZipFile(tmp_path / "ref.zip").namelist()) == sorted(names)


def test_zip_refuses_an_unfinished_run_and_a_folder_without_predictions(tmp_path):
    out = tmp_path / "out"
    shutil.copytree(EXPECTED, out)
    (out / ".fmc-journal.jsonl").write_text("{}\n")
    result = _zip(str(out), str(tmp_path / "p.zip"))
    assert result.returncode == 1 and "the run did not finish (.fmc-journal.jsonl is still there)" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _zip(str(empty), str(tmp_path / "p.zip"))
    assert result.returncode == 1 and "not a run's output folder" in result.stderr
    assert not (tmp_path / "p.zip").exists()
    assert _zip(str(tmp_path / "nope"), str(tmp_path / "p.zip")).returncode == 2


@pytest.mark.container
def test_the_built_image_packaged_for_real(tmp_path):
    """With a container engine and the built image: the real run line, the real outputs, zipped."""
    check = subprocess.run([str(ROOT / "scripts" / "container_engine.sh")], capture_output=True, text=True)
    image = os.environ.get("FMC_IMAGE", "fmc-uia:latest")
    required = os.environ.get("CI") == "true" or os.environ.get("REQUIRE_CONTAINER") == "1"
    if check.returncode != 0:
        if required:
            pytest.fail(f"a container engine is required here: {check.stderr}")
        pytest.skip("no usable container engine")
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run([str(SCRIPT), "--image", image, "--out", str(tmp_path / "dist"), "--no-save", str(INPUT)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    names = zipfile.ZipFile(tmp_path / "dist" / "predictions.zip").namelist()
    assert names == expected_names(tmp_path / "dist" / "output")
    assert set(names) == set(expected_names(EXPECTED)) and not any(".fmc-" in n for n in names)
