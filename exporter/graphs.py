"""The stage layout: a network described by stages -> one ONNX file per stage, in every precision.

    encoder.onnx, fpn.onnx, heads/<task_id>.onnx     fp32 (names: ``graph_relpath``)
    fp16/..., int8/...                               the same names under the precision's folder

fp32 is exported with the TorchScript exporter (``dynamo=False``, opset 17) in eval mode
and without constant folding, so that:

- every initializer keeps its ``state_dict`` key (the stage wrappers keep the
  network's attribute names), which lets the PyTorch fallback rebuild the
  network from the graphs' own weights (``network.weights``);
- BatchNorm stays a separate node (ONNX Runtime fuses Conv+BN when it builds a
  session, so inference speed is the same as with folded weights).

The exporter would deduplicate initializers with equal values (common in
freshly initialised BatchNorm) into ``Identity`` nodes; exporting with
``keep_initializers_as_inputs=True`` turns that off, and the initializers are
then removed from the graph inputs again, so that ONNX Runtime treats them as
constants (required for its Conv+BN fusion and constant folding).

fp16 converts every graph file (``exporter.convert``). int8 quantizes encoder, decoder
and the convolutions of big heads, each calibrated on the tensors that reach that graph
when the fp32 graphs run on the calibration images; every head's last layer stays fp32
(logits, probabilities, boxes and points keep their resolution), and a head with a
single layer (segmentation 1x1 conv, the linear of classification and Regression) gains
nothing from int8: the int8 set points at its fp32 file.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import torch
from torch import nn

from contract.manifest import GraphFile, GraphSet, TaskEntry, sha256_of
from exporter.convert import prepare_int8, quantizable_layers, quantize_int8, to_fp16
from exporter.errors import ExportError
from exporter.runner import CheckRunner

log = logging.getLogger(__name__)

OPSET = 17
BATCH_AXIS = "batch"


def graph_relpath(stage_name: str) -> str:
    """``encoder`` -> ``encoder.onnx``; ``head.<task>`` -> ``heads/<task>.onnx``."""
    if stage_name.startswith("head."):
        return f"heads/{stage_name[len('head.'):]}.onnx"
    return f"{stage_name}.onnx"


def mode_snapshot(model: nn.Module) -> dict[str, bool]:
    return {name: module.training for name, module in model.named_modules()}


def check_mode_unchanged(model: nn.Module, before: dict[str, bool]) -> None:
    """Fail when exporting flipped any module between train and eval (see RUNTIME-NOTES)."""
    changed = [name or "<root>" for name, module in model.named_modules() if before.get(name) != module.training]
    if changed:
        model.eval()
        raise ExportError(f"exporting changed the train/eval mode of {len(changed)} modules (first: {changed[:3]})")


@torch.no_grad()
def run_torch_stages(stages: Sequence, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run stages in order on ``image``; return every named tensor they produce."""
    tensors: dict[str, torch.Tensor] = {stages[0].inputs[0]: image}
    for stage in stages:
        outputs = stage.module(*[tensors[name] for name in stage.inputs])
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        if len(outputs) != len(stage.outputs):
            raise ExportError(f"stage {stage.name} returned {len(outputs)} tensors, declares {stage.outputs}")
        tensors.update(zip(stage.outputs, outputs))
    return tensors


def export_stage(stage, args: tuple[torch.Tensor, ...], path: Path) -> None:
    """Export one stage to ``path`` and run onnx's checker on it."""
    stage.module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _onnx_export(stage, args, path)
        except (torch.onnx.errors.OnnxExporterError, RuntimeError, TypeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ExportError(f"stage {stage.name}: torch.onnx.export failed: {first}") from exc
    drop_initializer_inputs(path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path.name}: onnx checker rejected the graph: {str(exc).splitlines()[0]}") from exc


def _onnx_export(stage, args: tuple[torch.Tensor, ...], path: Path) -> None:
    names = list(stage.inputs) + list(stage.outputs)
    torch.onnx.export(
        stage.module,
        args,
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=list(stage.inputs),
        output_names=list(stage.outputs),
        dynamic_axes={name: {0: BATCH_AXIS} for name in names},
        do_constant_folding=False,
        training=torch.onnx.TrainingMode.EVAL,
        keep_initializers_as_inputs=True,
    )


def drop_initializer_inputs(path: Path) -> None:
    """Initializers listed as graph inputs are overridable, which blocks ORT's optimizations: unlist them."""
    model = onnx.load(str(path))
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.save(model, str(path))


def graph_file(model_dir: Path, relpath: str) -> GraphFile:
    """Describe a written ONNX file (hash, size, input and output names)."""
    path = Path(model_dir) / relpath
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return GraphFile(
        path=relpath,
        sha256=sha256_of(path),
        bytes=path.stat().st_size,
        inputs=[i.name for i in graph.input if i.name not in initializers],
        outputs=[o.name for o in graph.output],
    )


def export_fp32(model: nn.Module, model_dir: Path, sample: np.ndarray) -> dict[str, GraphFile]:
    """Export every stage of ``model`` under ``model_dir``; return GraphFile entries by stage name."""
    model.eval()
    before = mode_snapshot(model)
    stages = model.stages()
    tensors = run_torch_stages(stages, torch.from_numpy(sample))
    graphs: dict[str, GraphFile] = {}
    for stage in stages:
        relpath = graph_relpath(stage.name)
        log.info("exporting %s -> %s", stage.name, relpath)
        export_stage(stage, tuple(tensors[name] for name in stage.inputs), Path(model_dir) / relpath)
        graphs[stage.name] = graph_file(model_dir, relpath)
    check_mode_unchanged(model, before)
    return graphs


def variant_relpath(precision: str, relpath: str) -> str:
    return f"{precision}/{relpath}"


class StageGraphs:
    """The stage layout of a network with ``stages()`` (``exporter.sources.staged``)."""

    def __init__(self, model: nn.Module, sample: np.ndarray):
        self.model, self.sample = model, sample

    def write_fp32(self, stage_dir: Path) -> dict[str, GraphFile]:
        return export_fp32(self.model, stage_dir, self.sample)

    def groups(self, tasks: Sequence[TaskEntry]) -> list[list[TaskEntry]]:
        """Checks run every task at once: the encoder's outputs feed every head."""
        return [list(tasks)]

    def write_fp16(self, stage_dir: Path, fp32: GraphSet, block: Sequence[str]) -> dict[str, GraphFile]:
        graphs = {}
        for name, graph in fp32.graphs.items():
            relpath = variant_relpath("fp16", graph.path)
            to_fp16(stage_dir / graph.path, stage_dir / relpath, block)
            graphs[name] = graph_file(stage_dir, relpath)
        return graphs

    def write_int8(self, stage_dir: Path, fp32: GraphSet, batches: list[np.ndarray]) -> dict[str, GraphFile]:
        runner = CheckRunner(stage_dir, fp32)
        tensors = [runner.run(batch) for batch in batches]
        graphs = {}
        for name, graph in fp32.graphs.items():
            layers = quantizable_layers(onnx.load(str(stage_dir / graph.path), load_external_data=False))
            is_head = name.startswith("head.")
            if is_head and len(layers) <= 1:
                graphs[name] = graph  # shared with the fp32 set, no second copy
                continue
            relpath = variant_relpath("int8", graph.path)
            with tempfile.TemporaryDirectory() as tmp:
                prepared = Path(tmp) / "prepared.onnx"
                prepare_int8(stage_dir / graph.path, prepared)
                keep_fp32 = quantizable_layers(onnx.load(str(prepared)))[-1:] if is_head else []
                quantize_int8(prepared, stage_dir / relpath, [{i: t[i] for i in graph.inputs} for t in tensors], keep_fp32)
            onnx.checker.check_model(str(stage_dir / relpath))
            graphs[name] = graph_file(stage_dir, relpath)
        return graphs
