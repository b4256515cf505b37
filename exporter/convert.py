"""One ONNX file to fp16 or to int8 (static QDQ): the conversions both graph layouts apply.

fp16: ``onnxconverter_common.float16.convert_float_to_float16`` with float32 inputs and
outputs (so graphs chain exactly as the fp32 ones), optionally keeping some op types
(pooling, reductions, softmax) in fp32. Two repairs around the converter:

- graph outputs that later nodes also read (the encoder's c2..c4) get their own
  ``Identity`` first; without it ``keep_io_types`` casts such an output back to float32
  under its own name and the float16 nodes that read it receive float32;
- ``Cast`` nodes the converter retyped to a float16 output but left casting ``to=FLOAT``
  (the float of a shape in timm's attention, the cell centres of a cell-offset detection
  head) cast to float16, the type their consumers expect; ONNX Runtime refuses them otherwise.

int8: ``onnxruntime.quantization.quantize_static`` in QDQ format: uint8 activations
(asymmetric), per-channel int8 weights (symmetric) of ``INT8_OP_TYPES``, MinMax
calibration on the feeds given; everything else stays fp32.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

INT8_OP_TYPES = ["Conv", "Gemm", "MatMul"]


def isolate_outputs(model: onnx.ModelProto) -> None:
    """Graph outputs that later nodes also read get their own Identity node (see the module docstring)."""
    consumed = {name for node in model.graph.node for name in node.input}
    for output in model.graph.output:
        if output.name not in consumed:
            continue
        inner = f"{output.name}__inner"
        for node in model.graph.node:
            node.output[:] = [inner if n == output.name else n for n in node.output]
            node.input[:] = [inner if n == output.name else n for n in node.input]
        model.graph.node.append(onnx.helper.make_node("Identity", [inner], [output.name], name=f"{output.name}__out"))


def fix_fp16_casts(model: onnx.ModelProto) -> onnx.ModelProto:
    """Cast nodes left casting to float32 while their output is declared float16 cast to float16."""
    declared = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    for node in model.graph.node:
        if node.op_type == "Cast" and declared.get(node.output[0]) == onnx.TensorProto.FLOAT16:
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT:
                    attribute.i = onnx.TensorProto.FLOAT16
    return model


def to_fp16(src: Path, dst: Path, block: Sequence[str]) -> None:
    """``src`` converted to fp16 (op types in ``block`` kept fp32), repaired, checked, written to ``dst``."""
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    isolate_outputs(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=list(block) or None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(fix_fp16_casts(converted), str(dst))
    onnx.checker.check_model(str(dst))


class Feeds(CalibrationDataReader):
    """A calibration reader over precomputed feed dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantizable_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes int8 quantizes (Conv/Gemm/MatMul), in graph order."""
    return [node.name for node in model.graph.node if node.op_type in INT8_OP_TYPES]


def prepare_int8(src: Path, prepared: Path) -> None:
    """ONNX Runtime's pre-processing (shape inference, optimization) before quantization."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=False)


def quantize_int8(prepared: Path, dst: Path, feeds: list[dict[str, np.ndarray]], keep_fp32: Sequence[str] = ()) -> None:
    """Static QDQ int8 of a prepared graph, calibrated on ``feeds``; nodes named in ``keep_fp32`` stay fp32."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    dst.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(
        str(prepared),
        str(dst),
        Feeds(feeds),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=INT8_OP_TYPES,
        nodes_to_exclude=list(keep_fp32),
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
    )
