"""Selection per task against the default model, on held-out phantoms (issue 21).

    python -m benchmarks.selection --work runs/selection_bench [--steps 100] [--per-task 12]

1. Phantoms (``python -m phantoms``): a training set (``--train-seed``), a validation set
   (``--val-seed``) and a test set (``--test-seed``), all 27 tasks at native resolution.
2. Two fine-tuned snapshots of the default model: its weights read back from its graphs
   (``network.weights.load_model_from_folder``) as a training checkpoint, then ``python -m
   training --init-from`` for ``--steps`` steps on the training set, training seeds 202 and
   303, one CPU thread each, one after the other.
3. Selection: ``python export.py model_weights SNAPSHOT_202 SNAPSHOT_303 --select-on VAL
   --out WORK/selected`` (the snapshots are checkpoints, exported by the selection), timed.
4. On the test set, each configuration runs as ``python -m inference --device cpu --precision
   fp32`` under ``benchmarks.measure`` (wall time, peak resident memory) and is scored with
   ``python -m evaluation`` (official metrics) (``benchmarks.ensemble_tta.run_one``): the
   default model without TTA, with flip TTA, and the selected folder (``--tta auto``).
5. Mask postprocessing per segmentation task on the test set: the default model's masks
   scored with each postprocessing option (``selection`` code: the network runs once per
   task, each option is applied to the same masks).

Writes ``WORK/result.json`` and ``WORK/results.md``. Steps whose output exists are not redone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.ensemble_tta import run_one

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / "model_weights"
SEEDS = (202, 303)
OFFICIAL = {"segmentation": ("dice", "hd"), "classification": ("auc", "f1", "accuracy"), "detection": ("iou",),
            "Regression": ("mre",)}
POSTPROCESS = ("largest_per_class", "largest_foreground", "fill_holes", "largest_per_class+fill_holes",
               "min_size:200+fill_holes")


def _run(command: list[str], log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    return time.perf_counter() - started


def phantoms(out: Path, seed: int, per_task: int) -> Path:
    if not (out / "csv_files").is_dir():
        subprocess.run([sys.executable, "-m", "phantoms", "--out", str(out), "--seed", str(seed), "--per-task",
                        str(per_task), "--quiet"], check=True, cwd=REPO)
    return out


def init_checkpoint(path: Path) -> Path:
    """The default model's weights as a training checkpoint (for ``--init-from``)."""
    if not path.is_file():
        from network.weights import load_model_from_folder
        from training.checkpoint import save_checkpoint

        model, manifest = load_model_from_folder(DEFAULT)
        save_checkpoint(path, {"config": manifest.model.model_dump(mode="json"), "state_dict": model.state_dict()})
    return path


def fine_tune(work: Path, train: Path, init: Path, seed: int, steps: int) -> tuple[Path, float]:
    out = work / f"snapshot_{seed}"
    if (out / "last.pt").is_file():
        return out / "last.pt", float("nan")
    from contract.manifest import load_manifest

    params = [f"{k}={v}" for k, v in load_manifest(DEFAULT).model.params.items()]
    command = [sys.executable, "-m", "training", "--train", str(train), "--out", str(out), "--init-from", str(init),
               "--encoder", load_manifest(DEFAULT).model.encoder_name, "--params", *params, "--steps", str(steps),
               "--steps-per-epoch", str(steps), "--batch-size", "8", "--lr-backbone", "1e-4", "--lr-heads", "2e-4", "--warmup", "0.1",
               "--kind-weights", "Regression=10", "--task-sampling", "detection=2", "Regression=2", "--seed", str(seed),
               "--threads", "1", "--device", "cpu", "--quiet"]
    seconds = _run(command, work / f"snapshot_{seed}.log")
    return out / "last.pt", seconds


def select(work: Path, snapshots: list[Path], val: Path) -> float:
    out = work / "selected"
    if (out / "selection_report.json").is_file():
        return float("nan")
    command = [sys.executable, "export.py", str(DEFAULT), *map(str, snapshots), "--select-on", str(val),
               "--out", str(out), "-v"]
    return _run(command, work / "selection.log")


def postprocess_table(test: Path) -> list[dict]:
    """The default model's masks on the test set, scored with each postprocessing option, per segmentation task."""
    from contract.kinds import spec_of
    from contract.manifest import ModelFolder
    from contract.postprocess import NONE, parse_postprocess
    from evaluation.labels import read_labels
    from inference.engines.fallback import FallbackEngine
    from selection.cache import compute_task
    from selection.candidates import Candidate
    from selection.choose import Selector
    from selection.score import SCORERS

    folder = ModelFolder.open(DEFAULT)
    engine = FallbackEngine(folder, "auto", "cpu", "fp32")
    rows, _ = read_labels(test)
    options = [NONE, *(parse_postprocess(p) for p in POSTPROCESS)]
    out = []
    for entry in folder.manifest.tasks:
        if not spec_of(entry.kind).writes_mask:
            continue
        mine = [r for r in rows if r.task_id == entry.task_id]
        data = compute_task(entry, mine, True, None, {0: (folder, engine)}, folder.manifest.model.preprocessing, 8)
        selector = Selector(data, SCORERS[entry.kind], "dice", options, [0], None)
        plain = Candidate(((0, 1.0),))
        figures = {str(p): selector.metrics(plain.with_postprocess(p)) for p in options}
        seconds = {str(p): selector.decode_seconds[plain.with_postprocess(p)] for p in options}
        out.append({"task_id": entry.task_id, "classes": entry.num_classes, "rows": len(data.rows),
                    "scores": figures, "decode_seconds_per_image": seconds})
    return out


def markdown(result: dict) -> str:
    head = "| configuration | " + " | ".join(f"{k} {'/'.join(m)}" for k, m in OFFICIAL.items()) + \
        " | s/image (wall) | CPU s/image | peak RSS MB |"
    lines = [head, "|" + "---|" * (len(OFFICIAL) + 4)]
    for r in result["configurations"]:
        cells = [" / ".join(f"{r['kinds'].get(k, {}).get(m, float('nan')):.4f}" for m in names)
                 for k, names in OFFICIAL.items()]
        lines.append(f"| {r['name']} (--tta {r['tta']}) | " + " | ".join(cells)
                     + f" | {r['s_per_image']:.3f} | {r['cpu_s_per_image']:.3f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "Postprocessing of the default model's masks (test set; Dice / HD px per option):", "",
              "| task | " + " | ".join(result["postprocess"][0]["scores"]) + " |",
              "|---|" + "---|" * len(result["postprocess"][0]["scores"])]
    for task in result["postprocess"]:
        lines.append(f"| {task['task_id']} | " + " | ".join(f"{s['dice']:.4f} / {s['hd']:.2f}"
                                                             for s in task["scores"].values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selection", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="working folder (kept; finished steps are reused)")
    parser.add_argument("--per-task", type=int, default=12, help="validation and test rows per task (default 12)")
    parser.add_argument("--train-per-task", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100, help="fine-tuning steps per snapshot (default 100)")
    parser.add_argument("--train-seed", type=int, default=21)
    parser.add_argument("--val-seed", type=int, default=31)
    parser.add_argument("--test-seed", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="--threads of python -m inference")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    train = phantoms(work / "train", args.train_seed, args.train_per_task)
    val = phantoms(work / "val", args.val_seed, args.per_task)
    test = phantoms(work / "test", args.test_seed, args.per_task)
    init = init_checkpoint(work / "init.pt")
    tuned = [fine_tune(work, train, init, seed, args.steps) for seed in SEEDS]
    selection_s = select(work, [path for path, _ in tuned], val)
    configurations = [run_one(name, folder, tta, test, work / "runs", args.threads) for name, folder, tta in
                      (("default", DEFAULT, "none"), ("default, flip TTA", DEFAULT, "flip"),
                       ("selected", work / "selected", "auto"))]
    result = {"load_before": load_before, "load_after": os.getloadavg(), "steps": args.steps,
              "seeds": {"train": args.train_seed, "val": args.val_seed, "test": args.test_seed},
              "fine_tune_seconds": [s for _, s in tuned], "selection_seconds": selection_s,
              "configurations": configurations, "postprocess": postprocess_table(test),
              "choices": json.loads((work / "selected" / "selection_report.json").read_text())["tasks"]}
    (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    (work / "results.md").write_text(markdown(result))
    print(markdown(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
