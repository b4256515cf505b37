"""Bring your own model: export time, per-task run time and folder size against the split baseline.

    python -m benchmarks.byom [--out data/bench/byom] [--repeats 30]

The split baseline is the default model (``model_weights/``: mobilenet_v2 + FPN, 27
heads, exported as encoder / fpn / head graphs). The brought model is the same network
made task-conditioned (``make_conditioned_default``): a task embedding scales the
deepest encoder features (FiLM) before the FPN and the global heads, and
``forward(image, task_index)`` returns every task's raw output, as a team's M2DINO-style
network would. It goes through ``export.py --model`` (one whole graph, pruned per task,
weights in one shared file). Run times: ``OnnxEngine.run`` (task_index fed by the
runtime) on a batch of 8 at 256 x 256, CPU provider fp32, median of ``--repeats``;
also the whole unpruned graph asked for a classification output only, to show what
pruning saves.
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

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
TASKS = ("fetal_head", "cardiac_multi", "breast_2cls", "organ_cls", "thyroid_nodule_det", "IUGC")


class ConditionedDefault(nn.Module):
    """The default model with a task embedding (FiLM on the deepest features): forward(image, task_index)."""

    def __init__(self, model_dir: str = str(REPO / "model_weights")):
        super().__init__()
        from network.weights import load_model_from_folder

        base, manifest = load_model_from_folder(Path(model_dir))
        self.base = base
        self.tasks = [t.model_dump(mode="json") for t in manifest.model.tasks]
        self.task_embedding = nn.Embedding(len(self.tasks), base.encoder.out_channels[-1])
        nn.init.normal_(self.task_embedding.weight, std=0.1)

    def forward(self, image: torch.Tensor, task_index: torch.Tensor) -> dict[str, torch.Tensor]:
        features = list(self.base.encoder(image))
        features[-1] = features[-1] * (1.0 + self.task_embedding(task_index)[:, :, None, None])
        dense = self.base.fpn_decoder(features)
        return {t["task_id"]: self.base.heads[t["task_id"]](dense if self.base._dense[t["task_id"]] else features[-1])
                for t in self.tasks}


def make_conditioned_default() -> ConditionedDefault:
    torch.manual_seed(0)
    return ConditionedDefault()


def _median_run(engine, task, batch: np.ndarray, repeats: int) -> float:
    engine.run(task, batch)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.run(task, batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def run_times(model_dir: Path, repeats: int) -> dict[str, float]:
    from contract.manifest import ModelFolder
    from inference.engines.onnx_engine import OnnxEngine

    folder = ModelFolder.open(model_dir)
    manifest = folder.manifest
    engine = OnnxEngine(folder, device="cpu", precision="fp32")
    batch = np.random.default_rng(0).standard_normal((8, 3, 256, 256)).astype(np.float32)
    return {task: _median_run(engine, manifest.task(task), batch, repeats) for task in TASKS}


def whole_graph_cls_time(whole: Path, repeats: int) -> float:
    """The unpruned whole graph, fetching only breast_2cls.probs (what pruning is compared with)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    session = ort.InferenceSession(str(whole), options, providers=["CPUExecutionProvider"])
    feeds = {"image": np.random.default_rng(0).standard_normal((8, 3, 256, 256)).astype(np.float32),
             "task_index": np.full((8,), 12, dtype=np.int64)}
    session.run(["breast_2cls.probs"], feeds)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(["breast_2cls.probs"], feeds)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def rss_after_every_task(model_dir: Path) -> float:
    """Resident memory (MB) a fresh process gains by running every task once (batch 8, CPU fp32)."""
    code = ("import sys, numpy as np; from pathlib import Path; from inference.engines.onnx_engine import OnnxEngine; "
            "from contract.manifest import ModelFolder; import onnxruntime; "
            "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20; "
            "f = ModelFolder.open(Path(sys.argv[1])); m = f.manifest; before = rss(); "
            "e = OnnxEngine(f, device='cpu', precision='fp32'); "
            "b = np.zeros((8, 3, *m.model.preprocessing.input_size), np.float32); [e.run(t, b) for t in m.tasks]; "
            "print(rss() - before)")
    done = subprocess.run([sys.executable, "-c", code, str(model_dir)], cwd=REPO, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "data" / "bench" / "byom")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from exporter import export_model
    from exporter.byom import load_byom
    from exporter.folder import folder_bytes
    from exporter.split import export_whole
    from network.weights import load_model_from_folder

    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    baseline, manifest = load_model_from_folder(REPO / "model_weights")
    started = time.perf_counter()
    export_model(baseline, args.out / "baseline")
    baseline_export = time.perf_counter() - started

    net = make_conditioned_default()
    checkpoint = args.out / "conditioned.pt"
    torch.save(net.state_dict(), checkpoint)
    started = time.perf_counter()
    wrapper = load_byom(checkpoint, "benchmarks.byom:make_conditioned_default", {}, None, manifest.model.preprocessing)
    export_model(wrapper, args.out / "conditioned")
    byom_export = time.perf_counter() - started
    whole = args.out / "whole.onnx"
    export_whole(wrapper, (torch.zeros(2, 3, 256, 256), torch.zeros(2, dtype=torch.int64)), ["image", "task_index"],
                 wrapper.output_names(), whole)

    result = {
        "export_s": {"baseline": baseline_export, "conditioned": byom_export},
        "run_ms_batch8": {"baseline": run_times(args.out / "baseline", args.repeats),
                          "conditioned": run_times(args.out / "conditioned", args.repeats)},
        "rss_gain_mb_every_task": {"baseline": rss_after_every_task(args.out / "baseline"),
                                   "conditioned": rss_after_every_task(args.out / "conditioned")},
        "whole_graph_breast_2cls_ms": whole_graph_cls_time(whole, args.repeats),
        "parameter_bytes": {"baseline": sum(v.numel() * v.element_size() for v in baseline.state_dict().values()),
                            "conditioned": sum(v.numel() * v.element_size() for v in net.state_dict().values())},
        "folder_bytes": {"baseline": folder_bytes(args.out / "baseline"), "conditioned": folder_bytes(args.out / "conditioned")},
        "weights_bin_bytes": (args.out / "conditioned" / "graphs" / "weights.bin").stat().st_size,
        "load_average": [load_before, os.getloadavg()[0]],
        "cpus": len(os.sched_getaffinity(0)),
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
