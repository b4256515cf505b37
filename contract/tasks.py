"""The task registry: the 27 official FMC_UIA 2026 tasks, and how to narrow or extend them.

A task is identified by its ``task_id`` (the CSV's string), has a kind (the CSV's
``task_name`` spelling: ``segmentation``, ``classification``, ``detection``,
``Regression``) and a size: the number of classes (segmentation includes the
background class 0; detection is the number of object classes, 1 in the
challenge) or, for ``Regression``, the number of keypoints.

This module has no heavy imports: the runtime, the exporter, the phantom
generator and the evaluator all read it. What each kind means is in ``contract.kinds``.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field


class TaskKind(str, Enum):
    """The four kinds, spelled exactly as the challenge's CSV ``task_name`` column."""

    SEGMENTATION = "segmentation"
    CLASSIFICATION = "classification"
    DETECTION = "detection"
    REGRESSION = "Regression"

    @classmethod
    def parse(cls, text: str) -> "TaskKind":
        """Accept the CSV spelling and any capitalisation of it (``regression`` too)."""
        for kind in cls:
            if kind.value.lower() == text.strip().lower():
                return kind
        raise ValueError(f"unknown task kind {text!r}; expected one of {[k.value for k in cls]}")


class TaskSpec(BaseModel):
    """One task: its id, its kind and its size (classes, or keypoints for Regression)."""

    model_config = ConfigDict(frozen=True)

    task_id: str = Field(min_length=1)
    kind: TaskKind
    num_classes: int = Field(ge=1, description="classes (segmentation: with background) or keypoints")

    @property
    def num_points(self) -> int:
        """Keypoints of a Regression task (the CSV's ``num_classes`` column holds it)."""
        if self.kind is not TaskKind.REGRESSION:
            raise AttributeError(f"task {self.task_id} is {self.kind.value}, it has no keypoints")
        return self.num_classes


def _spec(kind: TaskKind, task_id: str, n: int) -> TaskSpec:
    return TaskSpec(task_id=task_id, kind=kind, num_classes=n)


_S, _C, _D, _R = TaskKind.SEGMENTATION, TaskKind.CLASSIFICATION, TaskKind.DETECTION, TaskKind.REGRESSION

#: Rows per kind in the official FMC_UIA 2026 validation set (the benchmarks scale their sets by it).
OFFICIAL_VALIDATION_ROWS: dict[TaskKind, int] = {_S: 2674, _C: 2727, _D: 725, _R: 617}

OFFICIAL_TASKS: tuple[TaskSpec, ...] = (
    _spec(_S, "breast_lesion", 2),
    _spec(_S, "cardiac_multi", 4),
    _spec(_S, "carotid_artery", 2),
    _spec(_S, "cervix", 2),
    _spec(_S, "cervix_multi", 3),
    _spec(_S, "fetal_abdomen_multi", 5),
    _spec(_S, "fetal_head", 2),
    _spec(_S, "fetal_heart", 2),
    _spec(_S, "head_symphysis_multi", 3),
    _spec(_S, "lung", 2),
    _spec(_S, "ovary_tumor", 2),
    _spec(_S, "thyroid_nodule", 2),
    _spec(_C, "breast_2cls", 2),
    _spec(_C, "breast_3cls", 3),
    _spec(_C, "fetal_head_pos_cls", 8),
    _spec(_C, "fetal_plane_cls", 6),
    _spec(_C, "fetal_sacral_pos_cls", 8),
    _spec(_C, "liver_lesion_2cls", 2),
    _spec(_C, "lung_2cls", 2),
    _spec(_C, "lung_disease_3cls", 3),
    _spec(_C, "organ_cls", 6),
    _spec(_D, "spinal_cord_injury_loc", 1),
    _spec(_D, "thyroid_nodule_det", 1),
    _spec(_D, "uterine_fibroid_det", 1),
    _spec(_R, "FUGC", 2),
    _spec(_R, "IUGC", 3),
    _spec(_R, "fetal_femur", 2),
)


class UnknownTaskError(KeyError):
    """A task id that the registry (or a model) does not have."""

    def __init__(self, task_id: str, known: Iterable[str]):
        self.task_id = task_id
        self.known = sorted(known)
        super().__init__(f"unknown task id {task_id!r}; known tasks: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError quotes its argument; show the sentence instead
        return self.args[0]


class TaskRegistry:
    """An ordered, immutable mapping task_id -> TaskSpec."""

    def __init__(self, tasks: Iterable[TaskSpec]):
        self._tasks: dict[str, TaskSpec] = {}
        for task in tasks:
            if task.task_id in self._tasks:
                raise ValueError(f"task id {task.task_id!r} is listed twice")
            self._tasks[task.task_id] = task

    @classmethod
    def official(cls) -> "TaskRegistry":
        return cls(OFFICIAL_TASKS)

    def __getitem__(self, task_id: str) -> TaskSpec:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise UnknownTaskError(task_id, self._tasks) from None

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __iter__(self):
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def ids(self) -> list[str]:
        return list(self._tasks)

    def of_kind(self, kind: TaskKind) -> list[TaskSpec]:
        return [t for t in self._tasks.values() if t.kind is kind]

    def select(self, task_ids: Iterable[str]) -> "TaskRegistry":
        """Narrow to the given ids (order of the registry kept); unknown ids raise UnknownTaskError."""
        wanted = list(task_ids)
        for task_id in wanted:
            self[task_id]  # raises with the list of known ids
        return TaskRegistry(t for t in self._tasks.values() if t.task_id in set(wanted))

    def extend(self, extra: Iterable[TaskSpec]) -> "TaskRegistry":
        """Add tasks (new ids only); a clash with an existing id raises ValueError."""
        return TaskRegistry([*self._tasks.values(), *extra])
