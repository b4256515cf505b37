"""Architecture registry: name -> builder(ModelConfig) -> nn.Module."""

from __future__ import annotations

from typing import Callable

from torch import nn

from inference.manifest import ModelConfig

Builder = Callable[[ModelConfig], nn.Module]
ARCHITECTURES: dict[str, Builder] = {}


class UnknownArchitectureError(ValueError):
    pass


def register(name: str) -> Callable[[Builder], Builder]:
    def add(builder: Builder) -> Builder:
        ARCHITECTURES[name] = builder
        return builder

    return add


def build_model(config: ModelConfig) -> nn.Module:
    """Build the network a config describes (random weights; no downloads)."""
    try:
        builder = ARCHITECTURES[config.architecture]
    except KeyError:
        raise UnknownArchitectureError(
            f"unknown architecture {config.architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
    return builder(config)


@register("mh_mtl_fpn")
def _baseline(config: ModelConfig) -> nn.Module:
    from network.model import MultiTaskNet

    return MultiTaskNet(config)
