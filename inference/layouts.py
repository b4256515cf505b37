"""Input layouts the CLI can serve, and what every layout's ``run`` receives and returns.

A layout is a module with ``NAME: str``, ``detect(input_dir: Path) -> bool`` and
``run(options: RunOptions, folder: ModelFolder) -> RunSummary``. ``LAYOUTS`` is tried
in order; the first whose ``detect`` is true serves the input. Modules are imported
only when tried, so a layout costs nothing when its input is absent.
"""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from inference.errors import FatalError

if TYPE_CHECKING:
    from inference.shard import Shard

#: (name, module) in detection order; a per-case (Grand-Challenge) layout goes before the batch one.
LAYOUTS: list[tuple[str, str]] = [
    ("grand-challenge", "inference.gc_layout"),
    ("batch", "inference.batch_layout"),
]


@dataclass(frozen=True)
class RunOptions:
    input_dir: Path
    output_dir: Path
    engine: str = "auto"  # auto | onnxruntime | torch
    device: str = "auto"  # auto | cuda | cpu
    precision: str = "auto"  # auto | fp32 | fp16 | int8
    threads: int | None = None
    batch_size: int = 8
    workers: int = 2
    strict: bool = False
    shard: "Shard | None" = None  # --shard I/N (batch layout): only these rows, written as a part
    verify_hashes: bool = True  # graphs checked against the manifest's sha256 when first used
    resume: bool = False  # batch layout: skip the rows the output folder's journal lists as done
    tta: str = "auto"  # auto | none | flip (inference.ensemble)


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

    def lines(self) -> list[str]:
        rate = sum(self.predicted.values()) / self.seconds if self.seconds > 0 else 0.0
        out = [f"{self.layout} layout: {self.rows} rows, {sum(self.predicted.values())} predicted, "
               f"{self.failed} failed ({self.fallbacks} with a fallback prediction)"]
        out += [f"  {task_id}: {count}" for task_id, count in sorted(self.predicted.items())]
        out.append(f"engine: {self.engine}; {self.seconds:.2f} s, {rate:.1f} images/s")
        return out


def detect_layout(input_dir: Path) -> ModuleType:
    for _name, module_name in LAYOUTS:
        module = importlib.import_module(module_name)
        if module.detect(input_dir):
            return module
    raise FatalError(
        f"{input_dir} matches no known input layout ({', '.join(n for n, _ in LAYOUTS)}); "
        "expected INPUT/inputs.json (a Grand-Challenge case) or INPUT/csv_files/*.csv (the batch layout)"
    )
