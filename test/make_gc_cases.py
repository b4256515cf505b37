#!/usr/bin/env python3
"""Build the Grand-Challenge sample cases under test/gc/ from phantom images, and their expected outputs.

    python test/make_gc_cases.py                  (re)build test/gc/<case>/input/ for every case
    python test/make_gc_cases.py --expected       run the model on each case into test/gc/<case>/expected_output/
                                                  (default model: model_weights/; --weights DIR for another)

Each case is one job of the platform: input/inputs.json, input/task-id.json and one image in
input/images/ultrasound-image/. The cases cover every task kind and the image formats and pixel
types the runtime accepts (see inference/layouts/case_inputs.py), and both ``socket`` and ``interface``
spellings of inputs.json. Images are phantoms (python -m phantoms), downscaled to keep files small.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from phantoms import render_sample  # noqa: E402

GC_DIR = ROOT / "test" / "gc"
SEED = 2026
MAX_SIDE = 320


@dataclass(frozen=True)
class CaseSpec:
    name: str
    task_id: str
    file_name: str  # in images/ultrasound-image/
    pixels: str  # grey8 | rgb8 | grey16 | float_db
    style: str  # how inputs.json names sockets: socket-object | interface-object | socket-string
    spacing: tuple[float, ...] = (1.0, 1.0)
    origin: tuple[float, ...] = (0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 1.0)
    single_slice_3d: bool = False


CASES = (
    CaseSpec("seg_fetal_head", "fetal_head", "case.mha", "grey8", "socket-object",
             spacing=(0.21, 0.18), origin=(12.5, -3.0), direction=(0.0, 1.0, 1.0, 0.0)),
    CaseSpec("seg_cardiac_multi_uint16_3d", "cardiac_multi", "case.mha", "grey16", "interface-object",
             spacing=(0.3, 0.3, 1.5), origin=(-4.0, 7.0, 2.0), single_slice_3d=True,
             direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)),
    CaseSpec("cls_fetal_plane_cls_rgb", "fetal_plane_cls", "case.mha", "rgb8", "interface-object"),
    CaseSpec("det_thyroid_nodule_det_tif", "thyroid_nodule_det", "case.tif", "grey8", "socket-string"),
    CaseSpec("reg_fetal_femur_float", "fetal_femur", "case.mha", "float_db", "socket-object", spacing=(0.1, 0.1)),
)


def phantom_image(spec: CaseSpec) -> np.ndarray:
    """The phantom as H x W (grey) or H x W x 3 (RGB) uint8, downscaled to at most MAX_SIDE pixels."""
    image = render_sample(spec.task_id, SEED, 0).image
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    scale = MAX_SIDE / max(image.shape[:2])
    if scale < 1:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if spec.pixels == "rgb8" and image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
        image[:, :, 0] = np.clip(image[:, :, 0].astype(np.int16) + 12, 0, 255)  # a warm tint: truly colour
    if spec.pixels != "rgb8" and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image


def sitk_image(spec: CaseSpec, image8: np.ndarray) -> sitk.Image:
    if spec.pixels == "grey16":
        array = image8.astype(np.uint16) * 257  # full 16-bit range: the runtime keeps the high byte
    elif spec.pixels == "float_db":
        array = 20.0 * np.log10((image8.astype(np.float32) + 1.0) / 256.0)  # -48 .. 0 dB: min-max scaled
    else:
        array = image8
    if spec.single_slice_3d:
        array = array[None]
    result = sitk.GetImageFromArray(array, isVector=spec.pixels == "rgb8")
    result.SetSpacing(spec.spacing)
    result.SetOrigin(spec.origin)
    result.SetDirection(spec.direction)
    return result


def inputs_json(spec: CaseSpec) -> list[dict]:
    image_rel, task_rel = "images/ultrasound-image", "task-id.json"
    if spec.style == "socket-string":
        return [{"socket": "ultrasound-image", "relative_path": image_rel},
                {"socket": "task-id", "relative_path": task_rel, "value": spec.task_id}]
    key = "socket" if spec.style == "socket-object" else "interface"
    return [
        {"pk": 1, "file": None, "image": {"name": spec.file_name}, "value": None,
         key: {"slug": "ultrasound-image", "kind": "Image", "super_kind": "Image", "relative_path": image_rel}},
        {"pk": 2, "file": None, "image": None, "value": None,
         key: {"slug": "task-id", "kind": "String", "super_kind": "Value", "relative_path": task_rel}},
    ]


def build_case(spec: CaseSpec) -> Path:
    case_input = GC_DIR / spec.name / "input"
    shutil.rmtree(case_input, ignore_errors=True)
    (case_input / "images" / "ultrasound-image").mkdir(parents=True)
    image = sitk_image(spec, phantom_image(spec))
    target = case_input / "images" / "ultrasound-image" / spec.file_name
    sitk.WriteImage(image, str(target), useCompression=True)
    (case_input / "task-id.json").write_text(json.dumps(spec.task_id) + "\n")
    (case_input / "inputs.json").write_text(json.dumps(inputs_json(spec), indent=2) + "\n")
    return target


def run_expected(spec: CaseSpec, weights: Path | None) -> int:
    case_dir = GC_DIR / spec.name
    expected = case_dir / "expected_output"
    shutil.rmtree(expected, ignore_errors=True)
    command = [sys.executable, "-m", "inference", "--input", str(case_dir / "input"), "--output", str(expected)]
    if weights is not None:
        command += ["--weights", str(weights)]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expected", action="store_true", help="write expected_output/ by running the model")
    parser.add_argument("--weights", type=Path, default=None, help="model folder (default: the runtime's default)")
    args = parser.parse_args(argv)
    failed = 0
    for spec in CASES:
        if args.expected:
            rc = run_expected(spec, args.weights)
            print(f"{spec.name}: inference exit {rc}", file=sys.stderr)
            failed += rc != 0
        else:
            target = build_case(spec)
            print(f"{spec.name}: {target.relative_to(ROOT)} ({target.stat().st_size // 1024} KB)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
