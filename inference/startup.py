"""What a run checks and opens before it predicts: the model folder, the input and output folders.

Shared by ``python -m inference``, the Ray job and the Python API, so that each finds the
same model folder and refuses the same mistakes with the same message.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from inference.errors import FatalError

if TYPE_CHECKING:  # imported where used: resolve_model_dir is asked before the heavy imports (cli.run)
    from contract.manifest import ModelFolder
    from inference.bookkeeping.lock import FolderLock, Holder

log = logging.getLogger("inference")

OPT_ML_MODEL = Path("/opt/ml/model")
MODEL_DIR_ENV = "FMC_MODEL_DIR"
BAKED_MODEL_DIR = Path(__file__).resolve().parent.parent / "model_weights"
MODEL_DIR_HELP = (f"model folder: --weights if given; else {OPT_ML_MODEL} when it holds manifest.json (a model "
                  f"tarball uploaded to Grand-Challenge); else ${MODEL_DIR_ENV}; else the baked-in model_weights/.")


def resolve_model_dir(weights: Path | None) -> tuple[Path, str]:
    """The model folder to use and where it came from (see EPILOG)."""
    if weights is not None:
        return weights, "--weights"
    # An uploaded model this process cannot read must stop the run, not fall back silently.
    readable = os.access(OPT_ML_MODEL, os.R_OK | os.X_OK) and (
        not (OPT_ML_MODEL / "manifest.json").exists() or os.access(OPT_ML_MODEL / "manifest.json", os.R_OK))
    if OPT_ML_MODEL.is_dir() and not readable:
        raise FatalError(f"model folder {OPT_ML_MODEL} is not readable for uid {os.getuid()}; "
                         "make it readable for all (chmod -R a+rX on the folder) before mounting it")
    if (OPT_ML_MODEL / "manifest.json").is_file():
        return OPT_ML_MODEL, f"{OPT_ML_MODEL} (uploaded model)"
    env = os.environ.get(MODEL_DIR_ENV, "").strip()
    if env:
        return Path(env), f"${MODEL_DIR_ENV}"
    return BAKED_MODEL_DIR, "baked-in model_weights/"


def open_model(weights: Path | None, require_graphs: bool = False) -> ModelFolder:
    """The model folder a run uses (``resolve_model_dir``), its manifest read; FatalError naming the fix."""
    from contract.manifest import ManifestError, ModelFolder

    model_dir, origin = resolve_model_dir(weights)
    log.info("model folder: %s (from %s)", model_dir, origin)
    if not model_dir.is_dir():
        raise FatalError(f"model folder {model_dir} (from {origin}) does not exist; pass --weights DIR, a folder that "
                         "python export.py CHECKPOINT --out DIR made")
    try:
        return ModelFolder.open(model_dir, require_graphs=require_graphs)
    except ManifestError as exc:
        raise FatalError(str(exc)) from exc


def check_graph_files(folder: ModelFolder) -> None:
    """Missing graph files fail only the tasks that need them (logged here); none at all, or one that every
    task needs (the encoder), is fatal."""
    from inference.engines.graph_check import every_task_needs

    missing = folder.missing_graphs("fp32")
    graphs = folder.manifest.graph_set("fp32").graphs
    if len(missing) == len(graphs):
        raise FatalError(f"{folder.path}: none of the graphs listed in its manifest is there; re-export the model "
                         "(python export.py CHECKPOINT --out DIR) or pass --weights DIR")
    needed = [name for name in every_task_needs(folder.manifest) if name in missing]
    if needed:
        raise FatalError(f"{folder.path}: graph {needed[0]} ({graphs[needed[0]].path}) is missing and every task "
                         "needs it; re-export the model (python export.py CHECKPOINT --out DIR)")
    for name in missing:
        tasks = [t.task_id for t in folder.manifest.tasks if name in t.path]
        log.error("graph %s (%s) is missing from the model folder: the rows of %s will fail; re-export the model",
                  name, graphs[name].path, ", ".join(tasks) if len(tasks) < 4 else f"{len(tasks)} tasks")


def check_folders(input_dir: Path, output_dir: Path) -> None:
    """The input folder exists and the output folder does not lie inside it; nothing is written."""
    if not input_dir.is_dir():
        raise FatalError(f"input folder {input_dir} does not exist; pass --input DIR (default /input)")
    if output_dir.exists() and not output_dir.is_dir():
        raise FatalError(f"--output {output_dir} is a file, not a folder; pass --output DIR (a new or existing folder)")
    src, dst = input_dir.resolve(), output_dir.resolve()
    if dst == src or src in dst.parents:
        raise FatalError(f"output folder {output_dir} lies inside the input folder {input_dir}; "
                         "choose another --output")
    existing = next((p for p in (dst, *dst.parents) if p.exists()), dst)
    if not os.access(existing, os.W_OK | os.X_OK):  # asked without writing (a read-only mount, another owner)
        what = "" if existing == dst else f" (it does not exist and {existing} cannot hold it)"
        raise FatalError(f"output folder {output_dir} is not writable{what}; mount it writable or pass --output DIR")


@contextmanager
def claim_output(output_dir: Path, holder: Holder) -> Iterator[FolderLock]:
    """The output folder, created, proved writable (a full disk fails here) and locked for this run.

    A layout calls it once everything that can fail at start (the input, the model, the device, the
    precision) has been checked: a run that cannot start leaves the output folder as it was."""
    from inference.bookkeeping.lock import FolderLock
    from inference.outputs.writers import check_writable

    try:
        check_writable(output_dir)
    except OSError as exc:
        raise FatalError(f"output folder {output_dir} is not writable ({exc}); mount it writable or pass "
                         "--output DIR") from exc
    with FolderLock(output_dir, holder) as lock:
        yield lock
