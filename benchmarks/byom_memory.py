"""Bring your own model: where the memory of 27 per-task sessions goes, and what sharing weights saves.

    python -m benchmarks.byom_memory [--out data/bench/byom_memory] [--repeats 7]

Builds the task-conditioned test network of ``benchmarks.byom`` (``make_conditioned_default``),
exports its whole graph and splits it per task exactly as ``exporter.split`` does
(``export_whole`` + ``split_per_task``: 27 pruned graphs, one ``weights.bin``), without the
parity checks (they do not change the graphs). Two more folders hold the same graphs after
ONNX Runtime optimized the whole graph once before the split: ``folded`` at the basic level
(batch norm folded into the convolutions, constants folded; standard ONNX operators) and
``nchwc`` at the all level (convolution weights reordered into this CPU's blocked NCHWc
layout, ``com.microsoft.nchwc`` operators: tied to the CPU's vector width). Then, for each
configuration, a fresh process creates the 27 sessions through ``inference.engines.runner.GraphRunner`` and runs
every task once on a batch of 8 (256 x 256, CPU fp32), and reports what its memory grew by:
RSS (what ``benchmarks.byom`` reports; counts a file page once per mapping), anonymous RSS
and PSS (physical memory: a file page mapped by several sessions counts once).

Configurations: the session graph optimization level (``all`` = the runtime's setting), and
``shared``: every external initializer of ``weights.bin`` loaded once (``np.memmap`` slices
as ``OrtValue``) and handed to every session with ``SessionOptions.add_initializer``.
Per-batch times of three tasks (median of ``--repeats``) show what each setting costs;
``--times-rounds N`` then times the four distinct speed settings again, alternating them N
rounds, so that a change in the machine's load does not favour one of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TIMED = ("fetal_head", "breast_2cls", "thyroid_nodule_det")
TIMED_CONFIGS = (("raw", "all"), ("nchwc", "all"), ("folded", "extended"), ("raw", "disabled"))
CONFIGS = (  # (graph folder, session optimization level, shared initializers, disable prepacking)
    ("raw", "all", False, False), ("raw", "all", True, False), ("raw", "all", False, True),
    ("raw", "extended", False, False), ("raw", "extended", True, False),
    ("raw", "disabled", False, False), ("raw", "disabled", True, False),
    ("folded", "all", False, False), ("folded", "all", True, False),
    ("folded", "extended", False, False), ("folded", "extended", True, False),
    ("nchwc", "all", False, False), ("nchwc", "all", True, False),
)
OFFLINE = {"folded": "ORT_ENABLE_BASIC", "nchwc": "ORT_ENABLE_ALL"}  # graphs optimized once before the split


def build(out: Path) -> None:
    """``out/raw`` (as exported), ``out/folded`` (basic level applied before the split), ``out/nchwc`` (all levels)."""
    import onnx
    import onnxruntime as ort
    import torch

    from benchmarks.byom import make_conditioned_default
    from exporter.byom import load_byom
    from exporter.sources.brought import task_entries
    from exporter.split import export_whole, split_per_task
    from network.weights import load_model_from_folder

    _, manifest = load_model_from_folder(REPO / "model_weights")
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "conditioned.pt"
    torch.save(make_conditioned_default().state_dict(), checkpoint)
    wrapper = load_byom(checkpoint, "benchmarks.byom:make_conditioned_default", {}, None, manifest.model.preprocessing)
    whole = out / "whole.onnx"
    export_whole(wrapper, (torch.zeros(2, 3, 256, 256), torch.zeros(2, dtype=torch.int64)), ["image", "task_index"],
                 wrapper.output_names(), whole)
    for name, level in OFFLINE.items():
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        options.optimized_model_filepath = str(out / f"whole_{name}.onnx")
        ort.InferenceSession(str(whole), options, providers=["CPUExecutionProvider"])
    tasks = task_entries(wrapper)
    outputs = {t.task_id: [t.output_tensor] for t in tasks}
    for name in ("raw", *OFFLINE):
        source = whole if name == "raw" else out / f"whole_{name}.onnx"
        graphs = split_per_task(onnx.load(str(source)), outputs, out / name)
        index = {"graphs": {k: v.model_dump() for k, v in graphs.items()},
                 "task_index": {t.task_id: t.task_index for t in tasks},
                 "external": _external_index(out / name, graphs)}
        (out / name / "index.json").write_text(json.dumps(index))


def _external_index(folder: Path, graphs: dict[str, Any]) -> dict[str, dict[str, list]]:
    """graph -> {initializer: [offset, length, numpy dtype, shape]} of its tensors in weights.bin."""
    import onnx
    from onnx import helper

    index: dict[str, dict[str, list]] = {}
    for name, graph in graphs.items():
        model = onnx.load(str(folder / graph.path), load_external_data=False)
        index[name] = {}
        for init in model.graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                entry = {e.key: e.value for e in init.external_data}
                index[name][init.name] = [int(entry["offset"]), int(entry["length"]),
                                          np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type)).str, list(init.dims)]
    return index


def _memory() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    rollup = dict(line.split(":", 1) for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
    mb = lambda text: int(text.split()[0]) / 1024  # noqa: E731
    return {"rss": mb(status["VmRSS"]), "anon": mb(status["RssAnon"]), "pss": mb(rollup["Pss"])}


def measure(folder: Path, level: str, shared: bool, no_prepack: bool, repeats: int) -> dict[str, Any]:
    """In this process: sessions for all tasks, one batch each; memory gained and per-batch times."""
    import onnxruntime as ort

    from contract.manifest import GraphFile, GraphSet
    from inference.engines.runner import GraphRunner

    index = json.loads((folder / "index.json").read_text())
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    before = _memory()
    values: dict[str, Any] = {}
    if shared:  # one OrtValue per tensor of weights.bin, kept for the process, read through one mapping
        weights = np.memmap(folder / "graphs" / "weights.bin", dtype=np.uint8, mode="r")
        for tensors in index["external"].values():
            for name, (offset, length, dtype, shape) in tensors.items():
                if name not in values:
                    array = weights[offset:offset + length].view(np.dtype(dtype)).reshape(shape)
                    values[name] = ort.OrtValue.ortvalue_from_numpy(array)

    class Runner(GraphRunner):
        def session(self, name: str) -> Any:
            self._graph = name
            return super().session(name)

        def _options(self) -> Any:
            options = super()._options()
            options.graph_optimization_level = levels[level]
            if no_prepack:
                options.add_session_config_entry("session.disable_prepacking", "1")
            for tensor in index["external"][self._graph] if shared else ():
                options.add_initializer(tensor, values[tensor])
            return options

    graph_set = GraphSet(precision="fp32", graphs={k: GraphFile(**v) for k, v in index["graphs"].items()},
                         providers=["CPUExecutionProvider"])
    runner = Runner(folder, graph_set)
    batch = np.random.default_rng(0).standard_normal((8, 3, 256, 256)).astype(np.float32)
    feeds = {task: {"task_index": np.full((8,), value, np.int64)} for task, value in index["task_index"].items()}
    outputs = {task: runner.run(batch, [task], wanted=graph_set.graphs[task].outputs, extra=feeds[task])
               for task in index["task_index"]}
    after = _memory()
    times = {}
    for task in TIMED:
        spans = []
        for _ in range(repeats):
            started = time.perf_counter()
            runner.run(batch, [task], extra=feeds[task])
            spans.append(time.perf_counter() - started)
        times[task] = round(statistics.median(spans) * 1000, 1)
    np.savez(folder.parent / f"outputs_{folder.name}_{level}_{int(shared)}_{int(no_prepack)}.npz",
             **{f"{task}:{name}": value for task, out in outputs.items() for name, value in out.items()})
    return {"gain_mb": {key: round(after[key] - before[key], 1) for key in after}, "batch8_ms": times}


def max_difference(out: Path, reference: str, other: str) -> float:
    """Largest absolute difference between two configurations' outputs over every task."""
    first, second = np.load(out / f"outputs_{reference}.npz"), np.load(out / f"outputs_{other}.npz")
    return max(float(np.max(np.abs(first[key].astype(np.float64) - second[key]))) for key in first.files)


def _child(out: Path, name: str, level: str, shared: bool, no_prepack: bool, repeats: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "benchmarks.byom_memory", "--repeats", str(repeats), "--child",
                           str(out / name), level, str(int(shared)), str(int(no_prepack))],
                          cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "data" / "bench" / "byom_memory")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--times-rounds", type=int, default=2)
    parser.add_argument("--child", nargs=4, metavar=("FOLDER", "LEVEL", "SHARED", "NO_PREPACK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    if args.child:
        folder, level, shared, no_prepack = args.child
        print(json.dumps(measure(Path(folder), level, shared == "1", no_prepack == "1", args.repeats)))
        return 0
    build(args.out)
    rows = []
    for name, level, shared, no_prepack in CONFIGS:
        row = {"graphs": name, "level": level, "shared": shared, "disable_prepacking": no_prepack,
               **_child(args.out, name, level, shared, no_prepack, args.repeats)}
        row["max_abs_diff_vs_current"] = max_difference(args.out, "raw_all_0_0", f"{name}_{level}_{int(shared)}_{int(no_prepack)}")
        rows.append(row)
        print(json.dumps(row), flush=True)
    rounds = [{f"{name}/{level}": _child(args.out, name, level, False, False, args.repeats)["batch8_ms"]
               for name, level in TIMED_CONFIGS} for _ in range(args.times_rounds)]
    for times in rounds:
        print(json.dumps(times), flush=True)
    (args.out / "result.json").write_text(json.dumps({"rows": rows, "alternating_times_ms": rounds,
                                                      "load_average_after": os.getloadavg()[0]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
