"""Input layouts the CLI can serve, and what every layout's ``run`` receives and returns.

A layout is a module with ``NAME: str``, ``detect(input_dir: Path) -> bool`` and
``run(options: RunOptions, folder: ModelFolder) -> RunSummary`` (``inference.options``). ``LAYOUTS`` is tried
in order; the first whose ``detect`` is true serves the input. Modules are imported
only when tried, so a layout costs nothing when its input is absent.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from inference.errors import FatalError

#: (name, module) in detection order; a per-case (Grand-Challenge) layout goes before the batch one.
LAYOUTS: list[tuple[str, str]] = [
    ("grand-challenge", "inference.layouts.case"),
    ("batch", "inference.layouts.batch"),
]


def detect_layout(input_dir: Path) -> ModuleType:
    for _name, module_name in LAYOUTS:
        module = importlib.import_module(module_name)
        if module.detect(input_dir):
            return module
    raise FatalError(
        f"{input_dir} matches no known input layout ({', '.join(n for n, _ in LAYOUTS)}); "
        "expected INPUT/inputs.json (a Grand-Challenge case) or INPUT/csv_files/*.csv (the batch layout)"
    )
