"""The built image run as the platform runs it: no network, read-only /input, non-root user.

Needs a usable container engine (scripts/container_engine.sh) and the built image
($FMC_IMAGE, default fmc-uia:latest; build it with scripts/build_image.sh). Without them
these tests skip, except under CI=true or REQUIRE_CONTAINER=1, where they fail.
Every run uses --network none and a read-only root filesystem (only /output and /tmp are
writable), so a write anywhere else or a network attempt shows up as a failure.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract.tasks import TaskKind, TaskRegistry

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("FMC_IMAGE", "fmc-uia:latest")
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("REQUIRE_CONTAINER") == "1"
OTHER_USER = "4242:4242"

# One row per kind: (task_id, image file under /input, (height, width), colour).
ROWS = [
    ("breast_lesion", "Segmentation/Two/breast_lesion/IMAGES/case_a.png", (96, 120), False),
    ("breast_2cls", "Classification/breast_2cls/case_b.jpg", (70, 90), True),
    ("thyroid_nodule_det", "Detection/thyroid_nodule_det/case_c.bmp", (64, 80), False),
    ("fetal_femur", "Regression/fetal_femur/case_d.png", (100, 75), True),
]
NETWORK_TRACES = re.compile(
    r"socket|connection (refused|error|reset|aborted)|name resolution|name or service not known|"
    r"network is unreachable|max retries|retrying|urlopen|https?://",
    re.IGNORECASE,
)


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (a container engine is required: CI=true or REQUIRE_CONTAINER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def engine() -> list[str]:
    """The engine's command line, once the image is known to exist."""
    found = subprocess.run(
        ["bash", str(ROOT / "scripts/container_engine.sh")], capture_output=True, text=True
    )
    if found.returncode != 0:
        _unavailable(found.stderr.strip() or "no usable container engine")
    command = shlex.split(found.stdout)
    inspect = subprocess.run([*command, "image", "inspect", IMAGE], capture_output=True)
    if inspect.returncode != 0:
        _unavailable(f"no image {IMAGE}: build it with scripts/build_image.sh")
    return command


def run_image(
    engine: list[str], *options: str, args: tuple[str, ...] = (), entrypoint: str | None = None
) -> subprocess.CompletedProcess[str]:
    """One `run` of the image, stdout and stderr together in ``.stdout``."""
    command = [*engine, "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp"]
    if entrypoint is not None:
        command += ["--entrypoint", entrypoint]
    return subprocess.run(
        [*command, *options, IMAGE, *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )


def _open_up(folder: Path, mode: int) -> Path:
    """pytest's temporary folders are private; the container's user must reach them."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(mode if path.is_dir() else 0o644)
    return folder


def _output_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    return _open_up(tmp_path_factory.mktemp(name), 0o777)


def _remove_as(engine: list[str], folder: Path, user: str) -> None:
    """Files the container made under another uid are removed by that uid (non-root hosts)."""
    if os.getuid() != 0:
        run_image(engine, "--user", user, "-v", f"{folder}:/o",
                  entrypoint="find", args=("/o", "-mindepth", "1", "-delete"))


@pytest.fixture(scope="module")
def sample_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A four-row input folder in the challenge layout, one row per task kind."""
    root = tmp_path_factory.mktemp("input")
    registry = TaskRegistry.official()
    rng = np.random.default_rng(7)
    rows = []
    for task_id, relative, (height, width), colour in ROWS:
        spec = registry[task_id]
        image = rng.integers(0, 256, (height, width, 3) if colour else (height, width), np.uint8)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), image), path
        mask = ""
        if spec.kind is TaskKind.SEGMENTATION:
            mask = "../" + relative.replace("/IMAGES/", "/MASKS/")
        rows.append({"image_path": "../" + relative, "task_id": task_id,
                     "task_name": spec.kind.value, "num_classes": spec.num_classes,
                     "mask_path": mask})
    (root / "csv_files").mkdir()
    with open(root / "csv_files" / "sample.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return _open_up(root, 0o755)


@pytest.fixture(scope="module")
def other_user_run(engine, sample_input, tmp_path_factory):
    """The sample run under a uid the image does not know, as Grand-Challenge may do."""
    output = _output_folder(tmp_path_factory, "output")
    result = run_image(engine, "--user", OTHER_USER,
                       "-v", f"{sample_input}:/input:ro", "-v", f"{output}:/output")
    yield result, output
    _remove_as(engine, output, OTHER_USER)


def _has_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout, result.stdout


def test_help_prints_the_usage(engine):
    result = run_image(engine, args=("--help",))
    assert result.returncode == 0, result.stdout
    assert "--input" in result.stdout and "--output" in result.stdout


def test_default_model_is_baked_in(engine):
    result = run_image(engine, entrypoint="sh",
                       args=("-c", 'cat "$FMC_MODEL_DIR/manifest.json"'))
    assert result.returncode == 0, f"no default model in the image: {result.stdout}"
    assert isinstance(json.loads(result.stdout), dict)


def test_missing_input_is_one_clear_error(engine, tmp_path_factory):
    output = _output_folder(tmp_path_factory, "out-noinput")
    result = run_image(engine, "-v", f"{output}:/output")
    assert result.returncode == 1, result.stdout
    _has_no_traceback(result)
    assert "/input" in result.stdout


def test_empty_input_is_one_clear_error(engine, tmp_path_factory):
    empty = _open_up(tmp_path_factory.mktemp("empty"), 0o755)
    output = _output_folder(tmp_path_factory, "out-empty")
    result = run_image(engine, "-v", f"{empty}:/input:ro", "-v", f"{output}:/output")
    assert result.returncode == 1, result.stdout
    _has_no_traceback(result)
    assert re.search(r"input|csv", result.stdout, re.IGNORECASE), result.stdout
    assert not any(output.iterdir()), "a failed run must leave /output empty"


def test_read_only_output_is_one_clear_error(engine, sample_input, tmp_path_factory):
    output = _output_folder(tmp_path_factory, "out-readonly")
    result = run_image(engine, "-v", f"{sample_input}:/input:ro", "-v", f"{output}:/output:ro")
    assert result.returncode == 1, result.stdout
    _has_no_traceback(result)
    assert "output" in result.stdout.lower(), result.stdout


def test_model_at_opt_ml_model_overrides_the_default(engine, sample_input, tmp_path_factory):
    """Grand-Challenge unpacks a model tarball at /opt/ml/model: a broken one must be used
    (and reported), not silently replaced by the baked-in model."""
    model = tmp_path_factory.mktemp("model")
    (model / "manifest.json").write_text("{}")
    _open_up(model, 0o755)
    output = _output_folder(tmp_path_factory, "out-mlmodel")
    result = run_image(engine, "-v", f"{sample_input}:/input:ro", "-v", f"{output}:/output",
                       "-v", f"{model}:/opt/ml/model:ro")
    assert result.returncode == 1, result.stdout
    _has_no_traceback(result)
    assert "/opt/ml/model" in result.stdout, result.stdout


def test_another_uid_predicts_every_row(other_user_run, sample_input):
    result, output = other_user_run
    assert result.returncode == 0, result.stdout
    for kind, name in [("classification", "classification_predictions.json"),
                       ("detection", "detection_predictions.json"),
                       ("Regression", "regression_predictions.json")]:
        records = json.loads((output / name).read_text())
        expected = [("../" + rel, task) for task, rel, _, _ in ROWS
                    if TaskRegistry.official()[task].kind.value == kind]
        assert [(r["image_path"], r["task_id"]) for r in records] == expected
    mask = cv2.imread(str(output / "Segmentation/Two/breast_lesion/MASKS/case_a.png"),
                      cv2.IMREAD_UNCHANGED)
    assert mask is not None and mask.shape == ROWS[0][2] and mask.dtype == np.uint8
    assert int(mask.max()) < TaskRegistry.official()["breast_lesion"].num_classes
    # The platform reads /output as another user: every file must be readable by others.
    private = [str(p.relative_to(output)) for p in output.rglob("*")
               if p.is_file() and not p.stat().st_mode & 0o004]
    assert not private, f"output files not world-readable: {private}"


def test_no_network_is_attempted(other_user_run):
    result, _ = other_user_run
    traces = [line for line in result.stdout.splitlines() if NETWORK_TRACES.search(line)]
    assert not traces, traces
