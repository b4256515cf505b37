"""Accuracy: the trained model through the reference pipeline and through the runtime, scored alike.

A labelled phantom set (its own seed, different from training's) is predicted by
``python -m benchmarks.reference`` and by ``python -m inference`` (fp32 and, when
the model has them, int8 graphs) with the same model folder, and each prediction
folder is scored with ``evaluation.evaluate``; the outputs are also compared as in
the timed run (fp32 against the reference, int8 against fp32), here with trained weights. The runtime resizes segmentation
logits (bilinear) before the argmax; the reference resizes the argmax mask with
nearest-neighbour interpolation. The requirement: the runtime's mean Dice is at
least the reference's and its mean Hausdorff distance at most the reference's.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.compare import FP32_VS_REFERENCE, REDUCED_VS_FP32, compare_folders
from benchmarks.dataset import CACHE_ROOT, cached_phantoms
from contract.manifest import load_manifest

log = logging.getLogger(__name__)

ACCURACY_SEED = 7
KIND_KEYS = {"segmentation": ("dice", "hd"), "classification": ("auc", "accuracy"), "detection": ("iou",),
             "Regression": ("mre",)}


def accuracy_set(per_task: int, task_ids: list[str], cache_root: Path = CACHE_ROOT, seed: int = ACCURACY_SEED) -> Path:
    """The labelled phantom set: ``per_task`` images of each of ``task_ids`` (cached)."""
    counts = {task_id: per_task for task_id in task_ids}
    name = f"accuracy_seed{seed}_per{per_task}_{len(task_ids)}tasks"
    return cached_phantoms(name, seed, counts, labels=True, cache_root=cache_root)


def _run(command: list[str], log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "wb") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}; see {log_file}")


def _scores(labels: Path, predictions: Path) -> dict:
    from evaluation import evaluate

    report = evaluate(labels, predictions)
    kinds = {k.kind: {m: k.metrics.get(m) for m in KIND_KEYS.get(k.kind, ())} for k in report.kinds}
    per_task = {t.task_id: dict(t.metrics) for t in report.tasks if t.kind == "segmentation"}
    return {"kinds": kinds, "segmentation_tasks": per_task, "missing": report.missing_predictions}


def run_accuracy(model_dir: Path, work_dir: Path, per_task: int = 3, cache_root: Path = CACHE_ROOT) -> dict:
    """Predict the labelled set with every pipeline, score each; Dice/HD differences and the verdict."""
    manifest = load_manifest(model_dir)
    labels = accuracy_set(per_task, [t.task_id for t in manifest.tasks], cache_root)
    pipelines = {
        "reference": [sys.executable, "-m", "benchmarks.reference", "--weights", str(model_dir)],
        "ours_fp32": [sys.executable, "-m", "inference", "--weights", str(model_dir), "--device", "cpu",
                      "--precision", "fp32"],
    }
    if "int8" in manifest.graph_sets:
        pipelines["ours_int8"] = [*pipelines["ours_fp32"][:-1], "int8"]
    scores = {}
    for name, command in pipelines.items():
        out = Path(work_dir) / "accuracy" / name
        shutil.rmtree(out, ignore_errors=True)
        _run([*command, "--input", str(labels), "--output", str(out)], Path(work_dir) / "logs" / f"accuracy_{name}.log")
        scores[name] = _scores(labels, out)
        log.info("accuracy %s: %s", name, scores[name]["kinds"])
    root = Path(work_dir) / "accuracy"
    agreement = {"ours_fp32 vs reference": compare_folders(labels, root / "reference", root / "ours_fp32",
                                                           FP32_VS_REFERENCE).as_dict()}
    if "ours_int8" in scores:
        agreement["ours_int8 vs ours_fp32"] = compare_folders(labels, root / "ours_fp32", root / "ours_int8",
                                                              REDUCED_VS_FP32).as_dict()
    ref = scores["reference"]["kinds"].get("segmentation", {})
    ours = scores["ours_fp32"]["kinds"].get("segmentation", {})
    verdict = None
    dice_diff = hd_diff = None
    if ref.get("dice") is not None and ours.get("dice") is not None:
        dice_diff = ours["dice"] - ref["dice"]
        hd_diff = ours["hd"] - ref["hd"]
        verdict = dice_diff >= 0 and hd_diff <= 0
    return {
        "model": str(model_dir),
        "model_source": manifest.source.get("checkpoint", ""),
        "labelled_set": str(labels),
        "images": per_task * len(manifest.tasks),
        "scores": scores,
        "agreement": agreement,
        "segmentation_dice_diff": dice_diff,
        "segmentation_hd_diff": hd_diff,
        "segmentation_at_least_reference": verdict,
    }
