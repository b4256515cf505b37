"""Shared fixtures: a tiny 27-task network and its exported fp32 model folder.

``tiny_model_dir`` is built once per test session (about 15-30 s on 2 cores):
mobilenet_v2 encoder, narrow FPN (64/32 channels), 64x64 input, random weights
(seeded), all 27 official tasks. Treat it as read-only; copy it to change it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.manifest import ModelConfig, Preprocessing
from contract.tasks import TaskRegistry

TINY_ENCODER = "mobilenet_v2"
TINY_SIZE = (64, 64)


def make_tiny_config(tasks=None, encoder: str = TINY_ENCODER) -> ModelConfig:
    return ModelConfig(
        encoder_name=encoder,
        params={"pyramid_channels": 64, "segmentation_channels": 32},
        tasks=list(tasks if tasks is not None else TaskRegistry.official()),
        preprocessing=Preprocessing(input_size=TINY_SIZE),
    )


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    """ModelConfig of the tiny 27-task network (mobilenet_v2, 64x64)."""
    return make_tiny_config()


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
    """The tiny network in eval mode, with seeded random weights (BN statistics perturbed)."""
    import torch

    from network import build_model

    torch.manual_seed(1234)
    model = build_model(tiny_config)
    with torch.no_grad():  # non-trivial BN statistics, so parity also covers them
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model, tmp_path_factory) -> Path:
    """An exported fp32 model folder (manifest.json, encoder.onnx, fpn.onnx, heads/*.onnx) of ``tiny_model``."""
    from exporter import export_model

    out = tmp_path_factory.mktemp("tiny_export") / "model_weights"
    export_model(tiny_model, out, source={"checkpoint": "tiny (random weights, seed 1234)"})
    return out
