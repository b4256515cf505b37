#!/usr/bin/env python3
"""Biometry error of the default model on held-out phantoms: HC, BPD, OFD, AC, FL (mm), AoP (deg), HSD.

    python benchmarks/biometry_phantoms.py --work DIR [--per-task 50] [--seed 7] [--spacing 0.2]
                                           [--weights DIR] [--markdown FILE]

1. ``python -m phantoms --seed SEED --per-task N --tasks fetal_head,fetal_abdomen_multi,fetal_femur,
   head_symphysis_multi`` into ``DIR/phantoms`` (seed 7 is the project's held-out seed; the default
   model was trained on seed 1);
2. ``python -m inference --input DIR/phantoms --output DIR/predictions --device cpu --precision fp32``
   (the default model, or ``--weights``);
3. ``python -m biometry`` on both, at the stated spacing (phantoms carry none): each measure from
   the predicted masks and points and from the phantoms' own label masks and points, by the same
   code, and the mean absolute error between them.

Prints a markdown table (MAE, median and maximum absolute error per measure, rows measured on both
sides, rows that one side could not measure) and writes it to ``--markdown`` when given; the
measurement files stay in ``DIR/biometry``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("fetal_head", "fetal_abdomen_multi", "fetal_femur", "head_symphysis_multi")


def _run(command: list[str], log_file: Path) -> float:
    started = time.perf_counter()
    with open(log_file, "wb") as handle:
        done = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if done.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(command)} exited with {done.returncode}; see {log_file}")
    return time.perf_counter() - started


def table(errors: dict, report: dict, spacing: float) -> str:
    lines = ["| measure | rows (both sides) | MAE | mean signed error | median abs. error | max abs. error | "
             "MAE in px | mean label value | no predicted value | no label value |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in errors["measures"]:
        if not m["n"]:
            lines.append(f"| {m['measure']} | 0 | | | | | | | {m['label_only']} | {m['prediction_only']} |")
            continue
        unit = m["unit"]
        in_px = f"{m['mae'] / spacing:.2f}" if m["unit"] == "mm" else ""
        lines.append(f"| {m['measure']} | {m['n']} | {m['mae']:.2f} {unit} | {m['mean_error']:+.2f} | "
                     f"{m['median_abs_error']:.2f} | {m['max_abs_error']:.2f} | {in_px} | {m['mean_label']:.1f} {unit} | "
                     f"{m['label_only']} | {m['prediction_only']} |")
    problems = report["problems"]
    sides = {s: sum(p["source"] == s for p in problems) for s in ("prediction", "label")}
    lines.append("")
    lines.append(f"Rows: {report['rows']}; rows with a side that could not be measured: prediction "
                 f"{sides['prediction']}, label {sides['label']}.")
    reasons: dict[str, int] = {}
    for p in problems:
        key = f"{p['task_id']} ({p['source']}): {p['reason'].split(':')[0]}"
        reasons[key] = reasons.get(key, 0) + 1
    lines += [f"- {k}: {v}" for k, v in sorted(reasons.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True, type=Path, help="working folder (phantoms, predictions, biometry)")
    p.add_argument("--per-task", type=int, default=50)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--spacing", type=float, default=0.2, help="mm per pixel stated for the phantoms (default 0.2)")
    p.add_argument("--weights", type=Path, default=None, help="model folder (default: the runtime's default model)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    args = p.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    phantoms, predictions, out = work / "phantoms", work / "predictions", work / "biometry" / "biometry.json"
    python = sys.executable
    gen = _run([python, "-m", "phantoms", "--out", str(phantoms), "--seed", str(args.seed), "--per-task",
                str(args.per_task), "--tasks", ",".join(TASKS), "--overwrite", "--quiet"], work / "phantoms.log")
    shutil.rmtree(predictions, ignore_errors=True)  # this script's own folder, from an earlier run
    infer = [python, "-m", "inference", "--input", str(phantoms), "--output", str(predictions), "--device", "cpu",
             "--precision", "fp32"]
    if args.weights is not None:
        infer += ["--weights", str(args.weights)]
    took = _run(infer, work / "inference.log")
    _run([python, "-m", "biometry", "--input", str(phantoms), "--predictions", str(predictions), "--out", str(out),
          "--pixel-spacing", str(args.spacing)], work / "biometry.log")
    errors = json.loads(out.with_name("biometry_errors.json").read_text())
    report = json.loads(out.with_name("biometry_report.json").read_text())
    model = "the default model" if args.weights is None else args.weights
    header = (f"Held-out phantoms `python -m phantoms --seed {args.seed} --per-task {args.per_task} --tasks "
              f"{','.join(TASKS)}` ({args.per_task * len(TASKS)} images, native resolution), predicted by "
              f"`python -m inference --device cpu --precision fp32` with {model} ({took:.1f} s); measures by "
              f"`python -m biometry --pixel-spacing {args.spacing}` (a stated spacing: "
              f"phantoms carry none, so mm = px x {args.spacing}) on the predictions and on the phantoms' own "
              f"labels, same code both sides. Machine: {platform.machine()}, {platform.python_version()}; "
              f"phantoms {gen:.1f} s.")
    text = header + "\n\n" + table(errors, report, args.spacing) + "\n"
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
