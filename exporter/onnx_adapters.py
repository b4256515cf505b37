"""The adapters of ``contract.kinds.base.ADAPTERS`` as ONNX nodes, and their numpy twins.

A team's ONNX file emits raw outputs (``KindSpec.raw_fits``); the kind's spec names the
adapter that turns one into the role tensor the runtime decodes (``KindSpec.raw_adapter``):

- ``identity``: the raw output is the role tensor;
- ``softmax``: softmax over axis 1 (classification logits -> probabilities);
- ``box_to_grid``: an N x 4 box -> a one-cell N x 5 x 1 x 1 grid whose objectness is 0.

The PyTorch versions are in ``network.byom``; the numpy ones are the parity reference of
the split graphs (the team's file in ONNX Runtime, adapted in numpy).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from onnx import GraphProto, TensorProto, helper

from contract.kinds.base import softmax

#: adapter(graph, raw output name, role output name, node name prefix, opset) appends the nodes.
NodeAdapter = Callable[[GraphProto, str, str, str, int], None]


def identity_nodes(graph: GraphProto, raw: str, name: str, prefix: str, opset: int) -> None:
    graph.node.append(helper.make_node("Identity", [raw], [name], name=f"{prefix}_identity"))


def softmax_nodes(graph: GraphProto, raw: str, name: str, prefix: str, opset: int) -> None:
    graph.node.append(helper.make_node("Softmax", [raw], [name], axis=1, name=f"{prefix}_softmax"))


def box_to_grid_nodes(graph: GraphProto, raw: str, name: str, prefix: str, opset: int) -> None:
    graph.initializer.extend([
        helper.make_tensor(f"{prefix}_starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor(f"{prefix}_ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor(f"{prefix}_axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor(f"{prefix}_zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor(f"{prefix}_grid_axes", TensorProto.INT64, [2], [2, 3]),
    ])
    graph.node.extend([
        helper.make_node("Slice", [raw, f"{prefix}_starts", f"{prefix}_ends", f"{prefix}_axes"], [f"{prefix}_first"]),
        helper.make_node("Mul", [f"{prefix}_first", f"{prefix}_zero"], [f"{prefix}_objectness"]),
        helper.make_node("Concat", [raw, f"{prefix}_objectness"], [f"{prefix}_cells"], axis=1),
    ])
    if opset >= 13:
        graph.node.append(helper.make_node("Unsqueeze", [f"{prefix}_cells", f"{prefix}_grid_axes"], [name]))
    else:
        graph.node.append(helper.make_node("Unsqueeze", [f"{prefix}_cells"], [name], axes=[2, 3]))


ONNX_ADAPTERS: dict[str, NodeAdapter] = {
    "identity": identity_nodes,
    "softmax": softmax_nodes,
    "box_to_grid": box_to_grid_nodes,
}

NUMPY_ADAPTERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda raw: raw,
    "softmax": lambda raw: softmax(raw, axis=1),
    "box_to_grid": lambda raw: np.concatenate([raw, np.zeros_like(raw[:, :1])], axis=1)[:, :, None, None],
}

#: Rank of the role tensor an adapter makes from a raw output of a given rank.
ROLE_RANK: dict[str, Callable[[int], int]] = {
    "identity": lambda rank: rank,
    "softmax": lambda rank: rank,
    "box_to_grid": lambda rank: 4,
}
