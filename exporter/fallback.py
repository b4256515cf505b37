"""The PyTorch fallback's part of a folder: tensors no graph holds, and the proof that the folder rebuilds the network.

The fallback (``network.weights``) rebuilds the network from the manifest and reads its
weights back from the fp32 graphs' initializers; what no graph stores (besides
re-creatable counters) goes to a small ``torch_extra.npz``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from contract.manifest import GraphSet, TorchFallback
from exporter.errors import ExportError
from network.weights import RECREATED_SUFFIXES, load_model_from_folder

log = logging.getLogger(__name__)

EXTRA_FILE = "torch_extra.npz"


def stored_names(path: Path) -> set[str]:
    """Names under which a graph file holds tensors: its initializers and the ``Identity`` names given to them."""
    graph = onnx.load(str(path), load_external_data=False).graph
    names = {init.name for init in graph.initializer}
    for node in graph.node:  # deduplicated initializers: Identity(kept) -> dropped name (as network.weights reads them)
        if node.op_type == "Identity" and node.input and node.input[0] in names:
            names.add(node.output[0])
    return names


def write_fallback_extras(network: nn.Module, stage_dir: Path, graph_set: GraphSet) -> TorchFallback:
    """Save what the graphs do not hold (besides re-creatable counters) to a small .npz."""
    stored: set[str] = set()
    for graph in graph_set.graphs.values():
        stored |= stored_names(stage_dir / graph.path)
    extra = {
        key: value.detach().cpu().numpy()
        for key, value in network.state_dict().items()
        if key not in stored and not key.endswith(RECREATED_SUFFIXES)
    }
    if not extra:
        return TorchFallback()
    np.savez(stage_dir / EXTRA_FILE, **extra)
    log.info("%d tensors not in the graphs saved to %s", len(extra), EXTRA_FILE)
    return TorchFallback(extra_file=EXTRA_FILE, extra_bytes=(stage_dir / EXTRA_FILE).stat().st_size)


def verify_fallback(network: nn.Module, stage_dir: Path) -> None:
    """The folder must rebuild the same network with bit-identical weights."""
    rebuilt, _ = load_model_from_folder(stage_dir)
    original = network.state_dict()
    for key, value in rebuilt.state_dict().items():
        if key.endswith(RECREATED_SUFFIXES):
            continue
        if not torch.equal(value, original[key]):
            raise ExportError(f"the PyTorch fallback would load a different {key} than the network has")
