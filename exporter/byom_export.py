"""Export a team's network (``exporter.byom``) to a verified model folder of per-task graphs.

Folder layout::

    manifest.json           architecture "byom": params name the module, factory and arguments
    graphs/<task_id>.onnx   the task's part of the whole graph (image[, task_index] -> <task_id>.<role>)
    graphs/weights.bin      every weight once, shared by all task graphs (ONNX external data)
    fp16/graphs/..., int8/graphs/...   optional variants, same layout
    torch_extra.npz         only for tensors no graph uses (the PyTorch fallback needs them)

Parity as for the baseline: ONNX Runtime (CPU) against the PyTorch wrapper for every
task, batch 1 and 8, random and image-like inputs, relative error <= tolerance.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import torch

from contract.kinds import spec_of
from contract.manifest import IMAGE_INPUT, OUTPUT_ROLE, GraphSet, Manifest, Parity, TaskEntry, TorchFallback, write_manifest
from exporter.api import PROVIDERS, _check_precisions, verify_fallback, versions
from exporter.byom_graphs import GRAPH_FOLDER, export_whole, split_per_task
from exporter.deviation import compare_outputs
from exporter.errors import ExportError, ParityError
from exporter.folder import folder_bytes, staged_folder
from exporter.graphs import check_mode_unchanged, mode_snapshot
from exporter.images import calibration_batches, image_like_batch, random_batch
from exporter.parity import BATCH_SIZES, INPUT_KINDS, TOLERANCE_FP32, parity_inputs, relative_error
from inference.errors import EngineError
from inference.engines.feeds import TASK_INDEX_INPUT, extra_feeds
from inference.engines.runner import GraphRunner
from network.byom import ByomNetwork

log = logging.getLogger(__name__)

EXTRA_FILE = "torch_extra.npz"


def task_entries(wrapper: ByomNetwork) -> list[TaskEntry]:
    return [
        TaskEntry(
            task_id=t.task_id, kind=t.kind, num_classes=t.num_classes, path=[t.task_id],
            outputs={OUTPUT_ROLE[t.kind]: f"{t.task_id}.{OUTPUT_ROLE[t.kind]}"}, meaning=spec_of(t.kind).meaning,
            task_index=wrapper.positions[t.task_id] if wrapper.conditioned else None,
        )
        for t in wrapper.tasks
    ]


def run_task(runner: GraphRunner, task: TaskEntry, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The task's outputs on ``batch`` with the runtime's runner (task_index fed as the runtime feeds it)."""
    inputs = [i for name in task.path for i in runner.graph_set.graphs[name].inputs]
    try:
        return runner.run(batch, task.path, wanted=task.outputs.values(), extra=extra_feeds(task, inputs, len(batch)))
    except EngineError as exc:
        raise ExportError(f"task {task.task_id}: {exc}") from exc


def task_runner(model_dir: Path, graph_set: GraphSet, task: TaskEntry) -> GraphRunner:
    """Sessions for one task's graphs only: checks hold one task's weights and arena at a time."""
    graphs = {name: graph_set.graphs[name] for name in task.path}
    return GraphRunner(model_dir, graph_set.model_copy(update={"graphs": graphs}))


@torch.no_grad()
def measure_parity(wrapper: ByomNetwork, model_dir: Path, graph_set: GraphSet, tasks: list[TaskEntry],
                   tolerance: float) -> Parity:
    prep = wrapper.config.preprocessing
    before = mode_snapshot(wrapper)
    worst = {task.task_id: 0.0 for task in tasks}
    inputs = parity_inputs(prep, BATCH_SIZES)
    # a plain forward gives every task at once: one PyTorch pass per input; a conditioned one, one per task
    shared = None if wrapper.conditioned else [dict(zip(wrapper.output_names(), wrapper(torch.from_numpy(b))))
                                              for _label, b in inputs]
    for task in tasks:
        runner = task_runner(model_dir, graph_set, task)
        for i, (_label, batch) in enumerate(inputs):
            if shared is not None:
                reference = shared[i][task.output_tensor].numpy()
            else:
                reference = wrapper.predict(torch.from_numpy(batch), task.task_id)[OUTPUT_ROLE[task.kind]].numpy()
            actual = run_task(runner, task, batch)[task.output_tensor]
            worst[task.task_id] = max(worst[task.task_id], relative_error(actual, reference))
    check_mode_unchanged(wrapper, before)
    failing = {t: e for t, e in worst.items() if not e <= tolerance}
    if failing:
        listing = ", ".join(f"{t} {e:.2e}" for t, e in sorted(failing.items(), key=lambda kv: -kv[1]))
        hint = (" (a task-conditioned forward must use task_index through tensor operations, e.g. an embedding "
                "or index_select, not Python control flow: tracing freezes Python branches)" if wrapper.conditioned else "")
        raise ParityError(f"ONNX Runtime differs from PyTorch above {tolerance:.0e} (relative) for: {listing}{hint}")
    return Parity(max_rel_error=worst, tolerance=tolerance, batch_sizes=list(BATCH_SIZES),
                  inputs=[f"{kind} (rel. error = max|onnx-torch| / max(max|torch|, 1e-6))" for kind in INPUT_KINDS])


def write_fallback_extras(wrapper: ByomNetwork, model_dir: Path, graph_set: GraphSet) -> TorchFallback:
    """Tensors of the state_dict that no graph stores (besides BN counters) go to a small .npz."""
    stored: set[str] = set()
    for graph in graph_set.graphs.values():
        stored.update(i.name for i in onnx.load(str(model_dir / graph.path), load_external_data=False).graph.initializer)
    extra = {k: v.detach().cpu().numpy() for k, v in wrapper.state_dict().items()
             if k not in stored and not k.endswith("num_batches_tracked")}
    if not extra:
        return TorchFallback()
    np.savez(model_dir / EXTRA_FILE, **extra)
    log.info("%d tensors not in the graphs saved to %s", len(extra), EXTRA_FILE)
    return TorchFallback(extra_file=EXTRA_FILE, extra_bytes=(model_dir / EXTRA_FILE).stat().st_size)


def measure_deviation(model_dir: Path, fp32: GraphSet, variant: GraphSet, tasks: list[TaskEntry],
                      batches: list[np.ndarray]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for task in tasks:
        reference, actual = task_runner(model_dir, fp32, task), task_runner(model_dir, variant, task)
        for batch in batches:
            compare_outputs([task], run_task(reference, task, batch), run_task(actual, task, batch), figures)
    figures["images"] = float(sum(len(b) for b in batches))
    figures["measured_on_cuda"] = 0.0
    return figures


def fix_fp16_casts(model: onnx.ModelProto) -> onnx.ModelProto:
    """Cast nodes the fp16 converter left casting to float32 while their output is declared float16.

    onnxconverter_common retypes a Cast's output (e.g. the float of a shape in timm's
    attention) but keeps ``to=FLOAT``; ONNX Runtime then refuses the graph. The
    declared type is the one the converted consumers expect, so ``to`` follows it.
    """
    declared = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    for node in model.graph.node:
        if node.op_type == "Cast" and declared.get(node.output[0]) == onnx.TensorProto.FLOAT16:
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT:
                    attribute.i = onnx.TensorProto.FLOAT16
    return model


def _int8_whole(whole: Path, target: Path, tasks: list[TaskEntry], batches: list[np.ndarray]) -> None:
    """Static QDQ int8 of the whole graph (Conv/Gemm/MatMul), calibrated over every task's index in turn."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from exporter.precision import INT8_OP_TYPES, _Feeds

    inputs = [i.name for i in onnx.load(str(whole), load_external_data=False).graph.input]
    feeds = []
    for i, batch in enumerate(batches):
        feed = {IMAGE_INPUT: batch}
        if TASK_INDEX_INPUT in inputs:
            position = [t.task_index for t in tasks][i % len(tasks)]
            feed[TASK_INDEX_INPUT] = np.full((len(batch),), position, dtype=np.int64)
        feeds.append(feed)
    prepared = target.with_name("prepared.onnx")
    quant_pre_process(str(whole), str(prepared), skip_symbolic_shape=False)
    quantize_static(str(prepared), str(target), _Feeds(feeds), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=INT8_OP_TYPES,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})


def export_variant(precision: str, whole: Path, stage_dir: Path, fp32: GraphSet, tasks: list[TaskEntry],
                   prep, calibration_images: Sequence[Path] | None) -> GraphSet:
    """fp16 / int8 of the whole graph, split per task like fp32 (weights once), measured against fp32."""
    from exporter.precision import FP16_BLOCK_ALWAYS, FP16_BLOCK_SAFE, _to_fp16

    outputs = {t.task_id: [t.output_tensor] for t in tasks}
    evaluation = [image_like_batch(8, prep, seed=500)]
    converted = whole.with_name(f"whole.{precision}.onnx")
    if precision == "fp16":
        for block in (FP16_BLOCK_ALWAYS, FP16_BLOCK_SAFE):
            _to_fp16(whole, converted, block)
            graphs = split_per_task(fix_fp16_casts(onnx.load(str(converted))), outputs, stage_dir, prefix="fp16/")
            graph_set = GraphSet(precision="fp16", graphs=graphs, providers=PROVIDERS["fp16"])
            figures = measure_deviation(stage_dir, fp32, graph_set, tasks, evaluation)
            if np.isfinite(figures["max_rel_error"]):
                break
            log.warning("fp16 graphs produced non-finite values; keeping %s in fp32", ", ".join(FP16_BLOCK_SAFE))
    else:
        files = list(calibration_images or [])
        held_out = files[3::4] if len(files) >= 8 else []
        batches = calibration_batches([f for f in files if f not in set(held_out)], prep)
        _int8_whole(whole, converted, tasks, batches * max(1, -(-len(tasks) // max(len(batches), 1))))
        graphs = split_per_task(onnx.load(str(converted)), outputs, stage_dir, prefix="int8/")
        graph_set = GraphSet(precision="int8", graphs=graphs, providers=PROVIDERS["int8"])
        if held_out:
            evaluation += calibration_batches(held_out, prep)
        figures = measure_deviation(stage_dir, fp32, graph_set, tasks, evaluation)
    if not np.isfinite(figures["max_rel_error"]):
        raise ExportError(f"the {precision} graphs produce non-finite outputs; export without --precision {precision}")
    return graph_set.model_copy(update={"deviation_from_fp32": figures})


def export_byom(wrapper: ByomNetwork, out_dir: Path, precisions: Sequence[str] = ("fp32",),
                calibration_images: Sequence[Path] | None = None, source: dict | None = None,
                tolerance: float = TOLERANCE_FP32) -> Manifest:
    """Whole graph -> per-task graphs sharing one weights file; parity, variants, fallback; atomic folder."""
    wanted = _check_precisions(precisions, calibration_images)
    config, started = wrapper.config, time.perf_counter()
    wrapper.eval()
    before = mode_snapshot(wrapper)
    sample = torch.from_numpy(random_batch(2, config.preprocessing, seed=7))
    inputs = [IMAGE_INPUT, TASK_INDEX_INPUT] if wrapper.conditioned else [IMAGE_INPUT]
    args = (sample, wrapper.index_for(wrapper.tasks[0].task_id, 2)) if wrapper.conditioned else (sample,)
    tasks = task_entries(wrapper)
    with staged_folder(Path(out_dir)) as stage_dir, tempfile.TemporaryDirectory() as tmp:
        whole = Path(tmp) / "whole.onnx"
        export_whole(wrapper, args, inputs, wrapper.output_names(), whole)
        check_mode_unchanged(wrapper, before)
        graphs = split_per_task(onnx.load(str(whole)), {t.task_id: [t.output_tensor] for t in tasks}, stage_dir)
        graph_sets = {"fp32": GraphSet(precision="fp32", graphs=graphs, providers=PROVIDERS["fp32"])}
        fallback = write_fallback_extras(wrapper, stage_dir, graph_sets["fp32"])
        parity = measure_parity(wrapper, stage_dir, graph_sets["fp32"], tasks, tolerance)
        for precision in wanted[1:]:
            graph_sets[precision] = export_variant(precision, whole, stage_dir, graph_sets["fp32"], tasks,
                                                   config.preprocessing, calibration_images)
        manifest = Manifest(
            model=config, tasks=tasks, graph_sets=graph_sets, parity=parity, torch_fallback=fallback,
            versions=versions(), source={k: str(v) for k, v in (source or {}).items()},
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        os.chmod(write_manifest(manifest, stage_dir), 0o644)
        for path in stage_dir.rglob("*"):
            if path.is_file():
                os.chmod(path, 0o644)
        verify_fallback(wrapper, stage_dir)
        total = folder_bytes(stage_dir)
    log.info("exported %d tasks to %s in %.1f s (%.1f MB; graphs in %s/)", len(tasks), out_dir,
             time.perf_counter() - started, total / 1e6, GRAPH_FOLDER)
    return manifest
