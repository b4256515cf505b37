"""Training of the multi-task network (the recipe of seed 000), ``python -m training``.

Public API::

    from training import TrainOptions, train, load_checkpoint
    metrics = train(TrainOptions(train_dir="data/train", val_dir="data/val", out_dir="runs/x", steps=300))
    ckpt = load_checkpoint("runs/x/last.pt")  # {"config", "state_dict", "step", ...}

Modules: ``data`` (folder -> cached arrays), ``augment``, ``losses``, ``schedule``,
``validate``, ``checkpoint``, ``trainer`` (the loop), ``cli``.
"""

from training.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    checkpoint_config,
    load_checkpoint,
    save_checkpoint,
)
from training.data import TaskData, TrainingDataError, load_dataset
from training.options import DEFAULT_ENCODER, DEFAULT_PARAMS, TrainingError, TrainOptions


def train(options: TrainOptions) -> dict:
    """Run training (see ``training.trainer``); returns the last validation metrics."""
    from training.trainer import train as _train

    return _train(options)


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "DEFAULT_ENCODER",
    "DEFAULT_PARAMS",
    "TaskData",
    "TrainOptions",
    "TrainingDataError",
    "TrainingError",
    "checkpoint_config",
    "load_checkpoint",
    "load_dataset",
    "save_checkpoint",
    "train",
]
