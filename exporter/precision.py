"""fp16 (CUDA) and int8 (CPU, static QDQ) graph sets derived from the fp32 graphs, with measured deviation.

fp16: ``onnxconverter_common.float16.convert_float_to_float16`` with float32
inputs/outputs, so graphs chain exactly as the fp32 ones. If the fp16 set
produces non-finite values (squeeze-excitation pooling is the usual culprit),
it is converted again with pooling/reduction kept in fp32.

int8: ``onnxruntime.quantization.quantize_static`` in QDQ format (uint8
activations, per-channel int8 weights of Conv/Gemm/MatMul; everything else
stays fp32), MinMax-calibrated per graph on the tensors that reach that graph
when the fp32 graphs run on the user's calibration images. The last layer of
every head stays fp32 (logits, probabilities, boxes and points keep their
resolution); single-layer heads are not quantized at all.

Deviation from fp32 is measured with ONNX Runtime on images the calibration
did not see (synthetic ultrasound-like frames and a held-out quarter of the
calibration images), see ``exporter.deviation``. fp16 is measured on CUDA when
a GPU is present (``measured_on_cuda`` = 1), else on the CPU provider, which
runs fp16 nodes lacking CPU kernels in fp32 (so the CPU figure shows the
rounding of weights and of tensors between nodes, not fp16 arithmetic).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from exporter.deviation import compare_outputs
from exporter.errors import ExportError
from exporter.graphs import graph_file
from exporter.images import calibration_batches, image_like_batch
from exporter.runner import CheckRunner
from inference.engines.providers import cuda_unavailable_reason
from contract.manifest import GraphSet, ModelConfig, TaskEntry

log = logging.getLogger(__name__)

FP16_BLOCK_ALWAYS: list[str] = []
FP16_BLOCK_SAFE = ["GlobalAveragePool", "ReduceMean", "AveragePool", "Softmax"]
INT8_OP_TYPES = ["Conv", "Gemm", "MatMul"]


def _variant_path(precision: str, relpath: str) -> str:
    return f"{precision}/{relpath}"


def _isolate_outputs(model: onnx.ModelProto) -> None:
    """Graph outputs that later nodes also read (the encoder's c2..c4) get their own Identity node.

    Without this, ``keep_io_types`` casts such an output back to float32 under its
    own name and the float16 nodes that read it receive float32.
    """
    consumed = {name for node in model.graph.node for name in node.input}
    for output in model.graph.output:
        if output.name not in consumed:
            continue
        inner = f"{output.name}__inner"
        for node in model.graph.node:
            node.output[:] = [inner if n == output.name else n for n in node.output]
            node.input[:] = [inner if n == output.name else n for n in node.input]
        model.graph.node.append(onnx.helper.make_node("Identity", [inner], [output.name], name=f"{output.name}__out"))


def _to_fp16(src: Path, dst: Path, block: list[str]) -> None:
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    _isolate_outputs(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block or None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(converted, str(dst))
    onnx.checker.check_model(str(dst))


def _write_fp16(stage_dir: Path, fp32: GraphSet, block: list[str]) -> dict:
    graphs = {}
    for name, graph in fp32.graphs.items():
        relpath = _variant_path("fp16", graph.path)
        _to_fp16(stage_dir / graph.path, stage_dir / relpath, block)
        graphs[name] = graph_file(stage_dir, relpath)
    return graphs


class _Feeds(CalibrationDataReader):
    """A calibration reader over precomputed feed dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _output_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv/Gemm/MatMul nodes of a graph, in graph order."""
    return [node.name for node in model.graph.node if node.op_type in INT8_OP_TYPES]


def _write_int8(stage_dir: Path, fp32: GraphSet, batches: list[np.ndarray]) -> dict:
    """Quantize encoder, decoder and the convolutions of big heads; each head's last layer stays fp32.

    A head with a single layer (segmentation 1x1 conv, the linear of classification
    and Regression) gains nothing from int8: the int8 set points at its fp32 file.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    runner = CheckRunner(stage_dir, fp32)
    tensors = [runner.run(batch) for batch in batches]
    graphs = {}
    for name, graph in fp32.graphs.items():
        layers = _output_layers(onnx.load(str(stage_dir / graph.path), load_external_data=False))
        is_head = name.startswith("head.")
        if is_head and len(layers) <= 1:
            graphs[name] = graph  # shared with the fp32 set, no second copy
            continue
        relpath = _variant_path("int8", graph.path)
        (stage_dir / relpath).parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(stage_dir / graph.path), str(prepared), skip_symbolic_shape=False)
            keep_fp32 = _output_layers(onnx.load(str(prepared)))[-1:] if is_head else []
            quantize_static(
                str(prepared),
                str(stage_dir / relpath),
                _Feeds([{i: t[i] for i in graph.inputs} for t in tensors]),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=INT8_OP_TYPES,
                nodes_to_exclude=keep_fp32,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
        onnx.checker.check_model(str(stage_dir / relpath))
        graphs[name] = graph_file(stage_dir, relpath)
    return graphs


def measure_deviation(
    stage_dir: Path, fp32: GraphSet, variant: GraphSet, tasks: list[TaskEntry], batches: list[np.ndarray]
) -> dict[str, float]:
    """Compare ``variant`` with fp32 (both on ONNX Runtime) on ``batches``."""
    device = "cuda" if variant.precision == "fp16" and cuda_unavailable_reason() is None else "cpu"
    reference_runner = CheckRunner(stage_dir, fp32)
    variant_runner = CheckRunner(stage_dir, variant, device)
    figures: dict[str, float] = {}
    for batch in batches:
        compare_outputs(tasks, reference_runner.run(batch), variant_runner.run(batch), figures)
    figures["images"] = float(sum(len(b) for b in batches))
    figures["measured_on_cuda"] = float(variant_runner.on_cuda)
    return figures


def export_variant(
    precision: str,
    stage_dir: Path,
    fp32: GraphSet,
    config: ModelConfig,
    tasks: list[TaskEntry],
    calibration_images: Sequence[Path] | None,
    providers: list[str],
) -> GraphSet:
    """Write the ``precision`` graph set under ``stage_dir/<precision>/`` and measure it against fp32."""
    prep = config.preprocessing
    # realistic inputs only: noise is no use for judging an accuracy cost
    evaluation = [image_like_batch(8, prep, seed=500)]
    if precision == "fp16":
        graphs = _write_fp16(stage_dir, fp32, FP16_BLOCK_ALWAYS)
        graph_set = GraphSet(precision="fp16", graphs=graphs, providers=providers)
        figures = measure_deviation(stage_dir, fp32, graph_set, tasks, evaluation)
        if not np.isfinite(figures["max_rel_error"]):
            log.warning("fp16 graphs produced non-finite values; keeping %s in fp32", ", ".join(FP16_BLOCK_SAFE))
            graphs = _write_fp16(stage_dir, fp32, FP16_BLOCK_SAFE)
            graph_set = GraphSet(precision="fp16", graphs=graphs, providers=providers)
            figures = measure_deviation(stage_dir, fp32, graph_set, tasks, evaluation)
    elif precision == "int8":
        files = list(calibration_images or [])
        held_out = files[3::4] if len(files) >= 8 else []
        calibrate = [f for f in files if f not in set(held_out)]
        graphs = _write_int8(stage_dir, fp32, calibration_batches(calibrate, prep))
        graph_set = GraphSet(precision="int8", graphs=graphs, providers=providers)
        if held_out:
            evaluation += calibration_batches(held_out, prep)
        figures = measure_deviation(stage_dir, fp32, graph_set, tasks, evaluation)
    else:
        raise ExportError(f"unknown precision {precision!r}")
    if not np.isfinite(figures["max_rel_error"]):
        raise ExportError(f"the {precision} graphs produce non-finite outputs; export without --precision {precision}")
    log.info("%s deviation from fp32: %s", precision, figures)
    return graph_set.model_copy(update={"deviation_from_fp32": figures})
