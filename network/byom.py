"""Bring your own model: a team's ``nn.Module`` behind the interface the exporter and the fallback use.

A team gives ``MODULE:FACTORY`` (an importable module, or ``path/to/net.py``) and
``FACTORY(**model_args) -> nn.Module``. Its forward is called in one of five ways
(``CALLS``; ``exporter.forward_call`` finds which from the signature and trial calls):

- ``all``: ``forward(image) -> {task_id: Tensor}``, every task at once;
- ``indexed``: ``forward(image, task_index) -> {task_id: Tensor}`` (task-conditioned), where
  ``task_index`` is an int64 (N,) tensor: the task's position in the model's task list,
  an input of the exported graphs;
- ``per_task_name``: ``forward(image, task_id: str)`` -> that task's tensor (or a dict
  holding it), called once per task with its name;
- ``per_task_index``: ``forward(image, task_index)`` -> that task's tensor, called once
  per task with its position as an int64 (N,) tensor;
- ``per_task_position``: ``forward(image, task_id: int)`` -> that task's tensor, called
  once per task with its position as a Python int.

A per-task call is traced once per task with the task fixed, so Python code that
branches on the task (``self.heads[task_id]``) exports correctly; each task's graph has
only the image as input.

Raw outputs by kind: what fits and its description are the kind's spec
(``KindSpec.raw_fits``/``raw_expected``), and so is the adapter that turns it into the
role tensor the runtime decodes (``KindSpec.raw_adapter``, implemented here by name in
``TORCH_ADAPTERS``): segmentation logits unchanged; classification logits -> softmax;
detection N x 4 box -> one-cell grid (or the baseline's grid unchanged); Regression points
unchanged.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from contract.kinds import spec_of
from contract.manifest import OUTPUT_ROLE, ModelConfig
from contract.tasks import TaskKind, TaskSpec

ARCHITECTURE = "byom"
ONNX_ARCHITECTURE = "byom_onnx"
TASK_INDEX = "task_index"
ALL, INDEXED = "all", "indexed"
PER_TASK_NAME, PER_TASK_INDEX, PER_TASK_POSITION = "per_task_name", "per_task_index", "per_task_position"
PER_TASK = (PER_TASK_NAME, PER_TASK_INDEX, PER_TASK_POSITION)
CALLS = (ALL, INDEXED, *PER_TASK)
#: the manifest's ``params["call"]``, written only for the per-task calls (the others: ``params["conditioned"]``)
CALL_PARAM = "call"
RECIPE = "docs/bring-your-own-model.md, \"Forward conventions\""


class ByomError(ValueError):
    """A team's module, factory, task list or outputs cannot be used; the message names the fix."""


class ByomSpecError(ByomError):
    """``MODULE:FACTORY`` names nothing usable: malformed, no such file or module, no such factory."""


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"


def _import_file(path: Path) -> Any:
    path = path.resolve()
    name = f"byom_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ByomError(f"{path}: not a Python file; give --model path/to/net.py:FACTORY")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # the file's own siblings import as they do beside it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path.remove(str(path.parent))
    return module


def is_file_spec(module_part: str) -> bool:
    """``path/to/net.py`` (a file) rather than ``pkg.mod`` (a module Python finds)."""
    return module_part.endswith(".py") or os.sep in module_part


def absolute_spec(spec: str) -> str:
    """A file spec with its path made absolute (stored in the manifest); module specs unchanged."""
    module_part, _, attr = spec.rpartition(":")
    return f"{Path(module_part).resolve()}:{attr}" if module_part and is_file_spec(module_part) else spec


def import_factory(spec: str) -> Callable[..., Any]:
    """``pkg.mod:factory`` or ``path/to/net.py:factory`` -> the factory; ByomError naming the fix."""
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise ByomSpecError(f"--model {spec!r}: expected MODULE:FACTORY or path/to/net.py:FACTORY")
    try:
        if is_file_spec(module_part):
            path = Path(module_part)
            if not path.is_file():
                raise ByomSpecError(f"--model {spec!r}: {path} is not a file; give an existing path/to/net.py:FACTORY")
            module = _import_file(path)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_part)
    except ByomError:
        raise
    except ImportError as exc:
        missing = isinstance(exc, ModuleNotFoundError) and bool(exc.name) and f"{module_part}.".startswith(f"{exc.name}.")
        error = ByomSpecError if missing else ByomError  # else the module was found and its own imports failed
        raise error(
            f"--model {spec!r}: cannot import {module_part} ({_first_line(exc)}); put it on PYTHONPATH, "
            "run from its folder, or give the file: path/to/net.py:FACTORY"
        ) from None
    except Exception as exc:  # the team's module raised while being imported: any type
        raise ByomError(f"--model {spec!r}: importing {module_part} raised {_first_line(exc)}; fix the module") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        known = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:10]
        raise ByomSpecError(f"--model {spec!r}: {module_part} has no callable {attr!r} (it has: {', '.join(known)})")
    return factory


def build_team_network(spec: str, model_args: dict[str, Any]) -> nn.Module:
    factory = import_factory(spec)
    try:
        net = factory(**model_args)
    except Exception as exc:  # the team's factory: any type
        args = ", ".join(f"{k}={v!r}" for k, v in model_args.items())
        raise ByomError(f"--model {spec!r}: {spec.rpartition(':')[2]}({args}) raised {_first_line(exc)}; "
                        "fix the factory or its --model-arg values") from None
    if not isinstance(net, nn.Module):
        raise ByomError(f"--model {spec!r}: the factory returned {type(net).__name__}, not a torch.nn.Module")
    return net


def task_parameter(net: nn.Module) -> inspect.Parameter | None:
    """The forward's second positional parameter when it takes the task (required, or named task_index), else None."""
    params = [p for p in inspect.signature(net.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty]
    if not params or len(required) > 2:
        names = ", ".join(p.name for p in params)
        raise ByomError(f"{type(net).__name__}.forward({names}): expected forward(image) or forward(image, task); "
                        f"see {RECIPE}")
    second = params[1] if len(params) > 1 else None
    return second if second is not None and (second.default is second.empty or second.name == TASK_INDEX) else None


def _box_to_grid(raw: torch.Tensor) -> torch.Tensor:
    return torch.cat([raw, torch.zeros_like(raw[:, :1])], dim=1)[:, :, None, None]


#: ``contract.kinds.base.ADAPTERS`` in PyTorch (the ONNX ones: ``exporter.onnx_adapters``).
TORCH_ADAPTERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda raw: raw,
    "softmax": lambda raw: torch.softmax(raw, dim=1),
    "box_to_grid": _box_to_grid,
}


def to_role(kind: TaskKind, output: torch.Tensor) -> torch.Tensor:
    """A checked raw output -> the role tensor the runtime decodes (the kind's adapter)."""
    return TORCH_ADAPTERS[spec_of(kind).raw_adapter(output.dim())](output)


def expected_shape(task: TaskSpec) -> str:
    return spec_of(task.kind).raw_expected(task.num_classes)


def check_output(task: TaskSpec, shape: tuple[int, ...], batch: int) -> None:
    """ByomError naming the task, the shape found and the one expected, unless ``shape`` fits the kind."""
    if not spec_of(task.kind).raw_fits(shape, batch, task.num_classes):
        found = " x ".join(map(str, shape)) or "a scalar"
        raise ByomError(f"task {task.task_id} ({task.kind.value}): output shape {found} for a batch of {batch}, "
                        f"expected {expected_shape(task)}; fix the model's forward for this task")


def check_tensor(task: TaskSpec, value: object, batch: int) -> None:
    if not isinstance(value, torch.Tensor):
        raise ByomError(f"task {task.task_id}: forward gave a {type(value).__name__}, not a tensor")
    check_output(task, tuple(value.shape), batch)


def check_outputs(outputs: object, tasks: list[TaskSpec], batch: int) -> None:
    """A forward's dict holding every task, each of its kind's shape."""
    if not isinstance(outputs, dict):
        raise ByomError(f"forward returned a {type(outputs).__name__}, not a dict; return {{task_id: tensor}}, "
                        f"e.g. {{{tasks[0].task_id!r}: ...}} for every task of the model, or take the task as a "
                        f"second argument and return its tensor ({RECIPE})")
    for task in tasks:
        if task.task_id not in outputs:
            has = ", ".join(map(str, list(outputs)[:10])) or "nothing"
            raise ByomError(f"forward's dict has no output for task {task.task_id} (it has: {has}); "
                            "return an output for every task of the model's task list")
        check_tensor(task, outputs[task.task_id], batch)


class ByomNetwork(nn.Module):
    """Wraps a team's network: ``forward`` returns every served task's role tensor; ``predict`` one task's."""

    def __init__(self, net: nn.Module, tasks: list[TaskSpec], positions: dict[str, int], call: str,
                 config: ModelConfig | None = None):
        super().__init__()
        if call not in CALLS:
            raise ValueError(f"unknown forward call {call!r}; known: {', '.join(CALLS)}")
        self.net = net
        self.tasks = list(tasks)
        self.positions = dict(positions)
        self.call = call
        self.config = config

    @property
    def conditioned(self) -> bool:
        """The graphs take ``task_index`` as an input."""
        return self.call == INDEXED

    @property
    def one_call(self) -> bool:
        """One call of the team's forward gives every task."""
        return self.call == ALL

    def output_names(self) -> list[str]:
        return [f"{t.task_id}.{OUTPUT_ROLE[t.kind]}" for t in self.tasks]

    def raw(self, image: torch.Tensor, task_index: torch.Tensor | None = None) -> object:
        return self.net(image, task_index) if self.conditioned else self.net(image)

    def raw_for(self, image: torch.Tensor, task: TaskSpec) -> torch.Tensor:
        """One task's raw output, whatever the call."""
        if self.call == PER_TASK_NAME:
            output = self.net(image, task.task_id)
        elif self.call == PER_TASK_INDEX:  # a constant of the traced graph, not an input
            output = self.net(image, torch.zeros_like(image[:, 0, 0, 0], dtype=torch.int64) + self.positions[task.task_id])
        elif self.call == PER_TASK_POSITION:
            output = self.net(image, self.positions[task.task_id])
        else:
            output = self.raw(image, self.index_for(task.task_id, image.shape[0], image.device))
        return output[task.task_id] if isinstance(output, dict) else output

    def forward(self, image: torch.Tensor, task_index: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if self.call in PER_TASK:
            return tuple(to_role(t.kind, self.raw_for(image, t)) for t in self.tasks)
        outputs = self.raw(image, task_index)
        return tuple(to_role(t.kind, outputs[t.task_id]) for t in self.tasks)

    def index_for(self, task_id: str, batch: int, device: torch.device | None = None) -> torch.Tensor | None:
        if not self.conditioned:
            return None
        return torch.full((batch,), self.positions[task_id], dtype=torch.int64, device=device)

    def predict(self, image: torch.Tensor, task_id: str) -> dict[str, torch.Tensor]:
        """Outputs of ``task_id`` by role, as its ONNX graph emits them."""
        task = next(t for t in self.tasks if t.task_id == task_id)
        return {OUTPUT_ROLE[task.kind]: to_role(task.kind, self.raw_for(image, task))}


def call_of(params: dict) -> str:
    """The forward call a manifest's params record."""
    call = str(params.get(CALL_PARAM, ""))
    return call if call in CALLS else (INDEXED if params.get("conditioned") else ALL)


def build_from_config(config: ModelConfig) -> ByomNetwork:
    """The registry's builder for ``architecture == "byom"``: import the team's module named in the manifest."""
    params = config.params
    spec = str(params.get("module", ""))
    try:
        net = build_team_network(spec, json.loads(str(params.get("model_args") or "{}")))
    except ByomError as exc:
        raise ByomError(f"no PyTorch fallback for this model: its module is not usable here ({exc})") from None
    positions = json.loads(str(params.get("task_positions") or "{}"))
    return ByomNetwork(net, list(config.tasks), positions, call_of(params), config)
