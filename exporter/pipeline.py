"""The one export pipeline: a source (``exporter.sources``) -> a verified model folder, written atomically.

Stages, in order, the same for every source:

1. graphs: the source's fp32 graphs in its layout (one file per stage, or one whole graph
   pruned per task sharing one weights file), each passed by onnx's checker;
2. the PyTorch fallback's extra tensors (sources with a network);
3. parity: ONNX Runtime (CPU) against the source's reference, every output of every
   task, batch 1 and 8, random and image-like inputs (``exporter.parity``);
4. precisions: fp16 / int8 sets beside fp32, their deviation measured (``exporter.precision``);
5. folder: ``manifest.json`` written last, every file readable by a container's non-root
   user, the fallback proven to rebuild the network bit for bit, and the staged folder
   swapped in whole (``exporter.folder``); any failure leaves the old folder untouched.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

from contract.defaults import PRECISIONS
from contract.manifest import GraphSet, Manifest, TorchFallback, write_manifest
from contract.tasks import TaskRegistry
from exporter.errors import CalibrationUsageError, UsageError
from exporter.fallback import verify_fallback, write_fallback_extras
from exporter.folder import folder_bytes, staged_folder
from exporter.parity import TOLERANCE_FP32, measure_parity
from exporter.precision import PROVIDERS, export_variant
from exporter.sources.base import Source

log = logging.getLogger(__name__)

EXPORTER_VERSION = "1.0"
VERSIONED = [
    ("torch", "torch"),
    ("onnx", "onnx"),
    ("onnxruntime", "onnxruntime-gpu"),
    ("segmentation_models_pytorch", "segmentation-models-pytorch"),
    ("timm", "timm"),
    ("onnxconverter_common", "onnxconverter-common"),
]


def versions() -> dict[str, str]:
    found = {"exporter": EXPORTER_VERSION}
    for name, dist in VERSIONED:
        try:
            found[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            if name == "onnxruntime":
                import onnxruntime

                found[name] = onnxruntime.__version__
    return found


def check_precisions(precisions: Iterable[str], calibration_images: Sequence[Path] | None) -> list[str]:
    """``["fp32", ...]`` without repeats; UsageError for an unknown precision or int8 without calibration images."""
    wanted = ["fp32", *[p for p in precisions if p != "fp32"]]
    unknown = [p for p in wanted if p not in PRECISIONS]
    if unknown:
        raise UsageError(f"unknown precision {unknown[0]!r}; choose from {', '.join(PRECISIONS)}")
    if "int8" in wanted and not calibration_images:
        raise CalibrationUsageError("--precision int8 needs calibration images: pass --calibration-dir DIR")
    return list(dict.fromkeys(wanted))


def official_coverage(task_ids: Iterable[str]) -> str | None:
    """``serves 5 of the 27 official tasks; not served: ...`` for a model serving a part of them, else None."""
    official = TaskRegistry.official().ids
    served = set(task_ids)
    missing = [task_id for task_id in official if task_id not in served]
    if not missing:
        return None
    others = sorted(served - set(official))
    extra = f" (and {len(others)} of its own: {', '.join(others)})" if others else ""
    return (f"serves {len(official) - len(missing)} of the {len(official)} official tasks{extra}; "
            f"not served: {', '.join(missing)}")


def _readable(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            os.chmod(path, 0o644)  # readable by a container's non-root user


def export_source(source: Source, out_dir: Path, precisions: Sequence[str] = ("fp32",),
                  calibration_images: Sequence[Path] | None = None, info: dict | None = None,
                  tolerance: float = TOLERANCE_FP32) -> Manifest:
    """Run every stage on ``source`` and replace ``out_dir`` only when all succeeded; ``info``: the manifest's source."""
    wanted = check_precisions(precisions, calibration_images)
    config, started = source.config, time.perf_counter()
    with staged_folder(Path(out_dir)) as stage_dir, tempfile.TemporaryDirectory() as scratch:
        layout = source.layout(Path(scratch))
        graph_sets = {"fp32": GraphSet(precision="fp32", graphs=layout.write_fp32(stage_dir), providers=PROVIDERS["fp32"])}
        network = source.network
        fallback = TorchFallback() if network is None else write_fallback_extras(network, stage_dir, graph_sets["fp32"])
        parity = measure_parity(source, layout, stage_dir, graph_sets["fp32"], tolerance)
        for precision in wanted[1:]:
            graph_sets[precision] = export_variant(precision, layout, stage_dir, graph_sets["fp32"], source.tasks,
                                                   config.preprocessing, calibration_images)
        manifest = Manifest(
            model=config,
            tasks=source.tasks,
            graph_sets=graph_sets,
            parity=parity,
            torch_fallback=fallback,
            versions=versions(),
            source={k: str(v) for k, v in (info or {}).items()},
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        write_manifest(manifest, stage_dir)
        _readable(stage_dir)
        if network is not None:
            verify_fallback(network, stage_dir)
        total = folder_bytes(stage_dir)
    log.info("exported %d tasks to %s in %.1f s (%.1f MB)", len(source.tasks), out_dir,
             time.perf_counter() - started, total / 1e6)
    coverage = official_coverage(t.task_id for t in source.tasks)
    if coverage:
        log.info("%s", coverage)
    return manifest
