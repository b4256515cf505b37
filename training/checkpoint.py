"""Training checkpoints: one ``torch.save`` dict that ``export.py`` reads and ``--resume`` continues.

Keys: ``format`` ("fmc-uia-checkpoint"), ``version`` (1), ``config`` (the
``ModelConfig`` as JSON data: rebuild the network with
``network.build_model(ModelConfig.model_validate(ckpt["config"]))``),
``state_dict`` (the model's), ``optimizer``, ``scheduler``, ``step``, ``epoch``,
``metrics`` (the last validation), ``rng`` (every random state of the run),
``best_score``, ``elapsed_s`` (training seconds so far) and ``options`` (the
training options, for the record). Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from contract.manifest import ModelConfig

CHECKPOINT_FORMAT = "fmc-uia-checkpoint"
CHECKPOINT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"


class CheckpointError(ValueError):
    """A file that is not a training checkpoint of this project."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format and version) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(data, handle)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; checkpoints are shared artefacts
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; CheckpointError when it is something else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)  # as export.py reads it
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a {CHECKPOINT_FORMAT} file (a training checkpoint of this project)")
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {data.get('version')} is not supported")
    return data


def checkpoint_config(data: dict[str, Any]) -> ModelConfig:
    """The model configuration stored in a checkpoint."""
    return ModelConfig.model_validate(data["config"])
