"""Architecture registry: name -> builder(ModelConfig) -> nn.Module."""

from __future__ import annotations

from typing import Callable

from torch import nn

from contract.manifest import ModelConfig

Builder = Callable[[ModelConfig], nn.Module]
ARCHITECTURES: dict[str, Builder] = {}


class UnknownArchitectureError(ValueError):
    """A ModelConfig names an architecture no builder is registered for."""


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


# --- seed architectures (export helper) -------------------------------------------------
@register("unet_cls")
def _unet_cls(config: ModelConfig) -> nn.Module:
    """Seed 002: smp Unet + classification head (aux_params); one segmentation + one classification task."""
    from network.variants_unet import UnetWithClassifier

    return UnetWithClassifier(config)


@register("timm_regressor")
def _timm_regressor(config: ModelConfig) -> nn.Module:
    """Seed 003: timm backbone (efficientnet_b3) + global pooling + linear to 2M coordinates."""
    from network.variants_timm import LandmarkRegressor

    return LandmarkRegressor(config)


@register("vit_fpn")
def _vit_fpn(config: ModelConfig) -> nn.Module:
    """Seed 001: a plain timm ViT (encoder_name tu-vit_*) with a pyramid adapter, FPN and the baseline's heads."""
    from network.variants_timm import ViTMultiTaskNet

    return ViTMultiTaskNet(config)


# --- bring your own model (exporter.byom) ------------------------------------------------
@register("byom")
def _byom(config: ModelConfig) -> nn.Module:
    """A team's own nn.Module, imported from the module and factory the manifest names (network.byom)."""
    from network.byom import build_from_config

    return build_from_config(config)


@register("byom_onnx")
def _byom_onnx(config: ModelConfig) -> nn.Module:
    """An ONNX file a team brought: there is no PyTorch network to rebuild."""
    from network.byom import ByomError

    raise ByomError("no PyTorch fallback for this model: it was brought as an ONNX file, there is no PyTorch network")
