"""Rebuild the PyTorch network of an exported model folder from the graphs' own weights.

The fp32 ONNX graphs are exported so that their initializers carry the network's
``state_dict`` keys (see ``exporter.graphs``); the folder therefore needs no
second copy of the weights. What the graphs cannot hold is re-created
(``num_batches_tracked`` counters, which only matter when training with
``momentum=None``) or read from the small ``TorchFallback.extra_file`` (.npz)
that the exporter writes for tensors that no graph uses.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from contract.manifest import Manifest, ManifestError, load_manifest
from network.registry import build_model

log = logging.getLogger(__name__)

RECREATED_SUFFIXES = ("num_batches_tracked",)


def initializers_of(path: Path) -> dict[str, np.ndarray]:
    """Initializers of one ONNX file by name, plus names that ``Identity`` nodes give to them."""
    graph = onnx.load(str(path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:  # deduplicated initializers: Identity(kept) -> dropped name
        if node.op_type == "Identity" and node.input and node.input[0] in arrays:
            arrays.setdefault(node.output[0], arrays[node.input[0]])
    return arrays


def state_dict_from_graphs(model_dir: Path, manifest: Manifest) -> dict[str, torch.Tensor]:
    """Every tensor the graphs of the fallback's graph set (and the extra file) store, by name."""
    model_dir = Path(model_dir)
    fallback = manifest.torch_fallback
    tensors: dict[str, torch.Tensor] = {}
    for graph in manifest.graph_set(fallback.graph_set).graphs.values():
        for name, array in initializers_of(model_dir / graph.path).items():
            tensors.setdefault(name, torch.from_numpy(np.array(array)))
    if fallback.extra_file:
        extra = model_dir / fallback.extra_file
        if not extra.is_file():
            raise ManifestError(f"{extra}: tensors the PyTorch fallback needs are missing; re-export the model")
        with np.load(extra, allow_pickle=False) as data:
            tensors.update({name: torch.from_numpy(np.array(data[name])) for name in data.files})
    return tensors


def select_state_dict(model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state_dict filled from ``tensors``; re-creatable counters filled in; others must exist."""
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    missing = []
    for key, template in expected.items():
        if key in tensors:
            value = tensors[key]
            if tuple(value.shape) != tuple(template.shape):
                raise ManifestError(f"weight {key}: shape {tuple(value.shape)} in the graphs, network wants {tuple(template.shape)}")
            state[key] = value.to(template.dtype)
        elif key.endswith(RECREATED_SUFFIXES):
            state[key] = torch.zeros_like(template)
        else:
            missing.append(key)
    if missing:
        raise ManifestError(f"the model folder lacks {len(missing)} weights ({', '.join(missing[:5])}...); re-export the model")
    return state


def load_model(model_dir: Path, manifest: Manifest) -> nn.Module:
    """Build the manifest's network and load the folder's weights strictly; the model is in eval mode."""
    model = build_model(manifest.model)
    state = select_state_dict(model, state_dict_from_graphs(Path(model_dir), manifest))
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_model_from_folder(model_dir: Path) -> tuple[nn.Module, Manifest]:
    """Read the folder's manifest, then ``load_model``."""
    manifest = load_manifest(Path(model_dir))
    return load_model(model_dir, manifest), manifest
