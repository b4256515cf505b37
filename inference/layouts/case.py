"""The Grand-Challenge layout: one case per job (``INPUT/inputs.json``), one output socket per task kind.

Inputs and the image conversion rule: see ``inference.layouts.case_inputs``. Outputs (only the
one socket of the case's task kind is written):

========================== ============== ================================================ ============================================
socket slug                kind           file                                             content
========================== ============== ================================================ ============================================
segmentation-mask          image          ``/output/images/segmentation-mask/output.mha``  uint8 label image (0 background, class
                                                                                           index), the input's size, spacing, origin
                                                                                           and direction; zlib-compressed
classification-prediction  JSON value     ``/output/classification-prediction.json``       ``{"task_id", "predicted_class",
                                                                                           "predicted_probs"}``
detection-prediction       JSON value     ``/output/detection-prediction.json``            ``{"task_id", "bbox_normalized",
                                                                                           "bbox_pixels"}`` (x_min, y_min, x_max, y_max)
keypoint-prediction        JSON value     ``/output/keypoint-prediction.json``             ``{"task_id", "predicted_points_normalized",
                                                                                           "predicted_points_pixels"}`` (x1, y1, ...)
========================== ============== ================================================ ============================================

The values are those of the batch layout's records (same decoding, same pydantic
validation), without ``image_path``. The case is read, the engine started and the image
predicted before the output folder is touched; then the folder is locked like any run's
(``inference.startup.claim_output``), the file written into a staging folder inside it and
moved into place, its folders opened without following symbolic links. On any error the
staging folder is removed, so ``/output`` holds no partial files (a staging folder a kill
left behind is removed by the next case). A failed case is fatal (exit code 1) with one
message naming the socket and file: an unreadable or too large image, a damaged graph of its
task, a full disk, a symbolic link in the output folder, running out of memory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
from contextlib import suppress
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from contract.atomic import UnsafePathError
from inference.bookkeeping.lock import Holder
from inference.errors import EngineError, FatalError
from inference.layouts.case_inputs import INPUTS_JSON, Case, CaseImage, read_case
from inference.options import RunOptions, RunSummary
from inference.startup import claim_output
from contract.manifest import ModelFolder
from contract.kinds import KIND_SPECS, Prediction, spec_of
from contract.tasks import TaskKind

log = logging.getLogger(__name__)

NAME = "grand-challenge"
MASK_FILE_NAME = "output.mha"
OUTPUT_SLUGS: dict[TaskKind, str] = {kind: spec.gc_socket for kind, spec in KIND_SPECS.items()}
STAGING_PREFIX = ".gc-staging-"


def detect(input_dir: Path) -> bool:
    """``inputs.json`` present, or an ``images/`` folder without the batch layout's ``csv_files/``."""
    root = Path(input_dir)
    return (root / INPUTS_JSON).is_file() or ((root / "images").is_dir() and not (root / "csv_files").is_dir())


def output_relative_path(kind: TaskKind) -> str:
    """Where the output socket of ``kind`` goes, relative to the output folder."""
    slug = OUTPUT_SLUGS[kind]
    return f"images/{slug}/{MASK_FILE_NAME}" if spec_of(kind).writes_mask else f"{slug}.json"


def _write_mask(target: Path, mask, image: CaseImage) -> None:
    import SimpleITK as sitk

    reference = image.reference
    if reference is not None and reference.GetDimension() == 3:
        result = sitk.GetImageFromArray(mask[None])  # keep the input's single-slice 3D shape
    else:
        result = sitk.GetImageFromArray(mask)
    if reference is not None:
        result.CopyInformation(reference)
    target.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(result, str(target), useCompression=True)


def _write_value(target: Path, prediction: Prediction, case: Case) -> None:
    image_path = case.image.path.relative_to(case.input_dir.resolve()).as_posix()
    record = prediction.record(image_path, case.task_id)  # pydantic validation of the batch layout
    payload = record.model_dump(mode="json", exclude={"image_path"})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _publish(staging: Path, output_dir: Path) -> list[Path]:
    """Move every staged file into place, folders opened one by one without following symbolic links (a
    link in the output folder redirects nothing); on failure undo what was moved (files and new folders)."""
    moved: list[tuple[int, str, Path]] = []  # (folder descriptor, name, path) of each file moved
    created: list[tuple[int, str]] = []  # (parent descriptor, name) of each folder made, outermost first
    descriptors: list[int] = []
    root = os.open(output_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    descriptors.append(root)
    try:
        for source in sorted(p for p in staging.rglob("*") if p.is_file()):
            parts = source.relative_to(staging).parts
            folder = root
            for depth, name in enumerate(parts[:-1]):
                with suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=folder)
                    created.append((folder, name))
                try:
                    folder = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        where = output_dir / Path(*parts[:depth + 1])
                        raise UnsafePathError(exc.errno, f"{where} is a symbolic link or not a folder; nothing is "
                                                         "written through it") from exc
                    raise
                descriptors.append(folder)
            os.replace(source, parts[-1], dst_dir_fd=folder)
            moved.append((folder, parts[-1], output_dir / Path(*parts)))
    except OSError:
        for folder, name, _ in reversed(moved):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=folder)
        for parent, name in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent)
        raise
    finally:
        for fd in descriptors:
            os.close(fd)
    return [path for _, _, path in moved]


def remove_stale_staging(output_dir: Path) -> None:
    """Staging folders left by a killed case (called while the case holds the output folder alone)."""
    for stale in output_dir.glob(f"{STAGING_PREFIX}*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
            log.info("removed %s, left by an interrupted run", stale)


def run(options: RunOptions, folder: ModelFolder) -> RunSummary:
    from inference.engines.factory import make_engine
    from inference.engines.predictor import Predictor

    manifest = folder.manifest
    started = time.perf_counter()
    case = read_case(options.input_dir, check_task=manifest.task)
    task = manifest.task(case.task_id)
    log.info("case: task %s (%s), image %s, %d x %d", case.task_id, task.kind.value, case.image.path,
             case.image.rgb.shape[1], case.image.rgb.shape[0])
    engine = make_engine(folder, options.engine, options.device, options.precision, options.threads, options.tta,
                         verify_hashes=options.verify_hashes, expected_images=1)
    # No engine.start(): the one prediction checks the same (device, precision, the graphs on the case's path,
    # FatalError when one is damaged) before anything is written, and the graph files' hashes then finish beside
    # the model run instead of after each session is made (about 14 ms of a 0.4 s cold start).
    try:
        [prediction] = Predictor(folder, engine).predict(case.task_id, [case.image.rgb])
    except EngineError as exc:  # e.g. the case's head is damaged: one case, so the job fails
        raise FatalError(f"task {case.task_id}: the model cannot predict {case.image.path}: {exc}") from exc
    except ValueError as exc:  # the model's output cannot be decoded (non-finite values and the like)
        raise FatalError(f"task {case.task_id}: the model's output for {case.image.path} is unusable: {exc}") from exc
    except MemoryError as exc:
        raise FatalError(f"task {case.task_id}: out of memory predicting {case.image.path} "
                         f"({case.image.rgb.shape[1]} x {case.image.rgb.shape[0]} pixels)") from exc

    output_dir = Path(options.output_dir)
    with claim_output(output_dir, Holder("Grand-Challenge case")):
        remove_stale_staging(output_dir)
        written = _write_outputs(prediction, case, task.kind, output_dir.resolve())
    for path in written:
        log.info("wrote %s", path)
    return RunSummary(layout=NAME, rows=1, predicted=Counter({case.task_id: 1}), engine=engine.description,
                      seconds=time.perf_counter() - started)


def _write_outputs(prediction: Prediction, case: Case, kind: TaskKind, output_dir: Path) -> list[Path]:
    """The case's socket file, written in a staging folder and moved into place; FatalError naming the socket."""
    relative = output_relative_path(kind)
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir))
    except OSError as exc:
        raise FatalError(f"output socket {OUTPUT_SLUGS[kind]}: cannot write in {output_dir}: {exc}") from exc
    try:
        if spec_of(kind).writes_mask:
            _write_mask(staging / relative, prediction.mask, case.image)
        else:
            _write_value(staging / relative, prediction, case)
        return _publish(staging, output_dir)
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:  # RuntimeError: SimpleITK's write errors
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise FatalError(f"output socket {OUTPUT_SLUGS[kind]}: cannot write {output_dir / relative}: {reason}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
