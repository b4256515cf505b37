"""Ensembles and flip test-time augmentation at run time: one engine over every member.

``inference.engines.factory.make_engine`` returns an ``EnsembleEngine`` when the manifest
lists ``members`` or flip TTA applies (else the ordinary ``FallbackEngine``).

``EnsembleEngine.run(task, batch)``:

- every member is a ``FallbackEngine`` on the member's own model folder (ONNX Runtime,
  PyTorch on the same weights if it fails), created once; its sessions are made on first
  use and kept, and on the CPU every session of every member allocates from the one
  shared CPU arena of the process (``inference.engines.runner.shared_cpu_arena``);
- with flip TTA and a task whose rule flips, the batch is concatenated with its mirror
  image (flipped along W) and each member runs the 2N images in one call; an ``unsafe``
  task runs the N originals only;
- the runs are averaged per ``inference.engines.combine`` (decoded estimates, mirrored back) and
  returned as the task's role tensor, which the ordinary decoding turns into the
  prediction. Only the kind's role is returned.

``--tta``: ``auto`` = the manifest's ``tta.mode`` (``none`` when absent), ``none``,
``flip``. Flip rules: the manifest's ``tta.flip_rules`` over ``contract.flip``'s defaults.
"""

from __future__ import annotations

import logging

import numpy as np

from contract.flip import FlipRule, resolve_rules
from contract.kinds import OUTPUT_ROLE
from contract.manifest import ManifestError, ModelFolder, TaskEntry
from contract.defaults import TTA_CHOICES
from inference.engines.fallback import Engine, FallbackEngine
from inference.engines.combine import combine, estimate, mirror_back
from inference.engines.infer import infer_batch

log = logging.getLogger(__name__)


def resolve_tta(folder: ModelFolder, tta: str = "auto") -> dict[str, FlipRule]:
    """The tasks to flip and their rules (empty: no TTA). One warning when flip TTA flips no task."""
    if tta not in TTA_CHOICES:
        raise ValueError(f"tta must be one of {TTA_CHOICES}, not {tta!r}")
    manifest = folder.manifest
    mode = (manifest.tta.mode if manifest.tta is not None else "none") if tta == "auto" else tta
    if mode == "none":
        return {}
    overrides = manifest.tta.flip_rules if manifest.tta is not None else {}
    rules = {task_id: rule for task_id, rule in resolve_rules(manifest.model.tasks, overrides).items() if rule.flips}
    if not rules:
        log.warning("flip TTA: every task of this model is unsafe to flip (flip rules: contract.flip); "
                    "running without TTA")
    return rules


def open_members(folder: ModelFolder) -> list[ModelFolder]:
    """The members' model folders (the folder itself when it is not an ensemble); ManifestError if unusable."""
    manifest = folder.manifest
    if not manifest.members:
        return [folder]
    members = []
    tasks = {t.task_id: t for t in manifest.model.tasks}
    for index, member in enumerate(manifest.members):
        opened = ModelFolder.open(folder.path / member.path)
        config = opened.manifest.model
        if {t.task_id: t for t in config.tasks} != tasks:
            raise ManifestError(f"{opened.path}: member {index} serves other tasks than the ensemble's manifest; "
                                "re-export the ensemble")
        if config.preprocessing != manifest.model.preprocessing:
            raise ManifestError(f"{opened.path}: member {index} preprocesses images differently from the "
                                "ensemble's manifest; re-export the ensemble")
        members.append(opened)
    return members


class EnsembleEngine:
    """Runs every member (and the flipped copies) on a batch and returns the averaged role tensor."""

    def __init__(self, folder: ModelFolder, members: list[ModelFolder], flip: dict[str, FlipRule],
                 engine: str = "auto", device: str = "auto", precision: str = "auto", threads: int | None = None,
                 verify_hashes: bool = True, expected_images: int | None = None):
        self.folder, self.members, self.flip = folder, members, flip
        # each member sees every image (twice when flipped): its share of a variant's start-up is the same
        self.engines: list[Engine] = [FallbackEngine(m, engine, device, precision, threads, verify_hashes=verify_hashes,
                                                     expected_images=expected_images) for m in members]

    @property
    def description(self) -> str:
        tasks = len(self.folder.manifest.tasks)
        what = f"{len(self.members)} member{'s' if len(self.members) > 1 else ''}"
        tta = f"flip TTA on {len(self.flip)}/{tasks} tasks" if self.flip else "no TTA"
        return f"ensemble of {what}, {tta}; each: {self.engines[0].description}"

    def run(self, task: TaskEntry, batch: np.ndarray) -> dict[str, np.ndarray]:
        """N x 3 x H x W -> {role: averaged role tensor} (EngineError/FatalError from a member)."""
        rule = self.flip.get(task.task_id)
        count = len(batch)
        inputs = np.concatenate([batch, batch[..., ::-1]]) if rule is not None else batch
        estimates = []
        for member, engine in zip(self.members, self.engines):
            entry = member.manifest.task(task.task_id)
            output = infer_batch(engine, entry, inputs)
            estimates.append(estimate(task.kind, output[:count]))
            if rule is not None:
                mirrored = estimate(task.kind, output[count:])
                estimates.append(mirror_back(task.kind, rule, mirrored))
        return {OUTPUT_ROLE[task.kind]: combine(task.kind, estimates)}
