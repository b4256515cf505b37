"""Model time of fp32 and a CPU variant, side by side, for the check's ``speedup`` and ``startup_s``.

One task of each kind present in the held-out images, a batch of up to 8 of its images (the
runtime's preprocessing); both engines (``OnnxEngine`` at ``fp32`` and at the variant) run it in
alternating rounds, so that other load on the machine slows both alike; the median per engine
and kind, weighted by the kind's share of the rows, gives milliseconds per image. ``startup_s``:
what the variant costs a fresh process before its first batch beyond fp32's: importing the
runtime (timed in a child process) and compiling the timed tasks' graphs, less fp32's sessions.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.csv_layout import input_rows
from contract.imaging import preprocess, read_image
from contract.manifest import ModelFolder
from inference.engines.cpu_variants import VARIANTS
from inference.engines.onnx_engine import OnnxEngine

ROUNDS = 5
BATCH = 8


@dataclass(frozen=True)
class Speed:
    fp32_ms_per_image: float
    variant_ms_per_image: float
    startup_s: float

    @property
    def speedup(self) -> float:
        return self.fp32_ms_per_image / self.variant_ms_per_image if self.variant_ms_per_image > 0 else 0.0


def import_seconds(module: str) -> float:
    """Wall time of importing ``module`` in a fresh interpreter, less the interpreter's own start."""
    def timed(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=False, capture_output=True)
        return time.perf_counter() - started

    return max(0.0, timed(f"import {module}") - timed("pass"))


def _batches(folder: ModelFolder, images_dir: Path) -> tuple[dict[str, tuple[str, np.ndarray]], Counter]:
    """kind -> (task id, a preprocessed batch of its images); and the rows per kind."""
    rows = [r for r in input_rows(images_dir) if r.get("task_id") in {t.task_id for t in folder.manifest.tasks}]
    per_kind = Counter(folder.manifest.task(r["task_id"]).kind.value for r in rows)
    chosen: dict[str, tuple[str, np.ndarray]] = {}
    for kind in per_kind:
        task_rows = [r for r in rows if folder.manifest.task(r["task_id"]).kind.value == kind]
        task_id = task_rows[0]["task_id"]
        files = [images_dir / "csv_files" / r["image_path"] for r in task_rows if r["task_id"] == task_id][:BATCH]
        chosen[kind] = (task_id, preprocess([read_image(f) for f in files], folder.manifest.model.preprocessing))
    return chosen, per_kind


def measure_speed(folder: ModelFolder, variant: str, images_dir: Path, threads: int) -> Speed:
    """fp32 and ``variant`` model time per image on the held-out images (module docstring)."""
    batches, per_kind = _batches(folder, Path(images_dir))
    engines = {"fp32": OnnxEngine(folder, "cpu", "fp32", threads), variant: OnnxEngine(folder, "cpu", variant, threads)}
    first: dict[str, float] = {}
    for name, engine in engines.items():
        started = time.perf_counter()
        for task_id, batch in batches.values():
            engine.run(folder.manifest.task(task_id), batch)
        first[name] = time.perf_counter() - started
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(ROUNDS):
        for kind, (task_id, batch) in batches.items():
            for name, engine in engines.items():
                started = time.perf_counter()
                engine.run(folder.manifest.task(task_id), batch)
                times.setdefault((name, kind), []).append((time.perf_counter() - started) / len(batch))
    total = sum(per_kind.values())

    def ms_per_image(name: str) -> float:
        return 1000 * sum(statistics.median(times[(name, k)]) * n / total for k, n in per_kind.items())

    fp32_ms, variant_ms = ms_per_image("fp32"), ms_per_image(variant)
    steady = {name: sum(statistics.median(times[(name, k)]) * len(b) for k, (_, b) in batches.items())
              for name in engines}
    compile_extra = (first[variant] - steady[variant]) - (first["fp32"] - steady["fp32"])
    startup = max(0.0, compile_extra) + import_seconds(VARIANTS[variant].runtime)
    return Speed(fp32_ms, variant_ms, startup)
