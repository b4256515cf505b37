"""Bring your own model, exporter side: module/factory, task list, checkpoint, forward convention, output checks.

``python export.py CKPT --model MODULE:FACTORY [--model-arg KEY=VALUE ...] --out DIR``:
the factory builds the team's network (``network.byom``), the checkpoint is loaded
strictly (``exporter.loading.compare_keys`` report), the way its forward is called is
found (``exporter.forward_call``) and every task's output is checked against its kind
on a random batch before anything is exported (``exporter.sources.brought``).
"""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from pydantic import ValidationError
from torch import nn

from contract.manifest import ModelConfig, Preprocessing
from contract.tasks import TaskKind, TaskRegistry, TaskSpec, UnknownTaskError
from exporter.checkpoint import read_checkpoint, unwrap_state_dict
from exporter.errors import BroughtModelError, BroughtUsageError, KeyMismatchError
from exporter.forward_call import find_call
from exporter.loading import compare_keys
from network.byom import (ALL, ARCHITECTURE, CALL_PARAM, INDEXED, PER_TASK, ByomError, ByomNetwork, ByomSpecError, absolute_spec,
                          build_team_network)

log = logging.getLogger(__name__)

WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "ema")
TASKS_HINT = ('give the network a `tasks` attribute, e.g. tasks = [{"task_id": "fetal_head", "kind": "segmentation", '
              '"num_classes": 2}, ...], or pass --tasks with official task ids')


def parse_model_args(items: Sequence[str]) -> dict[str, Any]:
    """``["depth=4", "name=vit", "dims=[32, 64]"]`` -> values as JSON (or Python) literals, else strings."""
    args: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise BroughtUsageError(f"--model-arg {item!r}: expected KEY=VALUE with KEY a Python identifier")
        try:
            value: Any = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text
        args[key.strip()] = value
    return args


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict, or one under state_dict / model / model_state_dict / ema; ``module.`` prefixes removed."""
    hint = f"; save model.state_dict(), or a dict with it under one of {', '.join(WRAPPER_KEYS)}"
    return unwrap_state_dict(read_checkpoint(Path(path)), Path(path), WRAPPER_KEYS, hint)


def _task_spec(item: Any, where: str) -> TaskSpec:
    fields = item if isinstance(item, dict) else {k: getattr(item, k, None) for k in ("task_id", "kind", "num_classes")}
    try:
        kind = TaskKind.parse(str(getattr(fields.get("kind"), "value", fields.get("kind"))))
        return TaskSpec(task_id=str(fields.get("task_id")), kind=kind, num_classes=int(fields.get("num_classes")))
    except (ValueError, TypeError, ValidationError) as exc:
        raise BroughtModelError(f"{where}: entry {item!r} is not a task ({str(exc).splitlines()[0]}); {TASKS_HINT}") from None


def model_tasks(net: nn.Module, wanted: Sequence[str] | None) -> tuple[list[TaskSpec], list[TaskSpec]]:
    """(the model's task list, which gives the positions; the tasks to export) from ``net.tasks`` or ``--tasks``."""
    declared = getattr(net, "tasks", None)
    if declared is None:
        if not wanted:
            raise BroughtModelError(f"{type(net).__name__} has no `tasks` attribute and no --tasks was given; {TASKS_HINT}")
        try:
            listed = [TaskRegistry.official()[task_id] for task_id in wanted]
        except UnknownTaskError as exc:
            raise BroughtUsageError(f"--tasks: {exc}; a network with other tasks declares them in its `tasks`") from None
        return listed, listed
    if isinstance(declared, (str, bytes, dict)) or not hasattr(declared, "__iter__"):
        raise BroughtModelError(f"{type(net).__name__}.tasks is a {type(declared).__name__}, not a list; {TASKS_HINT}")
    listed = [_task_spec(item, f"{type(net).__name__}.tasks") for item in declared]
    try:
        registry = TaskRegistry(listed)
        served = list(registry.select(wanted)) if wanted else listed
    except UnknownTaskError as exc:
        raise BroughtUsageError(f"--tasks: {exc}") from None
    except ValueError as exc:
        raise BroughtModelError(f"{type(net).__name__}.tasks: {exc}") from None
    if not listed:
        raise BroughtModelError(f"{type(net).__name__}.tasks is empty; {TASKS_HINT}")
    return listed, served


def load_weights(net: nn.Module, state: dict[str, torch.Tensor], checkpoint: Path, spec: str,
                 config: ModelConfig) -> None:
    problems = compare_keys(net, state, config)
    if problems:
        raise KeyMismatchError(f"{Path(checkpoint).name} does not fit the network of --model {spec}: " + " | ".join(problems)
                               + "; save the state_dict of the network this factory builds (check --model-arg values)")
    expected = net.state_dict()
    full = {**{k: torch.zeros_like(v) for k, v in expected.items() if k.endswith("num_batches_tracked")}, **state}
    net.load_state_dict(full, strict=True)


def load_byom(checkpoint: Path, spec: str, model_args: dict[str, Any], tasks: Sequence[str] | None,
              prep: Preprocessing) -> ByomNetwork:
    """Build, load (strict) and check a team's network; the returned wrapper carries its ModelConfig."""
    try:
        net = build_team_network(spec, model_args)
    except ByomSpecError as exc:
        raise BroughtUsageError(str(exc)) from None
    except ByomError as exc:
        raise BroughtModelError(str(exc)) from None
    listed, served = model_tasks(net, tasks)
    positions = {t.task_id: i for i, t in enumerate(listed)}
    spec = absolute_spec(spec)

    def config(call: str) -> ModelConfig:
        params: dict[str, Any] = {
            "module": spec,
            "model_args": json.dumps(model_args, sort_keys=True),
            "conditioned": call == INDEXED,
            "task_positions": json.dumps({t.task_id: positions[t.task_id] for t in served}),
            "task_list": json.dumps([t.model_dump(mode="json") for t in listed]),
        }
        if call in PER_TASK:
            params[CALL_PARAM] = call
        return ModelConfig(architecture=ARCHITECTURE, encoder_name=type(net).__name__, params=params, tasks=served,
                           preprocessing=prep)

    load_weights(net, load_state_dict(checkpoint), checkpoint, spec, config(ALL))
    net.eval()
    try:
        call = find_call(net, served, positions, prep)
    except ByomError as exc:
        raise BroughtModelError(str(exc)) from None
    log.info("%s: %d tasks, forward called %s", type(net).__name__, len(served), call)
    return ByomNetwork(net, served, positions, call, config(call)).eval()
