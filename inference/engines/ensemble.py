"""Ensembles and flip test-time augmentation at run time: one engine over every member.

``inference.engines.factory.make_engine`` returns an ``EnsembleEngine`` when the manifest
lists ``members`` or flip TTA applies (else the ordinary ``FallbackEngine``).

``EnsembleEngine.run(task, batch)``:

- every member is a ``FallbackEngine`` on the member's own model folder (ONNX Runtime,
  PyTorch on the same weights if it fails), created once; its sessions are made on first
  use and kept (each graph loads once, and a member no task uses never loads), and on the
  CPU every session of every member allocates from the one shared CPU arena of the process
  (``inference.engines.runner.shared_cpu_arena``);
- a task runs the members that serve it (``contract.ensemble.task_members``: the manifest's
  ``composition``, else every member serving it), averaged with their weights;
- with flip TTA and a task whose rule flips, the batch is concatenated with its mirror
  image (flipped along W) and each member runs the 2N images in one call; an ``unsafe``
  task runs the N originals only;
- the runs are averaged per ``inference.engines.combine`` (decoded estimates, mirrored back) and
  returned as the task's role tensor, which the ordinary decoding turns into the
  prediction. Only the kind's role is returned.

``--tta``: ``auto`` = what the manifest says per task (``tta.tasks``, else ``tta.mode``;
``none`` when absent), ``none`` or ``flip`` for every task. Flip rules: the manifest's
``tta.flip_rules`` over ``contract.flip``'s defaults.
"""

from __future__ import annotations

import logging

import numpy as np

from contract.ensemble import task_members
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
    if tta == "auto":
        tta_of = manifest.tta
        wanted = {t.task_id for t in manifest.tasks if tta_of is not None and tta_of.mode_of(t.task_id) == "flip"}
    else:
        wanted = {t.task_id for t in manifest.tasks} if tta == "flip" else set()
    if not wanted:
        return {}
    overrides = manifest.tta.flip_rules if manifest.tta is not None else {}
    rules = {task_id: rule for task_id, rule in resolve_rules(manifest.model.tasks, overrides).items()
             if rule.flips and task_id in wanted}
    if not rules and (tta == "flip" or manifest.tta is None or not manifest.tta.tasks):
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
        theirs = {t.task_id: t for t in config.tasks}
        listed = member.tasks if member.tasks is not None else list(tasks)
        if member.tasks is None and theirs != tasks or any(theirs.get(t) != tasks[t] for t in listed):
            raise ManifestError(f"{opened.path}: member {index} does not serve the tasks the ensemble's manifest "
                                "lists for it; re-export the ensemble")
        if config.preprocessing != manifest.model.preprocessing:
            raise ManifestError(f"{opened.path}: member {index} preprocesses images differently from the "
                                "ensemble's manifest; re-export the ensemble")
        members.append(opened)
    return members


def member_estimates(engine: Engine, entry: TaskEntry, batch: np.ndarray, rule: FlipRule | None) -> list[np.ndarray]:
    """One member's estimates of ``batch``: [plain] or, under a flip ``rule``, [plain, mirror image mirrored back].

    The batch and its mirror run in one call (2N images). The selection (``selection``) caches these."""
    count = len(batch)
    inputs = np.concatenate([batch, batch[..., ::-1]]) if rule is not None else batch
    output = infer_batch(engine, entry, inputs)
    estimates = [estimate(entry.kind, output[:count])]
    if rule is not None:
        estimates.append(mirror_back(entry.kind, rule, estimate(entry.kind, output[count:])))
    return estimates


class EnsembleEngine:
    """Runs the members serving a task (and the flipped copies) on a batch and returns the averaged role tensor."""

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
        started = next((e.description for e in self.engines if e.description != "(no engine started)"),
                       self.engines[0].description)
        return f"ensemble of {what}, {tta}; each: {started}"

    def serving(self, task_id: str) -> list[tuple[int, float]]:
        """(member index, weight) of the members serving ``task_id`` (a plain folder: its only member)."""
        manifest = self.folder.manifest
        if not manifest.members:
            return [(0, 1.0)]
        return [(w.member, w.weight) for w in task_members(manifest.members, manifest.composition, task_id)]

    @property
    def load_seconds(self) -> float:
        return sum(getattr(engine, "load_seconds", 0.0) for engine in self.engines)

    def start(self) -> None:
        """Every member's ``FallbackEngine.start`` (FatalError when one cannot run)."""
        for engine in self.engines:
            engine.start()

    @property
    def settings(self) -> dict[str, str]:
        """The members' engines and precisions (as ``FallbackEngine.settings``), and the TTA."""
        each = [engine.settings for engine in self.engines]
        joined = {key: " | ".join(dict.fromkeys(s[key] for s in each)) for key in ("engine", "precision")}
        return {**joined, "tta": "flip" if self.flip else "none"}

    def run(self, task: TaskEntry, batch: np.ndarray) -> dict[str, np.ndarray]:
        """N x 3 x H x W -> {role: averaged role tensor} (EngineError/FatalError from a member)."""
        rule = self.flip.get(task.task_id)
        estimates: list[np.ndarray] = []
        weights: list[float] = []
        for index, weight in self.serving(task.task_id):
            entry = self.members[index].manifest.task(task.task_id)
            mine = member_estimates(self.engines[index], entry, batch, rule)
            estimates += mine
            weights += [weight] * len(mine)
        return {OUTPUT_ROLE[task.kind]: combine(task.kind, estimates, weights)}
