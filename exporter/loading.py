"""Build the network for a checkpoint and load its weights strictly, with a readable mismatch report."""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from exporter.checkpoint import Checkpoint
from exporter.errors import ExportError, KeyMismatchError
from contract.manifest import ModelConfig
from network.registry import UnknownArchitectureError, build_model

log = logging.getLogger(__name__)

RECREATED = ("num_batches_tracked",)


def module_of(key: str, config: ModelConfig) -> str:
    """``heads.lung.0.weight`` -> ``heads.lung (segmentation)``; ``encoder._blocks.3...`` -> ``encoder``."""
    parts = key.split(".")
    if parts[0] == "heads" and len(parts) > 2:
        kinds = {t.task_id: t.kind.value for t in config.tasks}
        kind = kinds.get(parts[1])
        return f"heads.{parts[1]} ({kind})" if kind else f"heads.{parts[1]} (not a task of this network)"
    return parts[0]


def _group(keys: list[str], config: ModelConfig) -> str:
    """``encoder: 312 (e.g. ...); heads (classification): organ_cls, lung_2cls: 2 (e.g. ...)``."""
    groups: dict[str, list[str]] = {}
    tasks: dict[str, list[str]] = {}
    for key in keys:
        label = module_of(key, config)
        if label.startswith("heads."):
            task_id, kind = label[len("heads.") :].split(" ", 1)
            label = f"heads {kind}"
            if task_id not in tasks.setdefault(label, []):
                tasks[label].append(task_id)
        groups.setdefault(label, []).append(key)
    parts = []
    for label, items in groups.items():
        ids = f" [{', '.join(tasks[label])}]" if label in tasks else ""
        parts.append(f"{label}{ids}: {len(items)} (e.g. {items[0]})")
    return "; ".join(parts)


def compare_keys(model: nn.Module, state: dict[str, torch.Tensor], config: ModelConfig) -> list[str]:
    """Problems as readable lines (missing, unexpected, wrong shapes), grouped by module/task; empty when it fits."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(RECREATED)]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors: {_group(missing, config)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors: {_group(unexpected, config)}")
    if wrong:
        problems.append(f"{len(wrong)} tensors of another shape (checkpoint vs network): {_group(wrong, config)}")
    return problems


def _encoder_hint(checkpoint: Checkpoint, config: ModelConfig) -> str:
    """When the encoder part differs, name the encoder the checkpoint's shapes fit, if any."""
    from exporter.encoders import infer_encoder
    from exporter.errors import EncoderInferenceError

    if checkpoint.layout != "official":
        return ""
    try:
        name = infer_encoder(checkpoint.state_dict)
    except EncoderInferenceError:
        return ""
    return f" | the checkpoint's encoder tensors fit --encoder {name}" if name != config.encoder_name else ""


def build_network(config: ModelConfig) -> nn.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build_model(config)
    except UnknownArchitectureError as exc:
        raise ExportError(str(exc)) from None
    except (KeyError, ValueError, RuntimeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"cannot build {config.architecture} with encoder {config.encoder_name}: {reason}") from None


def load_network(checkpoint: Checkpoint, config: ModelConfig) -> nn.Module:
    """The network of ``config`` with the checkpoint's weights (strict), in eval mode.

    Heads of tasks left out of ``config`` are dropped from the state_dict first;
    any other difference raises KeyMismatchError listing modules and tasks.
    """
    model = build_network(config)
    left_out = {t.task_id for t in checkpoint.heads} - {t.task_id for t in config.tasks}
    state = {
        key: value
        for key, value in checkpoint.state_dict.items()
        if not (key.startswith("heads.") and key.split(".")[1] in left_out)
    }
    problems = compare_keys(model, state, config)
    if problems:
        raise KeyMismatchError(
            f"{checkpoint.path.name} does not fit {config.architecture} with encoder {config.encoder_name}: "
            + " | ".join(problems)
            + _encoder_hint(checkpoint, config)
        )
    expected = model.state_dict()
    for key in expected:
        if key.endswith(RECREATED) and key not in state:
            state[key] = torch.zeros_like(expected[key])
    model.load_state_dict(state, strict=True)
    return model.eval()
