"""A run's options, defined once: the command-line arguments that ``python -m inference`` and its Ray
job share (``add_model_arguments``), what every layout's ``run`` receives (``RunOptions``) and
returns (``RunSummary``).

Standard library only: imported before the arguments are parsed, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from contract.defaults import DEVICES, ENGINES, PRECISION_CHOICES, TTA_CHOICES

if TYPE_CHECKING:
    from inference.scale.shard import Shard


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, folders_required: bool = False) -> None:
    """The options every runner of the batch job takes: folders, model, device, precision, engine, batch, TTA."""
    if folders_required:
        parser.add_argument("--input", type=Path, required=True, help="input folder (INPUT/csv_files/*.csv)")
        parser.add_argument("--output", type=Path, required=True, help="output folder")
    else:
        parser.add_argument("--input", type=Path, default=Path("/input"), help="input folder (default: /input)")
        parser.add_argument("--output", type=Path, default=Path("/output"), help="output folder (default: /output)")
    parser.add_argument("--weights", type=Path, default=None, help="model folder (manifest.json + ONNX graphs)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="auto: CUDA when it really works, else CPU (default)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                        help="graph set; auto: fp16 on CUDA when the model has it, else fp32")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="auto: ONNX Runtime, PyTorch on the same weights if it fails (default)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per model call (default: 8)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for the model (default: the cgroup CPU quota, else the CPU count)")
    parser.add_argument("--strict", action="store_true", help="no fallback prediction for failed rows")
    parser.add_argument("--tta", choices=TTA_CHOICES, default="auto",
                        help="test-time augmentation: flip also runs each image's mirror and averages "
                        "(tasks whose flip rule is unsafe are never flipped); auto: what the manifest says (default)")


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """``python -m inference ray`` and ``python -m inference.scale.ray_job``: the model options, then the pool's."""
    add_model_arguments(parser, folders_required=True)
    parser.add_argument("--actors", type=positive_int, default=1, help="actors, each with one loaded model (default: 1)")
    parser.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPUs per actor (default: 0, CPU)")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs per actor (default: 1)")
    parser.add_argument("--address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS, else a local one)")


@dataclass(frozen=True)
class RunOptions:
    input_dir: Path
    output_dir: Path
    engine: str = "auto"  # contract.defaults.ENGINES
    device: str = "auto"  # contract.defaults.DEVICES
    precision: str = "auto"  # contract.defaults.PRECISION_CHOICES
    threads: int | None = None
    batch_size: int = 8
    workers: int = 2
    strict: bool = False
    shard: "Shard | None" = None  # --shard I/N (batch layout): only these rows, written as a part
    verify_hashes: bool = True  # graphs checked against the manifest's sha256 when first used
    resume: bool = False  # batch layout: skip the rows the output folder's journal lists as done
    tta: str = "auto"  # contract.defaults.TTA_CHOICES (inference.engines.ensemble)
    biometry: bool = False  # batch layout: OUTPUT/biometry.json from the finished outputs (inference.outputs.biometry)


@dataclass
class RunSummary:
    layout: str
    rows: int = 0
    predicted: Counter = field(default_factory=Counter)  # task_id -> rows predicted by the model
    failed: int = 0
    fallbacks: int = 0
    engine: str = "(none)"
    seconds: float = 0.0
    outputs: str = ""  # the closing line: where the outputs went (batch layout)
    kinds: dict[str, str] = field(default_factory=dict)  # task_id -> its kind's name (the per-kind lines)
    unserved: Counter = field(default_factory=Counter)  # task_id -> rows of official tasks the model does not serve
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds summed over its threads
    load_seconds: float = 0.0  # of the model stage: graph checks and sessions made on first use

    def lines(self) -> list[str]:
        predicted = sum(self.predicted.values())
        rate = predicted / self.seconds if self.seconds > 0 else 0.0
        unserved = sum(self.unserved.values())
        out = [f"{self.layout} layout: {_count(self.rows, 'row')}, {predicted} predicted, {self.failed} failed"
               + (f" ({self.fallbacks} with a fallback prediction)" if self.failed or self.fallbacks else "")
               + (f", {unserved} of tasks the model does not serve" if unserved else "")]
        by_kind: dict[str, Counter] = {}
        for task_id, count in self.predicted.items():
            by_kind.setdefault(self.kinds.get(task_id, "?"), Counter())[task_id] += count
        for kind, tasks in sorted(by_kind.items(), key=lambda item: item[0].lower()):
            out.append(f"  {kind}: {_count(sum(tasks.values()), 'row')} predicted in {_count(len(tasks), 'task')}")
        for task_id, count in sorted(self.unserved.items()):
            out.append(f"  not served by this model: {task_id} ({_count(count, 'row')}, fallback predictions)")
        stages = ", ".join(f"{name} {seconds:.2f} s" + (f" (loading {self.load_seconds:.2f} s)" if name == "model" else "")
                           for name, seconds in self.stages.items())
        out.append(f"engine: {self.engine}")
        out.append(f"{self.seconds:.2f} s, {rate:.1f} images/s" + (f"; stages summed over threads: {stages}" if stages else ""))
        return out


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
