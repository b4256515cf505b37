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
validation), without ``image_path``. Everything is written into a staging folder
inside the output folder and moved into place only when the whole case succeeded;
on any error the staging folder is removed, so ``/output`` holds no partial files.
A failed case is fatal (exit code 1) with one message naming the socket and file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from inference.errors import FatalError
from inference.layouts.case_inputs import INPUTS_JSON, Case, CaseImage, read_case
from inference.options import RunOptions, RunSummary
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
    """Move every staged file into place; on failure undo what was moved (files and new folders)."""
    moved: list[Path] = []
    created: list[Path] = []
    try:
        for source in sorted(p for p in staging.rglob("*") if p.is_file()):
            target = output_dir / source.relative_to(staging)
            missing = [d for d in reversed(target.parents) if d != output_dir and output_dir in d.parents
                       and not d.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            created.extend(missing)
            os.replace(source, target)
            moved.append(target)
    except OSError:
        for path in moved:
            path.unlink(missing_ok=True)
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
    return moved


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
    try:
        [prediction] = Predictor(folder, engine).predict(case.task_id, [case.image.rgb])
    except ValueError as exc:  # the model's output cannot be decoded (non-finite values and the like)
        raise FatalError(f"task {case.task_id}: the model's output for {case.image.path} is unusable: {exc}") from exc

    output_dir = Path(options.output_dir).resolve()
    relative = output_relative_path(task.kind)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir))
    try:
        if spec_of(task.kind).writes_mask:
            _write_mask(staging / relative, prediction.mask, case.image)
        else:
            _write_value(staging / relative, prediction, case)
        written = _publish(staging, output_dir)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: SimpleITK's write errors
        raise FatalError(f"output socket {OUTPUT_SLUGS[task.kind]}: cannot write {output_dir / relative}: "
                         f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for path in written:
        log.info("wrote %s", path)
    return RunSummary(layout=NAME, rows=1, predicted=Counter({case.task_id: 1}), engine=engine.description,
                      seconds=time.perf_counter() - started)
