"""Name the smp encoder of a checkpoint from its ``encoder.*`` tensor names and shapes.

Candidates are smp's own encoders. Each is built on the meta device (no memory,
no weights, no downloads); to keep this quick, one encoder per implementing
class is built first and the class is skipped unless its top-level module names
match the checkpoint's. timm universal encoders (``tu-*``) cannot be enumerated
and must be named with ``--encoder``.
"""

from __future__ import annotations

import logging
import warnings
from functools import lru_cache

import torch
from segmentation_models_pytorch.encoders import encoders as SMP_ENCODERS
from segmentation_models_pytorch.encoders import get_encoder

from exporter.errors import EncoderInferenceError

log = logging.getLogger(__name__)

Signature = dict[str, tuple[int, ...]]
IGNORED_SUFFIXES = ("num_batches_tracked",)


def signature(state: dict[str, torch.Tensor], prefix: str = "") -> Signature:
    """name -> shape for keys under ``prefix`` (prefix removed), counters ignored."""
    return {
        key[len(prefix) :]: tuple(value.shape)
        for key, value in state.items()
        if key.startswith(prefix) and not key.endswith(IGNORED_SUFFIXES)
    }


@lru_cache(maxsize=None)
def _candidate_signature(name: str) -> tuple[tuple[str, tuple[int, ...]], ...] | None:
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            encoder = get_encoder(name, in_channels=3, depth=5, weights=None)
    except (RuntimeError, ValueError, KeyError, TypeError, NotImplementedError) as exc:
        log.debug("encoder %s cannot be built on the meta device: %s", name, exc)
        return None
    return tuple(signature(encoder.state_dict()).items())


def _roots(sig: Signature) -> set[str]:
    return {key.split(".", 1)[0] for key in sig}


def _score(target: Signature, candidate: Signature) -> float:
    """Fraction of the union of keys present in both with equal shapes."""
    union = set(target) | set(candidate)
    same = sum(1 for key in target if candidate.get(key) == target[key])
    return same / max(len(union), 1)


def infer_encoder(state: dict[str, torch.Tensor], prefix: str = "encoder.") -> str:
    """The unique smp encoder whose state_dict has exactly the checkpoint's names and shapes."""
    target = signature(state, prefix)
    if not target:
        raise EncoderInferenceError(f"the checkpoint has no '{prefix}*' tensors; cannot tell the encoder")
    if any(key.startswith("model.") for key in target):
        raise EncoderInferenceError(
            "the encoder looks like a timm universal encoder (keys 'encoder.model.*'); "
            "name it with --encoder tu-<timm model name>"
        )
    by_class: dict[type, list[str]] = {}
    for name, entry in SMP_ENCODERS.items():
        by_class.setdefault(entry["encoder"], []).append(name)
    exact: list[str] = []
    scored: list[tuple[float, str]] = []
    roots = _roots(target)
    for names in by_class.values():
        first = _candidate_signature(names[0])
        if first is None or _roots(dict(first)) != roots:
            continue
        for name in names:
            sig = _candidate_signature(name)
            if sig is None:
                continue
            sig = dict(sig)
            if sig == target:
                exact.append(name)
            else:
                scored.append((_score(target, sig), name))
    if len(exact) == 1:
        log.info("encoder inferred from the checkpoint: %s", exact[0])
        return exact[0]
    if len(exact) > 1:
        raise EncoderInferenceError(
            f"several encoders fit the checkpoint's tensors exactly: {', '.join(exact)}; choose one with --encoder"
        )
    near = [name for score, name in sorted(scored, reverse=True)[:5] if score > 0]
    hint = f"closest candidates: {', '.join(near)}" if near else "no smp encoder has its module names"
    raise EncoderInferenceError(
        f"no smp encoder has exactly the checkpoint's {len(target)} encoder tensors ({hint}); "
        "name it with --encoder (any smp encoder name, or tu-<timm model>)"
    )


def check_encoder_name(name: str) -> None:
    """Raise EncoderInferenceError for a name neither smp nor timm (``tu-*``) knows."""
    if name in SMP_ENCODERS:
        return
    if name.startswith("tu-"):
        import timm

        if timm.is_model(name[3:]):
            return
        close = timm.list_models(f"*{name[3:].split('_')[0]}*")[:8]
        raise EncoderInferenceError(f"timm has no model {name[3:]!r} for encoder {name!r}; similar: {', '.join(close) or 'none'}")
    import difflib

    close = difflib.get_close_matches(name, list(SMP_ENCODERS), n=6, cutoff=0.5)
    raise EncoderInferenceError(
        f"segmentation_models_pytorch has no encoder {name!r}; "
        f"{'did you mean: ' + ', '.join(close) if close else 'see smp.encoders.get_encoder_names()'} (or tu-<timm model>)"
    )
