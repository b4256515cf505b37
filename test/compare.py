#!/usr/bin/env python3
"""Compare an inference output folder with an expected one, within tolerances.

    python test/compare.py EXPECTED_DIR ACTUAL_DIR [--atol-prob 1e-3] [--atol-norm 1e-3]
                           [--atol-px 0.5] [--min-mask-agreement 0.999] [--ignore GLOB ...]

Rules:
- every expected file must be present, and no other file (both listed);
- JSON: lists of records that all have ``image_path`` and ``task_id`` are matched on that
  pair (order-independent); other JSON is compared recursively. Numbers are compared by
  the name of the nearest key: ``*_pixels`` within --atol-px, keys containing ``prob``
  within --atol-prob, keys containing ``normalized`` within --atol-norm; any other number
  within --atol-norm if either side is a float, exactly if both are integers; strings,
  booleans and null exactly. ``predicted_class`` may differ only where the expected
  probability of the actual class is within --atol-prob of the expected maximum (a tie);
- .png/.jpg/.bmp (OpenCV, unchanged) and .mha/.tif/.tiff (SimpleITK): same shape and
  dtype, fraction of equal pixels >= --min-mask-agreement; .mha also the same spacing,
  origin and direction; any other file byte for byte.
Exit 0 when everything matches, 1 on a mismatch, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np
import SimpleITK as sitk

CV2_IMAGES = {".png", ".jpg", ".jpeg", ".bmp"}
SITK_IMAGES = {".mha", ".tif", ".tiff"}
RECORD_KEYS = ("image_path", "task_id")


@dataclass(frozen=True)
class Tolerances:
    prob: float = 1e-3
    norm: float = 1e-3
    px: float = 0.5
    mask_agreement: float = 0.999

    def describe(self) -> str:
        return (
            f"tolerances: probabilities {self.prob:g}, normalized/other floats {self.norm:g}, "
            f"pixels {self.px:g} px, mask agreement >= {self.mask_agreement:.2%}; integers and strings exact"
        )

    def for_key(self, key: str) -> tuple[str, float]:
        """Tolerance class and absolute tolerance of a number under ``key``."""
        if key.endswith("_pixels"):
            return "px", self.px
        if "prob" in key:
            return "prob", self.prob
        return "norm", self.norm


@dataclass
class FileResult:
    path: str
    problems: list[str] = field(default_factory=list)
    #: largest deviation per tolerance class (JSON: prob/norm/px) or the pixel agreement (images)
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


class _JsonDiff:
    """Collects differences between two JSON values; tracks the largest deviation per class."""

    def __init__(self, tol: Tolerances):
        self.tol = tol
        self.max_dev: dict[str, float] = {}
        self.diffs: list[str] = []

    def _number(self, exp: Any, act: Any, where: str, key: str) -> None:
        tolerant = key.endswith("_pixels") or "prob" in key or "normalized" in key
        if not tolerant and isinstance(exp, int) and isinstance(act, int):
            if exp != act:
                self.diffs.append(f"{where}: {act} != expected {exp}")
            return
        name, atol = self.tol.for_key(key)
        if math.isnan(exp) or math.isnan(act):
            if not (math.isnan(exp) and math.isnan(act)):
                self.diffs.append(f"{where}: {act} vs expected {exp}")
            return
        dev = abs(float(exp) - float(act))
        self.max_dev[name] = max(self.max_dev.get(name, 0.0), dev)
        if not dev <= atol:
            self.diffs.append(f"{where}: {act} vs expected {exp} (off by {dev:.4g} > {atol:g})")

    def compare(self, exp: Any, act: Any, where: str = "", key: str = "") -> None:
        is_num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        if is_num(exp) and is_num(act):
            self._number(exp, act, where, key)
        elif isinstance(exp, dict) and isinstance(act, dict):
            for k in sorted(exp.keys() - act.keys()):
                self.diffs.append(f"{where}.{k}: missing")
            for k in sorted(act.keys() - exp.keys()):
                self.diffs.append(f"{where}.{k}: unexpected key")
            for k in sorted(exp.keys() & act.keys()):
                if k == "predicted_class" and self._class_tie(exp, act):
                    continue
                self.compare(exp[k], act[k], f"{where}.{k}", k)
        elif isinstance(exp, list) and isinstance(act, list):
            if len(exp) != len(act):
                self.diffs.append(f"{where}: length {len(act)} != expected {len(exp)}")
                return
            for i, (e, a) in enumerate(zip(exp, act)):
                self.compare(e, a, f"{where}[{i}]", key)
        elif type(exp) is not type(act) or exp != act:
            self.diffs.append(f"{where}: {act!r} != expected {exp!r}")

    def _class_tie(self, exp: dict, act: dict) -> bool:
        """True when the actual predicted_class is one of the expected (tied) top classes."""
        probs, cls = exp.get("predicted_probs"), act.get("predicted_class")
        if not (isinstance(probs, list) and probs and isinstance(cls, int) and 0 <= cls < len(probs)):
            return False
        try:
            return max(probs) - float(probs[cls]) <= self.tol.prob
        except (TypeError, ValueError):
            return False


def _is_record_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(r, dict) and all(isinstance(r.get(k), str) for k in RECORD_KEYS) for r in value
    )


def _dev_text(diff: _JsonDiff, tol: Tolerances) -> str:
    limits = {"prob": tol.prob, "norm": tol.norm, "px": tol.px}
    return ", ".join(f"{k} {v:.4g} (tol {limits[k]:g})" for k, v in sorted(diff.max_dev.items()))


def compare_json(expected: Path, actual: Path, tol: Tolerances, max_shown: int = 5,
                 measures: Optional[dict[str, float]] = None) -> list[str]:
    """Problems found comparing two JSON files (empty list: within tolerance); ``measures``
    receives the largest deviation per tolerance class."""
    try:
        exp = json.loads(expected.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [f"expected file is not valid JSON ({exc})"]
    try:
        act = json.loads(actual.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [f"not valid JSON ({exc})"]
    diff = _JsonDiff(tol)
    problems: list[str] = []
    if _is_record_list(exp) and isinstance(act, list):
        exp_by = {(r["image_path"], r["task_id"]): r for r in exp}
        act_by = {(r.get("image_path"), r.get("task_id")): r for r in act if isinstance(r, dict)}
        missing = [k for k in exp_by if k not in act_by]
        extra = [k for k in act_by if k not in exp_by]
        if len(exp_by) != len(exp) or len(act_by) != len(act):
            problems.append(f"duplicate or non-record entries: expected {len(exp)}/{len(exp_by)}, actual {len(act)}/{len(act_by)}")
        if missing:
            problems.append(f"{len(missing)} record(s) missing: {missing[:max_shown]}")
        if extra:
            problems.append(f"{len(extra)} unexpected record(s): {extra[:max_shown]}")
        differing = 0
        for k in sorted(exp_by.keys() & act_by.keys()):
            before = len(diff.diffs)
            diff.compare(exp_by[k], act_by[k], f"{k}", "")
            differing += len(diff.diffs) > before
        if differing:
            problems.append(f"{differing} of {len(exp_by)} records differ; max deviation {_dev_text(diff, tol)}")
    else:
        diff.compare(exp, act, "$", "")
        if diff.diffs:
            problems.append(f"{len(diff.diffs)} value(s) differ; max deviation {_dev_text(diff, tol) or 'n/a'}")
    problems += [f"  {d}" for d in diff.diffs[:max_shown]]
    if measures is not None:
        measures.update(diff.max_dev)
    return problems


def _read_image(path: Path) -> tuple[Optional[np.ndarray], Optional[sitk.Image]]:
    if path.suffix.lower() in CV2_IMAGES:
        return cv2.imread(str(path), cv2.IMREAD_UNCHANGED), None
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        return None, None
    return sitk.GetArrayFromImage(image), image


def compare_image(expected: Path, actual: Path, tol: Tolerances,
                  measures: Optional[dict[str, float]] = None) -> list[str]:
    """Problems found comparing two images (shape, dtype, pixel agreement, .mha geometry);
    ``measures`` receives the agreement."""
    exp, exp_img = _read_image(expected)
    act, act_img = _read_image(actual)
    if exp is None:
        return ["expected image cannot be read"]
    if act is None:
        return ["cannot be read as an image"]
    if exp.shape != act.shape or exp.dtype != act.dtype:
        return [f"shape/dtype {act.shape} {act.dtype} != expected {exp.shape} {exp.dtype}"]
    problems = []
    equal = np.equal(exp, act) | (np.isnan(exp) & np.isnan(act) if exp.dtype.kind == "f" else False)
    agreement = float(np.mean(equal)) if equal.size else 1.0
    if measures is not None:
        measures["agreement"] = agreement
    if agreement < tol.mask_agreement:
        problems.append(
            f"mask agreement {agreement:.4%} < {tol.mask_agreement:.2%} ({int(equal.size - equal.sum())} of "
            f"{equal.size} values differ)"
        )
    if expected.suffix.lower() == ".mha" and exp_img is not None and act_img is not None:
        for name in ("Spacing", "Origin", "Direction"):
            e, a = getattr(exp_img, f"Get{name}")(), getattr(act_img, f"Get{name}")()
            if not np.allclose(e, a, rtol=0, atol=1e-6):
                problems.append(f"{name.lower()} {a} != expected {e}")
    return problems


def compare_file(expected: Path, actual: Path, tol: Tolerances,
                 measures: Optional[dict[str, float]] = None) -> list[str]:
    suffix = expected.suffix.lower()
    if suffix == ".json":
        return compare_json(expected, actual, tol, measures=measures)
    if suffix in CV2_IMAGES | SITK_IMAGES:
        return compare_image(expected, actual, tol, measures=measures)
    return [] if expected.read_bytes() == actual.read_bytes() else ["content differs (compared byte for byte)"]


def _files(root: Path, ignore: Sequence[str]) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not any(fnmatch.fnmatch(p.relative_to(root).as_posix(), g) for g in ignore)
    }


def compare_folders(expected: Path, actual: Path, tol: Tolerances, ignore: Sequence[str] = ()) -> list[FileResult]:
    """One FileResult per file present in either folder, sorted by path."""
    exp_files, act_files = _files(expected, ignore), _files(actual, ignore)
    results = []
    for rel in sorted(exp_files | act_files):
        if rel not in act_files:
            results.append(FileResult(rel, ["missing"]))
        elif rel not in exp_files:
            results.append(FileResult(rel, ["unexpected file"]))
        else:
            result = FileResult(rel)
            result.problems = compare_file(expected / rel, actual / rel, tol, result.measures)
            results.append(result)
    return results


def deviation_summary(results: Sequence[FileResult]) -> list[str]:
    """How close the compared files were: each JSON file's largest deviations, the images' lowest agreement."""
    lines = [f"{r.path}: largest deviation " + ", ".join(f"{k} {v:.3g}" for k, v in sorted(r.measures.items()))
             for r in results if r.measures and "agreement" not in r.measures]
    images = [r for r in results if "agreement" in r.measures]
    if images:
        worst = min(images, key=lambda r: r.measures["agreement"])
        identical = sum(r.measures["agreement"] == 1.0 for r in images)
        lines.append(f"{len(images)} image(s): {identical} identical, lowest pixel agreement "
                     f"{worst.measures['agreement']:.4%} ({worst.path})")
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Defaults: --atol-prob 1e-3, --atol-norm 1e-3, --atol-px 0.5, --min-mask-agreement 0.999. "
        "Exit 0: all within tolerance; 1: a mismatch; 2: usage error.",
    )
    parser.add_argument("expected", type=Path, help="expected output folder (e.g. test/expected_output)")
    parser.add_argument("actual", type=Path, help="actual output folder")
    parser.add_argument("--atol-prob", type=float, default=1e-3, help="abs tolerance of probabilities (keys containing 'prob')")
    parser.add_argument("--atol-norm", type=float, default=1e-3, help="abs tolerance of normalized coordinates and other floats")
    parser.add_argument("--atol-px", type=float, default=0.5, help="abs tolerance of pixel values (keys ending in _pixels)")
    parser.add_argument("--min-mask-agreement", type=float, default=0.999, help="min fraction of equal pixels per image")
    parser.add_argument("--ignore", nargs="*", default=[], metavar="GLOB", help="relative paths to skip (fnmatch)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    for folder in (args.expected, args.actual):
        if not folder.is_dir():
            print(f"error: {folder} is not a folder", file=sys.stderr)
            return 2
    tol = Tolerances(args.atol_prob, args.atol_norm, args.atol_px, args.min_mask_agreement)
    print(tol.describe())
    results = compare_folders(args.expected, args.actual, tol, args.ignore)
    bad = [r for r in results if not r.ok]
    for line in deviation_summary(results):
        print(line)
    for result in bad:
        print(f"MISMATCH {result.path}: {result.problems[0]}")
        for line in result.problems[1:]:
            print(f"    {line}")
    if bad:
        print(f"{len(bad)} of {len(results)} files differ")
        return 1
    print(f"{len(results)} files compared, all within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
