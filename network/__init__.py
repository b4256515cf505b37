"""PyTorch networks served by this project (export, training, the runtime's fallback engine).

``build_model(config)`` looks the architecture up in a registry of builders, as
timm does, so that a new variant is one small builder, not a fork.
"""

from network.registry import ARCHITECTURES, build_model, register

__all__ = ["ARCHITECTURES", "build_model", "register"]
