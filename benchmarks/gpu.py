"""The GPU benchmark, one command: ``python -m benchmarks.gpu [--scale 0.1] [--out DIR]``.

On the machine's first GPU (``--device cuda``, the default), in one invocation:

1. the CUDA provider must be usable (``inference.engines.providers.cuda_unavailable_reason``) and PyTorch must
   see the GPU; otherwise the run stops with one line naming the reason (exit 1), nothing timed;
2. the same inputs as ``benchmarks.run`` (``benchmarks.dataset``: 674 phantoms at scale 0.1) and the same
   random-weight B4 (``benchmarks.model``), exported with fp32 and fp16 graphs (cached under
   ``CACHE/gpu_model``, so the CPU benchmark's fp32+int8 folder is not re-exported);
3. the PyTorch-eager reference (``python -m benchmarks.reference --device cuda``) and ours
   (``python -m inference --device cuda --precision fp32`` and ``fp16``), same batch size, each in its
   own process under ``benchmarks.measure`` (wall time, time to first output, steady rate, host memory),
   with ``benchmarks.gpu_checks.GpuMemoryPoller`` sampling the process's GPU memory; each of our runs must
   log the CUDA provider as its engine, else it counts as failed;
4. agreement (``benchmarks.compare``, the rules of ``benchmarks.run``: a ratio is refused when outputs
   disagree) and throughput ratios to the reference, computed in this run;
5. parity in this process: ORT fp32 and fp16 against PyTorch on the same GPU, one batch per task
   (``benchmarks.gpu_checks.parity``), the relative error per kind (fp32 target <= 1e-4, fp16 reported),
   and the providers the ORT sessions really used;
6. ``OUT/result.json``, ``OUT/results.md`` and the "GPU results" section of BENCHMARKS.md (GPU's name).

``--device cpu`` is a smoke run of the same plumbing on the CPU (use a small ``--scale`` and ``--model``):
nvidia-smi is not queried, GPU memory is not measured, and the result and its Markdown say that no GPU
figure was measured; BENCHMARKS.md is then only touched when ``--markdown`` is given.

Exit status: 0 when every step ran on the requested device (targets met or not: the report says),
1 when CUDA is unusable, a pipeline failed or did not run on CUDA, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import shlex
import sys
from pathlib import Path

from benchmarks.dataset import benchmark_set, kind_totals
from benchmarks.gpu_checks import CudaUnusable, GpuMemoryPoller, gpu_identity, parity, require_cuda
from benchmarks.report import machine, update_benchmarks_md
from benchmarks.run import add_workload_arguments, measure_pipeline, reference_command, runtime_command, start_run
from benchmarks.run import judge as judge_outputs
from contract.atomic import atomic_write_text
from inference.errors import InferenceError

log = logging.getLogger("benchmarks")
GPU_START = "<!-- gpu results: start (written by python -m benchmarks.gpu) -->"
GPU_END = "<!-- gpu results: end -->"
PRECISIONS = ("fp32", "fp16")
FP32_PARITY = 1e-4
ENGINE_LINE = re.compile(r"inference engine: onnxruntime \S+ (\S+) (\S+)")
REFERENCE_LINE = re.compile(r"reference: INFO: device (\S+)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cuda (default); cpu: smoke run only")
    add_workload_arguments(p, Path("benchmarks/results/gpu"))
    p.add_argument("--markdown", type=Path, default=None,
                   help="file whose GPU results section is replaced (default BENCHMARKS.md with --device cuda)")
    p.add_argument("--no-markdown", action="store_true", help="do not touch any Markdown file")
    return p


def pipeline_device(name: str, log_file: str) -> str | None:
    """The provider (ours) or torch device (reference) a pipeline's log says it ran on."""
    text = Path(log_file).read_text(errors="replace") if Path(log_file).is_file() else ""
    found = (REFERENCE_LINE if name == "reference" else ENGINE_LINE).search(text)
    return found[1] if found else None


def run_pipeline(name: str, command: list[str], cache: Path, device: str) -> dict:
    if device != "cuda":
        m = measure_pipeline(name, command, cache)
        m["gpu_memory"] = {"peak_mib": None, "counted": "not measured (--device cpu smoke run)"}
    else:
        with GpuMemoryPoller() as poller:
            m = measure_pipeline(name, command, cache)
        m["gpu_memory"] = poller.as_dict()
    m["ran_on"] = pipeline_device(name, m["log_file"])
    wanted = device if name == "reference" else {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}[device]
    m["on_requested_device"] = m["ran_on"] is not None and m["ran_on"].startswith(wanted)
    return m


def _model(args: argparse.Namespace) -> tuple[Path, Path | None]:
    if args.model is not None:
        return args.model, args.state_dict
    from benchmarks.model import benchmark_model

    return benchmark_model(precisions=PRECISIONS, cache_root=args.cache / "gpu_model")


def measure_all(args: argparse.Namespace, input_dir: Path, model_dir: Path, state_dict: Path | None,
                precisions: list[str]) -> dict:
    commands = {"reference": reference_command(input_dir, model_dir, args.batch_size, args.reference_workers,
                                               state_dict, device=args.device)}
    for precision in precisions:
        commands[f"ours_{precision}"] = runtime_command(input_dir, model_dir, args.device, precision, args.batch_size)
    return {name: run_pipeline(name, command, args.cache, args.device) for name, command in commands.items()}


def judge(input_dir: Path, outputs: Path, pipelines: dict) -> tuple[dict, dict, list[str]]:
    """(comparisons, ratios, refusals): ``benchmarks.run.judge`` with fp16 as the reduced precision, and a
    ratio refused when a pipeline did not run on the requested device."""
    comparisons, ratios, refusals = judge_outputs(input_dir, outputs, pipelines, "ours_fp16")
    for name, ratio in ratios.items():
        if ratio is not None and not (pipelines[name]["on_requested_device"]
                                      and pipelines["reference"]["on_requested_device"]):
            ratios[name] = None
            refusals.append(f"{name}: ratio refused, a pipeline did not run on the requested device")
    return comparisons, ratios, refusals


def _f(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(result: dict) -> str:
    """The GPU results section (Markdown) of one run."""
    gpu, smoke = result["gpu"], result["device"] != "cuda"
    title = ("CPU smoke run of the GPU script (plumbing only: no GPU figure was measured)" if smoke
             else f"GPU run of {result['date']} on {gpu['name']} (driver {gpu['driver']})")
    m = result["machine"]
    lines = [f"### {title}", "", f"Command: `{result['command']}`", "",
             f"Date: {result['date']}. Host: {m['cpu']}, {m['cores']} CPUs, {m['memory']}; onnxruntime "
             f"{m['onnxruntime']}, torch {m['torch']}. Input: {result['images']} phantom images (scale "
             f"{result['scale']:g}, seed {result['seed']}): " + ", ".join(f"{n} {k}" for k, n in result["images_per_kind"].items())
             + f". Batch size {result['batch_size']}. Model: {result['model']}.", "",
             "| pipeline | ran on | wall s | images/s | vs reference | steady img/s | first output s | GPU memory peak | "
             "host RSS peak |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    ref_steady = result["pipelines"]["reference"].get("steady_rate")
    for name, p in result["pipelines"].items():
        ratio = result["ratios"].get(name)
        shown = "1.00x" if name == "reference" else (f"**{ratio:.2f}x**" if ratio else "refused")
        steady = _f(p.get("steady_rate"))
        if name != "reference" and ratio and p.get("steady_rate") and ref_steady:
            steady += f" ({p['steady_rate'] / ref_steady:.2f}x)"
        mib = p["gpu_memory"]["peak_mib"]
        lines.append(f"| {name} | {p['ran_on'] or 'unknown'} | {p['wall_s']:.1f} | {result['images'] / p['wall_s']:.2f} | "
                     f"{shown} | {steady} | {_f(p['first_output_s'])} | {'not measured' if mib is None else f'{mib} MiB'} | "
                     f"{p['peak_rss_largest_mb']:.0f} MB |")
    lines += ["", "GPU memory: " + "; ".join(f"{n}: {p['gpu_memory']['counted']}" for n, p in result["pipelines"].items())
              + ". Sampled with nvidia-smi every 0.1 s or slower: a lower bound.", "",
              "| comparison | rows | agrees | figures |", "|---|---:|---|---|"]
    for name, c in result["comparisons"].items():
        figures = ", ".join(f"{k} {v:.3g}" for k, v in c["figures"].items())
        lines.append(f"| {name} | {c['rows']} | {'yes' if c['agrees'] else '**no**'} | {figures} |")
    par = result["parity"]
    lines += ["", f"Parity, ONNX Runtime against PyTorch on {par.get('device', '?')} (one batch per task; relative error "
              "max|ort - torch| / max|torch|):", ""]
    if "error" in par:
        lines.append(f"not measured: {par['error']}")
    else:
        kinds = sorted({k for r in par["precisions"].values() for k in r["max_rel_error_per_kind"]})
        lines += ["| precision | sessions by provider | " + " | ".join(kinds) + " |", "|---|---|" + "---:|" * len(kinds)]
        for precision, r in par["precisions"].items():
            lines.append(f"| {precision} | " + ", ".join(f"{k}: {v}" for k, v in r["sessions_per_provider"].items())
                         + " | " + " | ".join(f"{r['max_rel_error_per_kind'].get(k, float('nan')):.2e}" for k in kinds) + " |")
    lines += ["", *[f"- {line}" for line in result["notes"]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not start_run(args):
        return 2
    notes = []
    if args.device == "cuda":
        try:
            require_cuda()
        except CudaUnusable as exc:
            print(f"error: the GPU benchmark cannot run: {exc}", file=sys.stderr)
            return 1
        gpu = gpu_identity()
    else:
        gpu = {"name": "none", "driver": "n/a", "source": "skipped: --device cpu smoke run, nvidia-smi not queried"}
        notes.append("--device cpu: a smoke run of the script's plumbing; every figure here is a CPU figure, "
                     "GPU memory was not measured, and no GPU result is claimed")
    input_dir, counts = benchmark_set(args.scale, args.seed, args.cache)
    model_dir, state_dict = _model(args)
    from benchmarks.model import describe_model
    from contract.manifest import load_manifest

    graph_sets = load_manifest(model_dir).graph_sets
    precisions = [p for p in PRECISIONS if p in graph_sets]
    if "fp16" not in precisions:
        notes.append(f"the model folder {model_dir} has no fp16 graphs: fp16 was not run")
    pipelines = measure_all(args, input_dir, model_dir, state_dict, precisions)
    comparisons, ratios, refusals = judge(input_dir, args.cache / "outputs", pipelines)
    try:
        par = parity(input_dir, model_dir, args.device, tuple(precisions), args.batch_size)
    except (InferenceError, RuntimeError, ValueError, OSError) as exc:  # EngineError; CUDA errors are RuntimeErrors
        par = {"device": args.device, "error": f"{type(exc).__name__}: {exc}"}
    sessions = {p: r["sessions_per_provider"] for p, r in par.get("precisions", {}).items()}
    cuda_check = {"pipelines": {n: p["ran_on"] for n, p in pipelines.items()}, "parity_sessions": sessions,
                  "verified": "not applicable (--device cpu)"}
    if args.device == "cuda":  # every pipeline's log and every parity session says CUDA
        cuda_check["verified"] = (all(p["on_requested_device"] for p in pipelines.values()) and bool(sessions)
                                  and all(set(s) == {"CUDAExecutionProvider"} for s in sessions.values()))
    notes.append(f"CUDA in use: {cuda_check['verified']} (pipelines' logs: "
                 + ", ".join(f"{n} {v}" for n, v in cuda_check["pipelines"].items())
                 + "; parity sessions: " + (json.dumps(sessions) if sessions else "none") + ")")
    if "error" not in par:
        fp32 = par["precisions"]["fp32"]["max_rel_error"]
        notes.append(f"fp32 parity {'n/a' if fp32 is None else f'{fp32:.2e}'} (target <= {FP32_PARITY:g}): "
                     + ("met" if fp32 is not None and fp32 <= FP32_PARITY else "**not met**"))
    ok = (all(p["returncode"] == 0 and p["on_requested_device"] for p in pipelines.values()) and "error" not in par
          and cuda_check["verified"] is not False)
    notes += refusals
    notes += [f"{n} did not run on the requested device (log says: {p['ran_on']})"
              for n, p in pipelines.items() if not p["on_requested_device"]]
    result = {
        "command": "python -m benchmarks.gpu " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "device": args.device,
        "gpu": gpu, "machine": machine(), "scale": args.scale, "seed": args.seed, "batch_size": args.batch_size,
        "images": sum(counts.values()), "images_per_kind": kind_totals(counts), "counts": counts,
        "model": describe_model(model_dir)["source"] or str(model_dir), "pipelines": pipelines,
        "comparisons": comparisons, "ratios": ratios, "parity": par, "cuda_check": cuda_check,
        "notes": notes, "ok": ok,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "result.json", json.dumps(result, indent=1))
    section = render(result)
    atomic_write_text(args.out / "results.md", section)
    markdown = args.markdown or (Path("BENCHMARKS.md") if args.device == "cuda" else None)
    if markdown is not None and not args.no_markdown:
        update_benchmarks_md(markdown, section, GPU_START, GPU_END, heading="## GPU results")
    print(section)
    print(f"results: {args.out / 'results.md'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
