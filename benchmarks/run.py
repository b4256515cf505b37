"""One command for the whole benchmark: ``python -m benchmarks.run [--scale 0.1] [--out DIR]``.

Steps (each pipeline in its own process, on the same inputs, in one invocation):

1. the phantom input set in the validation set's proportions (``benchmarks.dataset``, cached);
2. the EfficientNet-B4 + FPN baseline, 27 heads, random weights, exported to fp32 and
   int8 graphs (``benchmarks.model``, cached);
3. the reference (``python -m benchmarks.reference``), our runtime at fp32 and at int8
   (``python -m inference --device cpu``), each measured by ``benchmarks.measure``;
4. agreement: ours fp32 against the reference (classification, detection, Regression
   within 1e-4), ours int8 against ours fp32 (mask agreement >= 99 %, probabilities within
   0.02); a ratio is refused, and the differing rows are listed, when they disagree;
5. where the time goes (``benchmarks.stages``) and the model-only floor;
6. accuracy with the trained model (``benchmarks.accuracy``), when it exists;
7. ``OUT/result.json``, ``OUT/results.md`` and the results section of BENCHMARKS.md.

Exit status: 0 when every step ran (targets met or not: the report says), 1 when a
pipeline failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import shutil
import sys
from pathlib import Path

from benchmarks.compare import FP32_VS_REFERENCE, REDUCED_VS_FP32, Tolerances, compare_folders
from benchmarks.cpu_path import NAME as CPU_AUTO
from benchmarks.dataset import CACHE_ROOT, benchmark_set, kind_totals
from benchmarks.measure import measure
from benchmarks.report import machine, render, update_benchmarks_md

log = logging.getLogger("benchmarks")
MEMORY_LIMIT_MB = 1024
INFORMATION_ONLY = Tolerances("reported only", None, None, None)


def add_workload_arguments(p: argparse.ArgumentParser, out: Path) -> None:
    """The options every timed comparison shares (``benchmarks.run``, ``benchmarks.gpu``): set, model, batch."""
    p.add_argument("--scale", type=float, default=0.1, help="fraction of the validation set's size (default 0.1)")
    p.add_argument("--seed", type=int, default=2026, help="phantom seed of the timed set (default 2026)")
    p.add_argument("--out", type=Path, default=out, help=f"result.json and results.md (default {out})")
    p.add_argument("--cache", type=Path, default=CACHE_ROOT, help="phantoms, model, outputs, logs (default data/bench)")
    p.add_argument("--batch-size", type=int, default=8, help="every pipeline (default 8, the baseline's)")
    p.add_argument("--reference-workers", type=int, default=4, help="DataLoader workers of the reference (default 4)")
    p.add_argument("--model", type=Path, default=None, help="use this model folder instead of the random-weight B4")
    p.add_argument("--state-dict", type=Path, default=None, help="with --model: its plain state_dict for the reference")


def start_run(args: argparse.Namespace) -> bool:
    """Logging for a benchmark run (the evaluator's and phantoms' chatter quieted); False, with the error
    printed, when ``--scale`` is out of range."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("evaluation", "phantoms"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not 0 < args.scale <= 1:
        print(f"error: --scale must be in (0, 1], got {args.scale}", file=sys.stderr)
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_workload_arguments(p, Path("benchmarks/results/latest"))
    p.add_argument("--no-int8", action="store_true", help="skip the int8 pipeline")
    p.add_argument("--no-auto", action="store_true",
                   help="skip ours_auto (--precision auto: the shipped CPU path, a CPU variant where the model's check "
                   "passed)")
    p.add_argument("--repeats", type=int, default=1,
                   help="run the pipelines this many times in turn and keep each one's median run (default 1)")
    p.add_argument("--accuracy-model", type=Path, default=Path("model_weights"), help="trained model folder")
    p.add_argument("--accuracy-per-task", type=int, default=3, help="labelled images per task (default 3)")
    p.add_argument("--no-accuracy", action="store_true", help="skip the accuracy comparison")
    p.add_argument("--profile-per-kind", type=int, default=16, help="images per kind for the stage profile")
    p.add_argument("--markdown", type=Path, default=Path("BENCHMARKS.md"), help="file whose results section is replaced")
    p.add_argument("--no-markdown", action="store_true", help="do not touch BENCHMARKS.md")
    return p


def _gpu_note() -> str:
    from inference.engines.providers import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    return f"none ({reason}); the GPU part was not run" if reason else "CUDA visible but not benchmarked by this run"


def ratio_or_refusal(name: str, wall: dict[str, float], ok: bool, comparisons: list[dict]) -> tuple[float | None, str]:
    """Throughput ratio to the reference, or None and the reason it is refused."""
    if not ok:
        return None, f"{name}: the pipeline failed (non-zero exit); no ratio"
    bad = [c for c in comparisons if not c["agrees"]]
    if bad:
        rows = sum(len(c["differing_rows"]) for c in bad)
        return None, f"{name}: ratio refused, {rows} rows differ beyond the tolerances ({', '.join(c['tolerances']['name'] for c in bad)})"
    return wall["reference"] / wall[name], ""


def judge(input_dir: Path, outputs: Path, pipelines: dict, reduced: str) -> tuple[dict, dict, list[str]]:
    """(comparisons, ratios, refusals): each pipeline's outputs against the reference's (and the ``reduced``
    precision's against fp32), and its speed ratio, or why the ratio is refused."""
    def compare(a: str, b: str, tolerances: Tolerances) -> dict:
        return compare_folders(input_dir, outputs / a, outputs / b, tolerances).as_dict()

    comparisons = {"ours_fp32 vs reference": compare("reference", "ours_fp32", FP32_VS_REFERENCE)}
    if reduced in pipelines:
        comparisons[f"{reduced} vs ours_fp32"] = compare("ours_fp32", reduced, REDUCED_VS_FP32)
        comparisons[f"{reduced} vs reference"] = compare("reference", reduced, INFORMATION_ONLY)
    wall = {name: m["wall_s"] for name, m in pipelines.items()}
    ratios: dict[str, float | None] = {}
    refusals = []
    for name, m in pipelines.items():
        if name == "reference":
            continue
        needed = [comparisons["ours_fp32 vs reference"]]
        if name == reduced:
            needed.append(comparisons[f"{reduced} vs ours_fp32"])
        ok = m["returncode"] == 0 and pipelines["reference"]["returncode"] == 0
        ratios[name], why = ratio_or_refusal(name, wall, ok, needed)
        if why:
            refusals.append(why)
    return comparisons, ratios, refusals


def runtime_command(input_dir: Path, model_dir: Path, device: str, precision: str, batch_size: int) -> list[str]:
    """Our runtime (``python -m inference``) on ``device`` at ``precision``, logging what measure parses."""
    return [sys.executable, "-m", "inference", "--input", str(input_dir), "--weights", str(model_dir),
            "--device", device, "--batch-size", str(batch_size), "-v", "--precision", precision]


def reference_command(input_dir: Path, model_dir: Path, batch_size: int, workers: int, state_dict: Path | None,
                      device: str = "cpu") -> list[str]:
    """The PyTorch-eager reference (``python -m benchmarks.reference``) on ``device``."""
    return [sys.executable, "-m", "benchmarks.reference", "--input", str(input_dir), "--weights", str(model_dir),
            "--batch-size", str(batch_size), "--workers", str(workers), "--device", device, "-v",
            *(["--state-dict", str(state_dict)] if state_dict else [])]


def measure_pipeline(name: str, command: list[str], cache: Path) -> dict:
    """Run one pipeline into ``cache/outputs/NAME`` (emptied first) under ``benchmarks.measure``; its figures."""
    out = cache / "outputs" / name
    shutil.rmtree(out, ignore_errors=True)
    log.info("running %s", name)
    m = measure([*command, "--output", str(out)], cache / "logs" / f"{name}.log")
    log.info("%s: %.1f s, exit %d, first output %s s, peak %.0f MB", name, m.wall_s, m.returncode,
             m.first_output_s, m.peak_rss_largest_mb)
    return m.as_dict()


def run_pipelines(args: argparse.Namespace, input_dir: Path, model_dir: Path, state_dict: Path | None) -> dict:
    """Each pipeline ``--repeats`` times, in turn (side by side: load hits them alike); the median run of each."""
    commands = {
        "reference": reference_command(input_dir, model_dir, args.batch_size, args.reference_workers, state_dict),
        "ours_fp32": runtime_command(input_dir, model_dir, "cpu", "fp32", args.batch_size),
    }
    if not args.no_int8:
        commands["ours_int8"] = runtime_command(input_dir, model_dir, "cpu", "int8", args.batch_size)
    if not getattr(args, "no_auto", True):
        commands[CPU_AUTO] = runtime_command(input_dir, model_dir, "cpu", "auto", args.batch_size)
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    for _ in range(max(1, getattr(args, "repeats", 1))):
        for name, command in commands.items():
            runs[name].append(measure_pipeline(name, command, args.cache))
    # the median run by wall time (its outputs are the last run's: every run of a pipeline writes the same files)
    return {name: sorted(r, key=lambda m: m["wall_s"])[len(r) // 2] for name, r in runs.items()}


def targets(result: dict) -> list[dict]:
    r, c, p = result["ratios"], result["comparisons"], result["pipelines"]
    out = []

    def add(target: str, value, met):
        out.append({"target": target, "value": value, "met": met})

    fp32 = c.get("ours_fp32 vs reference", {})
    add("ours fp32 >= 3x reference throughput", "refused" if r.get("ours_fp32") is None else f"{r['ours_fp32']:.2f}x",
        None if r.get("ours_fp32") is None else r["ours_fp32"] >= 3)
    add("fp32 classification/detection/Regression outputs within 1e-4 of the reference",
        ", ".join(f"{k} {v:.2g}" for k, v in fp32.get("figures", {}).items() if "max_abs" in k), fp32.get("agrees"))
    if "ours_int8" in p:
        int8 = c.get("ours_int8 vs ours_fp32", {})
        f = int8.get("figures", {})
        add("ours int8 >= 5x reference throughput", "refused" if r.get("ours_int8") is None else f"{r['ours_int8']:.2f}x",
            None if r.get("ours_int8") is None else r["ours_int8"] >= 5)
        agreement = f.get("segmentation.mask_agreement_min")
        add("int8 mask agreement >= 99 % (every image, vs fp32)", f"min {agreement:.4f}" if agreement is not None else "n/a",
            None if agreement is None else agreement >= 0.99)
        prob = f.get("classification.max_abs_prob_diff")
        add("int8 probability differences <= 0.02 (vs fp32)", f"max {prob:.4f}" if prob is not None else "n/a",
            None if prob is None else prob <= 0.02)
    for name in ("ours_fp32", "ours_int8"):
        if name in p:
            mb = p[name]["peak_rss_largest_mb"]
            add(f"{name} peak memory <= 1 GB", f"{mb:.0f} MB", mb <= MEMORY_LIMIT_MB)
    acc = result["accuracy"]
    add("segmentation Dice >= and HD <= reference (trained model)",
        "skipped" if "skipped" in acc else f"Dice {acc['segmentation_dice_diff']:+.4f}, HD {acc['segmentation_hd_diff']:+.2f} px",
        None if "skipped" in acc else acc["segmentation_at_least_reference"])
    add("GPU: >= 10x the reference on the same GPU", "no GPU lent", None)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not start_run(args):
        return 2
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        log.warning("load average %.2f: other work is running, timings will be slower than this machine can do", load_before)
    input_dir, counts = benchmark_set(args.scale, args.seed, args.cache)
    if args.model is not None:
        model_dir, state_dict = args.model, args.state_dict
    else:
        from benchmarks.model import benchmark_model

        model_dir, state_dict = benchmark_model(precisions=("fp32",) if args.no_int8 else ("fp32", "int8"),
                                                cache_root=args.cache)
    from benchmarks.cpu_path import describe_cpu_path, targets as cpu_targets
    from benchmarks.model import describe_model

    pipelines = run_pipelines(args, input_dir, model_dir, state_dict)
    outputs = args.cache / "outputs"
    comparisons, ratios, refusals = judge(input_dir, outputs, pipelines, "ours_int8")
    if CPU_AUTO in pipelines:
        from benchmarks.cpu_path import compare_auto

        comparisons[f"{CPU_AUTO} vs ours_fp32"] = compare_auto(input_dir, outputs / "ours_fp32", outputs / CPU_AUTO)
        if not comparisons[f"{CPU_AUTO} vs ours_fp32"]["agrees"] and ratios.get(CPU_AUTO) is not None:
            ratios[CPU_AUTO] = None
            refusals.append(f"{CPU_AUTO}: ratio refused, its outputs differ from fp32 beyond the CPU check's rule")
    from benchmarks.stages import model_floor, profile_stages

    log.info("profiling the stages")
    stages = {"fp32": profile_stages(input_dir, model_dir, "fp32", args.profile_per_kind, args.batch_size,
                                     torch_compare=True)}
    floor = {"fp32": {"fetal_head": model_floor(model_dir, "fp32", "fetal_head")}}
    if "ours_int8" in pipelines:
        stages["int8"] = profile_stages(input_dir, model_dir, "int8", args.profile_per_kind, args.batch_size)
        floor["int8"] = {"fetal_head": model_floor(model_dir, "int8", "fetal_head")}
    pipeline_stages = {}
    if CPU_AUTO in pipelines:
        from benchmarks.pipeline_stages import measure as measure_stages

        log.info("timing read, model, write and the bookkeeping inside the runtime")
        pipeline_stages = {"images": sum(counts.values()),
                           "figures": measure_stages(input_dir, model_dir, ["fp32", "auto"], 1, args.batch_size)}
    if args.no_accuracy:
        accuracy = {"skipped": "--no-accuracy"}
    elif not (args.accuracy_model / "manifest.json").is_file():
        accuracy = {"skipped": f"no trained model folder at {args.accuracy_model} (export it, then re-run)"}
    else:
        from benchmarks.accuracy import run_accuracy

        log.info("accuracy with %s", args.accuracy_model)
        accuracy = run_accuracy(args.accuracy_model, args.cache, args.accuracy_per_task, args.cache)
    result = {
        "command": "python -m benchmarks.run " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "gpu": _gpu_note(),
        "load": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "scale": args.scale, "seed": args.seed, "images": sum(counts.values()),
        "images_per_kind": kind_totals(counts), "counts": counts, "model": describe_model(model_dir),
        "pipelines": pipelines, "comparisons": comparisons, "ratios": ratios, "refusals": refusals,
        "stages": stages, "floor": floor, "accuracy": accuracy, "pipeline_stages": pipeline_stages,
        "cpu_path": describe_cpu_path(model_dir), "repeats": args.repeats,
    }
    result["targets"] = targets(result) + cpu_targets(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=1))
    section = render(result)
    (args.out / "results.md").write_text(section)
    if not args.no_markdown:
        update_benchmarks_md(args.markdown, section)
    for name, ratio in ratios.items():
        print(f"{name}: " + (f"{ratio:.2f}x the reference's throughput" if ratio else "no ratio"))
    for why in refusals:
        print(why)
        for c in comparisons.values():
            for row in c["differing_rows"][:20]:
                print(f"  {row}")
    print(f"results: {args.out / 'results.md'}")
    return 0 if all(m["returncode"] == 0 for m in pipelines.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
