"""What a horizontal flip of the image does to each task's labels (flip test-time augmentation).

A task declares one rule:

``safe``
    the labels mean the same on the mirror image: masks, boxes and points are mirrored
    back (x -> 1 - x) and classes are unchanged.
``unsafe``
    the label depends on left and right in a way no permutation undoes: the task is
    never flipped (its images run once per member, as without TTA).
``permute_classes:P``
    classification (or segmentation): class ``c`` of an image is class ``P[c]`` of its
    mirror image, so the mirror's probabilities are read back as ``p[P[c]]``.
``permute_points:P``
    keypoints: point ``i`` of an image is point ``P[i]`` of its mirror image (e.g. points
    ordered left to right swap), so the mirror's points are reordered, then x -> 1 - x.

A flip is its own inverse, so ``P`` must be a permutation with ``P[P[i]] == i``.

Defaults for the 27 official tasks (``DEFAULT_FLIP_RULES``), from the task definitions
(SPEC.md) and, where the challenge does not document the label order, the phantom
rules the default model is trained on (``phantoms/``). A task is ``unsafe`` either when
a flip changes what its labels mean and no permutation is known, or when its images
follow a fixed left-right convention or anatomical handedness, so that a mirror image is
an image the task never has (the network's answer on it is no evidence; on held-out
phantoms flipping these tasks made the default model worse, BENCHMARKS.md):

- segmentation: ``safe`` for the 8 tasks of one structure or of structures without a
  side (breast_lesion, carotid_artery, cervix, cervix_multi, fetal_head, fetal_heart,
  lung, ovary_tumor, thyroid_nodule): a mirrored mask is the mask of the mirrored image.
  ``unsafe``: ``cardiac_multi`` (chambers of a standard echocardiographic view, told
  apart partly by their side), ``fetal_abdomen_multi`` (stomach, spine and umbilical
  vein: the mirror is situs inversus), ``head_symphysis_multi`` (transperineal view:
  symphysis on one side, the head on the other, by convention).
- detection (3 tasks): ``safe``: one box per image, mirrored back.
- classification: ``safe`` for the tasks whose classes are a diagnosis, an organ or a
  plane (breast_2cls, breast_3cls, fetal_plane_cls, liver_lesion_2cls, lung_2cls,
  lung_disease_3cls, organ_cls): a mirror image shows the same finding.
  ``fetal_head_pos_cls`` and ``fetal_sacral_pos_cls`` are positions (8 directions):
  ``unsafe``. A flip does map a direction to another one, but the challenge does not
  publish which index is which direction, so no permutation can be justified for real
  data. For models trained on this project's phantoms (class k = direction k * 45 deg,
  0 = right, 90 = down) the mirror of direction k is (4 - k) mod 8, i.e.
  ``permute_classes:4,3,2,1,0,7,6,5`` (``PHANTOM_DIRECTION_PERMUTATION``); set it at export
  with ``--flip-rule fetal_head_pos_cls=permute_classes:4,3,2,1,0,7,6,5``.
- keypoints: ``fetal_femur`` (the two ends of the femur) and ``FUGC`` (two points of the
  cervix) have no anatomical identity of their own: they are ordered left to right
  (the phantoms' rule: point 1 is the left one), so a flip swaps them:
  ``permute_points:1,0``. ``IUGC`` (two symphysis ends, then the fetal head) is the
  transperineal view of ``head_symphysis_multi``, with its fixed convention: ``unsafe``.

Tasks outside the official list: segmentation and detection ``safe`` (geometry mirrors
exactly), classification and keypoints ``unsafe`` until the team declares otherwise.
"""

from __future__ import annotations

from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, model_validator

from contract.kinds import KIND_SPECS, spec_of
from contract.tasks import TaskSpec

FlipKind = Literal["safe", "unsafe", "permute_classes", "permute_points"]


class FlipRuleError(ValueError):
    """A flip rule that cannot be parsed or does not fit its task."""


class FlipRule(BaseModel):
    """One task's flip rule; ``permutation`` only for the ``permute_*`` rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: FlipKind
    permutation: tuple[int, ...] | None = None

    @model_validator(mode="after")
    def _permutation(self) -> "FlipRule":
        permuting = self.rule.startswith("permute_")
        if permuting != (self.permutation is not None):
            raise ValueError(f"rule {self.rule!r} " + ("needs a permutation" if permuting else "takes no permutation"))
        if self.permutation is not None:
            p = self.permutation
            if sorted(p) != list(range(len(p))):
                raise ValueError(f"{list(p)} is not a permutation of 0..{len(p) - 1}")
            if any(p[p[i]] != i for i in range(len(p))):
                raise ValueError(f"{list(p)} is not its own inverse; a flip undone by a second flip must be")
        return self

    @property
    def flips(self) -> bool:
        return self.rule != "unsafe"

    def __str__(self) -> str:
        if self.permutation is None:
            return self.rule
        return f"{self.rule}:{','.join(str(i) for i in self.permutation)}"

    def fits(self, task: TaskSpec) -> bool:
        """Whether the rule fits ``task`` (kind and size), without raising."""
        try:
            self.check(task)
        except FlipRuleError:
            return False
        return True

    def check(self, task: TaskSpec) -> "FlipRule":
        """The rule, if it fits ``task`` (kind and size); FlipRuleError naming the task otherwise."""
        if self.rule == "permute_points" or self.rule == "permute_classes":
            what = self.rule.removeprefix("permute_")
            if spec_of(task.kind).flip_permutes != what:
                fitting = [k.value for k, s in KIND_SPECS.items() if s.flip_permutes == what]
                raise FlipRuleError(f"task {task.task_id}: {self.rule} is for {' or '.join(fitting)} tasks, "
                                    f"not {task.kind.value}")
            size = task.num_points if what == "points" else task.num_classes
        else:
            return self
        if len(self.permutation or ()) != size:
            raise FlipRuleError(f"task {task.task_id}: the permutation has {len(self.permutation or ())} entries, "
                                f"the task has {size} {what}")
        return self


def parse_rule(text: str) -> FlipRule:
    """``safe``, ``unsafe``, ``permute_classes:1,0`` or ``permute_points:[1, 0]`` -> FlipRule."""
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    try:
        if not rest.strip():
            return FlipRule(rule=name)
        items = [s for s in rest.strip().strip("[]").replace(" ", "").split(",") if s]
        return FlipRule(rule=name, permutation=tuple(int(s) for s in items))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise FlipRuleError(f"flip rule {text!r}: expected safe, unsafe, permute_classes:P or permute_points:P "
                            f"(P a comma-separated permutation, e.g. 1,0): {_reason(exc)}") from None


def parse_assignment(text: str) -> tuple[str, FlipRule]:
    """``TASK=RULE`` (the exporter's ``--flip-rule``) -> (task_id, FlipRule)."""
    task_id, sep, rule = text.partition("=")
    if not sep or not task_id.strip():
        raise FlipRuleError(f"--flip-rule {text!r}: expected TASK=RULE, e.g. fetal_femur=permute_points:1,0")
    return task_id.strip(), parse_rule(rule)


def _reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(str(e.get("msg", e)) for e in errors())
    return str(exc)


SAFE = FlipRule(rule="safe")
UNSAFE = FlipRule(rule="unsafe")
SWAP_TWO_POINTS = FlipRule(rule="permute_points", permutation=(1, 0))
#: The mirror of direction k * 45 deg (0 = right, 90 = down) is (4 - k) mod 8: the phantoms' position classes.
PHANTOM_DIRECTION_PERMUTATION = FlipRule(rule="permute_classes", permutation=(4, 3, 2, 1, 0, 7, 6, 5))

#: Official tasks whose rule is not their kind's (segmentation/detection/other classification: safe).
_OFFICIAL_EXCEPTIONS: dict[str, FlipRule] = {
    "fetal_head_pos_cls": UNSAFE,
    "fetal_sacral_pos_cls": UNSAFE,
    "fetal_femur": SWAP_TWO_POINTS,
    "FUGC": SWAP_TWO_POINTS,
    "IUGC": UNSAFE,
    "cardiac_multi": UNSAFE,
    "fetal_abdomen_multi": UNSAFE,
    "head_symphysis_multi": UNSAFE,
}
_OFFICIAL_SAFE_CLASSIFICATION = ("breast_2cls", "breast_3cls", "fetal_plane_cls", "liver_lesion_2cls", "lung_2cls",
                                 "lung_disease_3cls", "organ_cls")


def _official_defaults() -> dict[str, FlipRule]:
    from contract.tasks import OFFICIAL_TASKS

    rules: dict[str, FlipRule] = {}
    for task in OFFICIAL_TASKS:
        if task.task_id in _OFFICIAL_EXCEPTIONS:
            rules[task.task_id] = _OFFICIAL_EXCEPTIONS[task.task_id]
        elif spec_of(task.kind).flip_safe_default or task.task_id in _OFFICIAL_SAFE_CLASSIFICATION:
            rules[task.task_id] = SAFE
        else:  # pragma: no cover - every official task is covered above (tests/test_ensemble_tta.py)
            rules[task.task_id] = UNSAFE
    return rules


DEFAULT_FLIP_RULES: dict[str, FlipRule] = _official_defaults()


def default_rule(task: TaskSpec) -> FlipRule:
    """The official default of ``task`` when its id and size match an official task, else its kind's."""
    rule = DEFAULT_FLIP_RULES.get(task.task_id)
    if rule is not None and rule.fits(task):  # same id, other size: not the official task
        return rule
    return SAFE if spec_of(task.kind).flip_safe_default else UNSAFE


def resolve_rules(tasks: list[TaskSpec], overrides: Mapping[str, FlipRule] | None = None) -> dict[str, FlipRule]:
    """Every task's rule: ``overrides`` (checked against the task) over the defaults; unknown ids are an error."""
    overrides = dict(overrides or {})
    known = {task.task_id for task in tasks}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise FlipRuleError(f"--flip-rule names tasks the model does not have: {', '.join(unknown)} "
                            f"(its tasks: {', '.join(sorted(known))})")
    return {task.task_id: (overrides[task.task_id].check(task) if task.task_id in overrides else default_rule(task))
            for task in tasks}
