"""The manifest's optional ensemble and test-time augmentation fields (absent in single-model folders).

``members``: an ensemble folder holds every member as a complete model folder of its own
under ``members/<k>/`` (its own ``manifest.json`` and graphs, parity-verified at its export);
the top-level manifest lists them and describes every task the folder serves (the union of
the members' tasks; each task's entry and graphs are those of the first member serving it,
member 0's under their own names), so the task list and preprocessing are read from one place.

A *composite* folder's members serve different task sets: ``EnsembleMember.tasks`` lists a
member's tasks (absent: every task of the folder), and ``composition`` maps a task to the
members that serve it and their weights (``MemberWeight``; a task left out: every member
serving it, equal weights). Each task's prediction is the weighted mean of its members'
estimates (``inference.engines.combine``).

``tta``: whether the runtime flips images by default (``python -m inference --tta auto``),
per task where ``tta.tasks`` says so (else ``tta.mode``), and every task's flip rule
(``contract.flip``).

A manifest without these fields (every folder exported before them) is a single model
without TTA; its flip rules are the defaults of ``contract.flip``. A manifest with
``members`` but without ``tasks``/``composition`` is what it always was: every member serves
every task, with equal weights.
"""

from __future__ import annotations

import math
from pathlib import PurePosixPath
from typing import Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contract.flip import FlipRule
MEMBERS_FOLDER = "members"


class EnsembleMember(BaseModel):
    """One member of an ensemble: where its model folder is, and what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="the member's model folder, relative to the ensemble folder")
    architecture: str
    encoder_name: str
    source: dict[str, str] = Field(default_factory=dict, description="checkpoint (or folder) name, sha256")
    tasks: list[str] | None = Field(None, description="the tasks this member serves (absent: every task)")

    def serves(self, task_id: str) -> bool:
        return self.tasks is None or task_id in self.tasks

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        parts = PurePosixPath(value).parts
        if not parts or PurePosixPath(value).is_absolute() or ".." in parts:
            raise ValueError(f"member path {value!r} must be a folder inside the model folder")
        return value


class TestTimeAugmentation(BaseModel):
    """The default test-time augmentation and each task's flip rule (tasks left out: their default)."""

    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["none", "flip"] = "none"
    flip_rules: dict[str, FlipRule] = Field(default_factory=dict)
    tasks: dict[str, Literal["none", "flip"]] = Field(
        default_factory=dict, description="per task: the mode under --tta auto (tasks left out: mode)")

    def mode_of(self, task_id: str) -> str:
        """What ``--tta auto`` does for ``task_id``."""
        return self.tasks.get(task_id, self.mode)


class MemberWeight(BaseModel):
    """One member serving a task, and its weight in the task's mean."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    member: int = Field(ge=0, description="index into the manifest's members")
    weight: float = Field(1.0, gt=0)

    @field_validator("weight")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("a member's weight must be finite")
        return value


def task_members(members: Sequence[EnsembleMember], composition: Mapping[str, Sequence[MemberWeight]] | None,
                 task_id: str) -> list[MemberWeight]:
    """The members serving ``task_id`` and their weights (the composition's, else every serving member, weight 1)."""
    if composition and task_id in composition:
        return list(composition[task_id])
    return [MemberWeight(member=k) for k, member in enumerate(members) if member.serves(task_id)]


def check_composition(task_ids: Sequence[str], members: Sequence[EnsembleMember] | None,
                      composition: Mapping[str, Sequence[MemberWeight]] | None,
                      tta: TestTimeAugmentation | None) -> None:
    """ValueError naming the problem when members, composition and per-task TTA do not fit the task list."""
    known = set(task_ids)
    if tta is not None and set(tta.tasks) - known:
        raise ValueError(f"tta.tasks names tasks the model does not have: {sorted(set(tta.tasks) - known)}")
    if not members:
        if composition:
            raise ValueError("a composition needs members")
        return
    for index, member in enumerate(members):
        unknown = sorted(set(member.tasks or ()) - known)
        if unknown:
            raise ValueError(f"member {index} ({member.path}) lists tasks the model does not have: {unknown}")
    unserved = [t for t in task_ids if not any(m.serves(t) for m in members)]
    if unserved:
        raise ValueError(f"no member serves tasks {unserved}")
    for task_id, chosen in (composition or {}).items():
        if task_id not in known:
            raise ValueError(f"composition names task {task_id!r}, which the model does not have")
        indexes = [w.member for w in chosen]
        if not indexes or len(set(indexes)) != len(indexes):
            raise ValueError(f"composition of {task_id}: list each member at most once, and at least one")
        for index in indexes:
            if index >= len(members) or not members[index].serves(task_id):
                raise ValueError(f"composition of {task_id}: member {index} does not exist or does not serve it")
