"""How a team's forward is called (``network.byom.CALLS``), found from its signature and trial calls.

The forward's second positional parameter, if it takes one, is the task. Its annotation
decides what is passed (``str``: the task's name; ``int``: its position; ``Tensor``, or
the name ``task_index``: an int64 (N,) tensor of positions); without one, each is tried on
a random batch in that order, and those that work must agree. A tensor argument whose
forward returns every task in a dict is a task-conditioned model (``task_index`` becomes a
graph input); any other working argument makes one call per task. Every task's output is
then checked against its kind (``network.byom.check_output``).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import nn

from contract.manifest import Preprocessing
from contract.tasks import TaskSpec
from network.byom import (ALL, INDEXED, PER_TASK, PER_TASK_INDEX, PER_TASK_NAME, PER_TASK_POSITION, RECIPE, TASK_INDEX,
                          ByomError, ByomNetwork, check_outputs, check_tensor, task_parameter)

#: what a per-task trial passes for a task (its name, its position), by call
KEYS: dict[str, Callable[[TaskSpec, int, int], Any]] = {
    PER_TASK_INDEX: lambda task, position, batch: torch.full((batch,), position, dtype=torch.int64),
    PER_TASK_NAME: lambda task, position, batch: task.task_id,
    PER_TASK_POSITION: lambda task, position, batch: position,
}
DESCRIBED = {INDEXED: "a task_index tensor", PER_TASK_INDEX: "a task_index tensor", PER_TASK_NAME: "the task name", PER_TASK_POSITION: "the int position"}
BY_ANNOTATION = {"str": [PER_TASK_NAME], "int": [PER_TASK_POSITION], "Tensor": [PER_TASK_INDEX],
                 "torch.Tensor": [PER_TASK_INDEX], "LongTensor": [PER_TASK_INDEX], "torch.LongTensor": [PER_TASK_INDEX]}


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"


def _candidates(param: inspect.Parameter) -> list[str]:
    if param.name == TASK_INDEX:
        return [PER_TASK_INDEX]
    annotation = param.annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return BY_ANNOTATION.get(text, [PER_TASK_INDEX, PER_TASK_NAME, PER_TASK_POSITION])


def _failed(image: torch.Tensor, tried: list[str]) -> ByomError:
    size = " x ".join(map(str, image.shape))
    return ByomError(f"the model's forward failed on a {size} batch ({'; '.join(tried)}); check --input-size and "
                     f"the forward, and see {RECIPE} for the forwards export.py can call")


@torch.no_grad()
def find_call(net: nn.Module, tasks: list[TaskSpec], positions: dict[str, int], prep: Preprocessing,
              batch: int = 2) -> str:
    """The call of ``network.byom.CALLS`` that ``net``'s forward answers (every task checked); ByomError naming the fix."""
    height, width = prep.input_size
    image = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
    param = task_parameter(net)
    if param is None:
        try:
            outputs = net(image)
        except Exception as exc:  # the team's forward: any type
            raise _failed(image, [_first_line(exc)]) from None
        check_outputs(outputs, tasks, batch)
        return ALL
    first = tasks[0]
    tried: list[str] = []
    working: dict[str, torch.Tensor] = {}
    candidates = _candidates(param)
    for trial in candidates:
        try:
            output = net(image, KEYS[trial](first, positions[first.task_id], batch))
        except Exception as exc:  # the team's forward: any type
            tried.append(f"with {DESCRIBED[trial]}: {_first_line(exc)}")
            continue
        try:
            call = trial
            if trial == PER_TASK_INDEX and isinstance(output, dict) and all(t.task_id in output for t in tasks):
                check_outputs(output, tasks, batch)
                call = INDEXED
            value = output.get(first.task_id) if isinstance(output, dict) else output
            check_tensor(first, value, batch)
        except ByomError as exc:
            if len(candidates) == 1:
                raise
            tried.append(f"with {DESCRIBED[trial]}: {exc}")
            continue
        working[call] = value
    if not working:
        raise _failed(image, tried)
    call, value = next(iter(working.items()))
    differing = [c for c, v in working.items() if v.shape != value.shape or not torch.allclose(v, value)]
    if differing:
        raise ByomError(f"forward(image, {param.name}) accepts {DESCRIBED[call]} and "
                        f"{DESCRIBED[differing[0]]}, and they give task {first.task_id} different outputs; annotate "
                        f"{param.name} (str: the name, int: the position, torch.Tensor: an index tensor), see {RECIPE}")
    if call in PER_TASK:
        wrapper = ByomNetwork(net, tasks, positions, call)
        for task in tasks[1:]:
            try:
                value = wrapper.raw_for(image, task)
            except Exception as exc:  # the team's forward: any type
                raise ByomError(f"task {task.task_id}: the model's forward failed when called for it "
                                f"({_first_line(exc)}); see {RECIPE}") from None
            check_tensor(task, value, batch)
    return call
