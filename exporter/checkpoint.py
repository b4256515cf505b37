"""Read a checkpoint and work out the network it belongs to.

Two layouts are accepted:

1. the official baseline's plain ``state_dict`` (``encoder.*``, ``fpn_decoder.*``,
   ``heads.<task_id>.*``), possibly wrapped in ``{"state_dict": ...}`` /
   ``{"model": ...}`` or saved from ``DataParallel`` (``module.`` prefix). Its
   tasks are read from the head keys (kind from the key pattern, class counts
   from the weight shapes); its encoder from the encoder's tensor shapes;
2. this project's training checkpoints: ``{"format": "fmc-uia-checkpoint",
   "version": 1, "config": ModelConfig, "state_dict": ...}``.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from pydantic import ValidationError

from contract.kinds import spec_of
from contract.manifest import ModelConfig, Preprocessing
from contract.tasks import TaskRegistry, TaskSpec, UnknownTaskError
from exporter.errors import CheckpointError, CheckpointUsageError, EncoderInferenceError, EncoderNameError
from network.heads import BASELINE_HEAD_KEYS, baseline_head_input

log = logging.getLogger(__name__)

OWN_FORMAT = "fmc-uia-checkpoint"
OWN_VERSIONS = (1,)
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
BASELINE_ROOTS = ("encoder", "fpn_decoder", "heads")
SMP_ENCODER_ARCHITECTURES = ("mh_mtl_fpn", "unet_cls")  # their encoder_name is an smp encoder name

@dataclass
class Checkpoint:
    """A state_dict and the configuration of the network it belongs to."""

    path: Path
    layout: str  # "official" or OWN_FORMAT
    state_dict: dict[str, torch.Tensor]
    config: ModelConfig | None  # None until the encoder is known (official layout)
    heads: list[TaskSpec]


def read_checkpoint(path: Path) -> object:
    """``torch.load`` with weights only; every failure becomes a one-line CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointUsageError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointUsageError(f"{path}: not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: holds pickled Python objects, not just tensors; save model.state_dict() instead"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError, KeyError, TypeError) as exc:
        # garbage bytes reach the unpickler's internals: IndexError, KeyError, ... all mean "not a checkpoint"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({reason})") from None


def is_state_dict(obj: object) -> bool:
    """A non-empty dict whose values are all tensors."""
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(obj: object, path: Path, wrappers: Sequence[str] = WRAPPER_KEYS,
                      hint: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a plain state_dict or one under a ``wrappers`` key; DataParallel's ``module.`` removed."""
    state = obj
    if isinstance(obj, dict) and not is_state_dict(obj):
        state = next((obj[key] for key in wrappers if is_state_dict(obj.get(key))), None)
    if not is_state_dict(state):
        found = ", ".join(sorted(map(str, obj))[:8]) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path}: no state_dict of tensors found (top level holds: {found}){hint}")
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return dict(state)


def heads_of(state: dict[str, torch.Tensor], path: Path) -> list[TaskSpec]:
    """Tasks of a baseline-layout state_dict: ids from ``heads.<id>.*``, kinds and sizes from the heads."""
    official = TaskRegistry.official()
    ids = list(dict.fromkeys(key.split(".")[1] for key in state if key.startswith("heads.") and key.count(".") >= 2))
    tasks = []
    for task_id in ids:
        kinds = [
            (kind, keys.count(tuple(state[f"heads.{task_id}.{keys.signature}"].shape)))
            for kind, keys in BASELINE_HEAD_KEYS.items()
            if f"heads.{task_id}.{keys.signature}" in state
        ]
        if len(kinds) != 1:
            raise CheckpointError(f"{path}: head heads.{task_id} matches no known head kind (keys: heads.{task_id}.*)")
        kind, size = kinds[0]
        if task_id in official:
            spec = official[task_id]
            if spec.kind is not kind:
                raise CheckpointError(f"{path}: head {task_id} is a {kind.value} head; the challenge's {task_id} is {spec.kind.value}")
            if spec.num_classes != size:
                log.warning("task %s: the checkpoint has %d classes/points, the challenge %d", task_id, size, spec.num_classes)
        tasks.append(TaskSpec(task_id=task_id, kind=kind, num_classes=size))
    return tasks


def fpn_params(state: dict[str, torch.Tensor], heads: list[TaskSpec]) -> dict[str, int | str]:
    """Decoder sizes read from the FPN's weight shapes (defaults where a key is absent)."""
    params: dict[str, int | str] = {}
    if "fpn_decoder.p5.weight" in state:
        params["pyramid_channels"] = int(state["fpn_decoder.p5.weight"].shape[0])
    seg_key = "fpn_decoder.seg_blocks.0.block.0.block.0.weight"
    if seg_key in state:
        seg_channels = int(state[seg_key].shape[0])
        params["segmentation_channels"] = seg_channels
        dense = next((t for t in heads if spec_of(t.kind).dense), None)  # its head reads the FPN output
        if dense is not None and baseline_head_input(state, dense) == 4 * seg_channels:
            params["merge_policy"] = "cat"
    return params


def open_checkpoint(path: Path) -> Checkpoint:
    """Read ``path`` and classify it; the config is complete for own checkpoints, encoder-less for official ones."""
    path = Path(path)
    obj = read_checkpoint(path)
    if isinstance(obj, dict) and obj.get("format") == OWN_FORMAT:
        if obj.get("version") not in OWN_VERSIONS:
            raise CheckpointError(f"{path}: checkpoint format version {obj.get('version')!r} is not supported (expected 1)")
        try:
            config = ModelConfig.model_validate(obj["config"])
        except (KeyError, ValidationError) as exc:
            raise CheckpointError(f"{path}: its 'config' is not a valid ModelConfig ({str(exc).splitlines()[0]})") from None
        state = unwrap_state_dict(obj.get("state_dict"), path)
        return Checkpoint(path, OWN_FORMAT, state, config, list(config.tasks))
    state = unwrap_state_dict(obj, path)
    roots = Counter(key.split(".", 1)[0] for key in state)
    if not all(root in roots for root in BASELINE_ROOTS):
        listing = ", ".join(f"{root}.* ({n})" for root, n in roots.most_common(6))
        raise CheckpointError(
            f"{path}: not a baseline checkpoint (needs encoder.*, fpn_decoder.*, heads.<task>.*; has {listing}); "
            "for other architectures export a training checkpoint that carries its config"
        )
    return Checkpoint(path, "official", state, None, heads_of(state, path))


def narrow_tasks(heads: list[TaskSpec], wanted: Sequence[str] | None) -> list[TaskSpec]:
    """Keep the requested tasks (checkpoint order); unknown ids raise with the list of available ones."""
    if not wanted:
        return heads
    try:
        return list(TaskRegistry(heads).select(wanted))
    except UnknownTaskError as exc:
        raise CheckpointUsageError(f"task {exc.task_id!r} is not in the checkpoint; it has: {', '.join(exc.known)}") from None


def resolve_config(
    checkpoint: Checkpoint,
    encoder: str | None,
    tasks: Sequence[str] | None,
    input_size: tuple[int, int] | None,
) -> ModelConfig:
    """The ModelConfig to build: checkpoint's own or inferred, narrowed to ``tasks``, at ``input_size``."""
    from exporter.encoders import check_encoder_name, infer_encoder

    selected = narrow_tasks(checkpoint.heads, tasks)
    if checkpoint.config is not None:
        config = checkpoint.config
        if encoder and encoder != config.encoder_name:
            raise CheckpointUsageError(
                f"{checkpoint.path.name} was trained with encoder {config.encoder_name}; --encoder {encoder} cannot apply"
            )
        if config.architecture in SMP_ENCODER_ARCHITECTURES:
            check_encoder_name(config.encoder_name)
        update: dict = {"tasks": selected}
    else:
        if encoder:
            try:
                check_encoder_name(encoder)
            except EncoderInferenceError as exc:
                raise EncoderNameError(f"--encoder {encoder}: {exc}") from None
        name = encoder or infer_encoder(checkpoint.state_dict)
        config = ModelConfig(encoder_name=name, params=fpn_params(checkpoint.state_dict, checkpoint.heads), tasks=selected)
        update = {}
    if input_size is not None:
        update["preprocessing"] = Preprocessing.model_validate({**config.preprocessing.model_dump(), "input_size": tuple(input_size)})
    return ModelConfig.model_validate({**config.model_dump(), **update}) if update else config
