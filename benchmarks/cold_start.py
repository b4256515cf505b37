#!/usr/bin/env python3
"""Cold start of one Grand-Challenge case: process start to outputs written, as the platform pays it.

    python benchmarks/cold_start.py [--weights DIR] [--repeats 5] [--cases test/gc/*/input ...]
                                    [--importtime] [--ort-levels]

Each repeat runs ``python -m inference --input CASE --output TMP`` as a fresh subprocess and
times it from just before the process is spawned to its exit (the outputs are then on disk and
checked). Prints, per case, the median and max wall time and the child's CPU time (user+sys,
less sensitive to other load on the machine) as a markdown table, plus the load average and the bare
interpreter start for reference. ``--importtime``: one extra run under ``python -X importtime``,
summarized as the slowest top-level imports. ``--ort-levels``: ONNX Runtime session-creation time
of each case's graphs (encoder, FPN, head) at optimization levels BASIC, EXTENDED and ALL.
Without --weights the runtime's default model folder is used (see ``python -m inference --help``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, subprocess.CompletedProcess, float]:
    """(wall seconds, result, CPU seconds user+sys of the child): CPU time is robust to a busy machine."""
    cpu = _children_cpu()
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, result, _children_cpu() - cpu


def case_command(case: Path, output: Path, weights: Path | None, extra: list[str] = ()) -> list[str]:
    command = [sys.executable, *extra, "-m", "inference", "--input", str(case), "--output", str(output)]
    return command + (["--weights", str(weights)] if weights is not None else [])


def task_of(case: Path) -> str:
    for entry in json.loads((case / "inputs.json").read_text()):
        if isinstance(entry.get("value"), str):
            return entry["value"]
    return json.loads((case / "task-id.json").read_text())


def bench_case(case: Path, weights: Path | None, repeats: int, env: dict[str, str],
               root: Path = ROOT) -> tuple[list[float], list[float]]:
    """``repeats`` runs of one case by the checkout at ``root``: (wall seconds, CPU seconds)."""
    times, cpu_times = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            output = Path(tmp) / "output"
            seconds, result, cpu = timed_run(case_command(case.absolute(), output, weights), env, root)
            written = [p for p in output.rglob("*") if p.is_file()]
            if result.returncode != 0 or not written:
                raise SystemExit(f"{case}: inference failed (exit {result.returncode}):\n{result.stderr}")
            times.append(seconds)
            cpu_times.append(cpu)
    return times, cpu_times


def import_summary(case: Path, weights: Path | None, env: dict[str, str], top: int = 12) -> list[str]:
    """Top-level imports (directly under the main module) by cumulative microseconds, from -X importtime."""
    with tempfile.TemporaryDirectory() as tmp:
        _, result, _ = timed_run(case_command(case, Path(tmp) / "o", weights, ["-X", "importtime"]), env)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith(" ") and not name.startswith("  "):  # one space of indentation: top level
            rows.append((int(cumulative), name.strip()))
    rows.sort(reverse=True)
    total = sum(c for c, _ in rows)
    lines = [f"| {name} | {c / 1000:.0f} |" for c, name in rows[:top]]
    return ["| top-level import | cumulative ms |", "|---|---:|", *lines, f"| (all top-level imports) | {total / 1000:.0f} |"]


ORT_PROBE = """
import json, sys, time
import onnxruntime as ort
from pathlib import Path
from contract.manifest import load_manifest
model_dir, task_id, level = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
manifest = load_manifest(model_dir)
graphs = manifest.graph_set("fp32").graphs
options = ort.SessionOptions()
options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
options.log_severity_level = 3
out = {}
for name in manifest.task(task_id).path:
    started = time.perf_counter()
    ort.InferenceSession(str(model_dir / graphs[name].path), sess_options=options, providers=["CPUExecutionProvider"])
    out[name] = time.perf_counter() - started
print(json.dumps(out))
"""


def ort_levels(model_dir: Path, task_id: str, env: dict[str, str]) -> list[str]:
    lines = []
    for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
        result = subprocess.run([sys.executable, "-c", ORT_PROBE, str(model_dir), task_id, level], cwd=ROOT,
                                env=env, capture_output=True, text=True, check=True)
        per_graph = json.loads(result.stdout)
        detail = ", ".join(f"{k} {v * 1000:.0f}" for k, v in per_graph.items())
        lines.append(f"| {task_id} | {level} | {sum(per_graph.values()) * 1000:.0f} | {detail} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=None, help="model folder (default: the runtime's default)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", type=Path, nargs="*", default=None,
                        help="case input folders (default: every test/gc/*/input)")
    parser.add_argument("--importtime", action="store_true", help="summarize python -X importtime for the first case")
    parser.add_argument("--ort-levels", action="store_true", help="session creation time per optimization level")
    parser.add_argument("--against", type=Path, default=None, metavar="CHECKOUT",
                        help="another checkout of the project (e.g. git archive of main): its runs alternate with "
                        "this one's, case by case, and both are reported side by side")
    args = parser.parse_args(argv)
    if args.against is not None:
        return compare_checkouts(args)
    cases = args.cases or sorted(p for p in (ROOT / "test" / "gc").glob("*/input") if (p / "inputs.json").is_file())
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}

    bare = [timed_run([sys.executable, "-c", "pass"], env)[0] for _ in range(args.repeats)]
    print(f"model: {args.weights or '(runtime default)'}; {args.repeats} runs per case; "
          f"CPU: {os.cpu_count()} logical cores, load average {os.getloadavg()[0]:.1f}; "
          f"python start alone: {statistics.median(bare):.3f} s median")
    print("| case | task | median s | max s | min s | median CPU s (user+sys) |")
    print("|---|---|---:|---:|---:|---:|")
    for case in cases:
        bench_case(case, args.weights, 1, env)  # warm the page cache and .pyc files, not timed
        times, cpu = bench_case(case, args.weights, args.repeats, env)
        print(f"| {case.parent.name} | {task_of(case)} | {statistics.median(times):.2f} | {max(times):.2f} | "
              f"{min(times):.2f} | {statistics.median(cpu):.2f} |", flush=True)
    if args.importtime:
        print()
        print("\n".join(import_summary(cases[0], args.weights, env)))
    if args.ort_levels:
        from inference.startup import resolve_model_dir

        model_dir, _ = resolve_model_dir(args.weights)
        print()
        print("| task | optimization level | sessions ms | per graph ms |")
        print("|---|---|---:|---|")
        for case in cases:
            print("\n".join(ort_levels(model_dir, task_of(case), env)), flush=True)
    return 0


def compare_checkouts(args: argparse.Namespace) -> int:
    """This checkout and ``--against``, one run each in turn per repeat and case: medians side by side."""
    cases = args.cases or sorted(p for p in (ROOT / "test" / "gc").glob("*/input") if (p / "inputs.json").is_file())
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    env.pop("PYTHONPATH", None)  # each checkout imports its own packages (its working directory)
    roots = {"this": ROOT, "against": args.against.resolve()}
    print(f"this: {ROOT}; against: {roots['against']}; {args.repeats} runs each, alternating; load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| case | this: median s | against: median s | this: median CPU s | against: median CPU s |")
    print("|---|---:|---:|---:|---:|")
    for case in cases:
        results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in roots}
        for name, root in roots.items():
            bench_case(case, args.weights, 1, env, root)  # page cache and .pyc files warm, not timed
        for _ in range(args.repeats):
            for name, root in roots.items():
                wall, cpu = bench_case(case, args.weights, 1, env, root)
                results[name][0].extend(wall)
                results[name][1].extend(cpu)
        med = {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in results.items()}
        print(f"| {case.parent.name} | {med['this'][0]:.3f} | {med['against'][0]:.3f} | {med['this'][1]:.3f} | "
              f"{med['against'][1]:.3f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
