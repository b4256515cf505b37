"""Accuracy and cost of ensembles and flip TTA: each configuration run, measured and scored on one set.

    python -m benchmarks.ensemble_tta --labels data/heldout --out runs/ens_bench \\
        --config single=model_weights:none --config flip=model_weights:flip \\
        --config ens3=runs/ens3:none --config ens3_flip=runs/ens3:flip

Each ``NAME=FOLDER:TTA`` runs ``python -m inference --device cpu --precision fp32 --tta TTA
--weights FOLDER`` on the labelled folder, one after the other, under the wrapper of
``benchmarks.measure`` (wall time, peak resident memory of the process), with the CPU
time of the process (user + system, from ``getrusage``: less sensitive than wall time to
other jobs sharing the machine), then scores the predictions with ``python -m
evaluation``. Writes ``OUT/result.json`` and ``OUT/results.md`` (per kind headline
metrics, seconds and CPU seconds per image, peak memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from benchmarks.measure import measure

HEADLINE = {"segmentation": ("dice", "hd"), "classification": ("auc", "f1", "accuracy"), "detection": ("iou",),
            "Regression": ("mre", "mre_pct_diag")}


def _config(text: str) -> tuple[str, Path, str]:
    name, sep, rest = text.partition("=")
    folder, _, tta = rest.rpartition(":")
    if not sep or not folder or tta not in ("auto", "none", "flip"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=FOLDER:TTA with TTA auto, none or flip")
    return name, Path(folder), tta


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(name: str, folder: Path, tta: str, labels: Path, out: Path, threads: int | None) -> dict:
    pred = out / name / "predictions"
    pred.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "inference", "--input", str(labels), "--output", str(pred), "--weights",
               str(folder), "--device", "cpu", "--precision", "fp32", "--tta", tta]
    if threads:
        command += ["--threads", str(threads)]
    before = _cpu_seconds()
    figures = measure(command, out / name / "inference.log")
    cpu = _cpu_seconds() - before
    if figures.returncode != 0:
        raise SystemExit(f"{name}: python -m inference exited {figures.returncode}; see {out / name / 'inference.log'}")
    scores = out / name / "scores.json"
    subprocess.run([sys.executable, "-m", "evaluation", "--input", str(labels), "--predictions", str(pred), "--allow-missing",
                    "--json", str(scores)], check=True, stdout=subprocess.DEVNULL)
    report = json.loads(scores.read_text())
    rows = report["rows"]
    return {"name": name, "folder": str(folder), "tta": tta, "rows": rows, "wall_s": figures.wall_s,
            "cpu_s": cpu, "s_per_image": figures.wall_s / rows, "cpu_s_per_image": cpu / rows,
            "peak_rss_mb": figures.peak_rss_largest_mb,
            "kinds": {k["kind"]: k["metrics"] for k in report["kinds"]}}


def table(results: list[dict]) -> str:
    head = "| configuration | " + " | ".join(
        f"{kind} {'/'.join(HEADLINE[kind])}" for kind in HEADLINE) + " | s/image (wall) | CPU s/image | peak RSS MB |"
    lines = [head, "|" + "---|" * (len(HEADLINE) + 4)]
    for r in results:
        cells = []
        for kind, names in HEADLINE.items():
            metrics = r["kinds"].get(kind, {})
            cells.append(" / ".join("n/a" if metrics.get(n) is None else f"{metrics[n]:.3f}" for n in names))
        lines.append(f"| {r['name']} ({r['tta']}) | " + " | ".join(cells)
                     + f" | {r['s_per_image']:.3f} | {r['cpu_s_per_image']:.3f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ensemble_tta", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, required=True, help="labelled folder (e.g. held-out phantoms)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=_config, action="append", required=True, metavar="NAME=FOLDER:TTA")
    parser.add_argument("--threads", type=int, default=None, help="--threads of python -m inference")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    results = [run_one(name, folder, tta, args.labels, args.out, args.threads) for name, folder, tta in args.config]
    (args.out / "result.json").write_text(json.dumps({"loadavg_before": load, "loadavg_after": os.getloadavg(),
                                                      "results": results}, indent=2) + "\n")
    (args.out / "results.md").write_text(table(results))
    print(table(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
