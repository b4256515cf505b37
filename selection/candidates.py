"""The configurations a task may be given (``Candidate``), what each costs, and which is cheaper.

A candidate is: the members that serve the task with their weights, flip TTA on or off,
and (for tasks whose predictions are masks) a mask postprocessing (``contract.postprocess``).
Its run-time cost is counted in *model runs per image*: one per member, two for a member
under flip TTA (the image and its mirror). Of two candidates that score the same, the
cheaper wins: fewer model runs, then fewer postprocessing steps, then fewer members, then
the members listed first.

``base_candidates`` enumerates the member sets (each member alone, every combination of up
to ``MAX_SUBSET_MEMBERS`` members with equal weights, and all of them) times flip on/off
where the task's flip rule allows, within the budget; ``postprocess_candidates`` the
postprocessing options tried on top of the best of those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Sequence

from contract.postprocess import NONE, MaskPostprocess, parse_postprocess

#: With more members than this, only each member alone, the pairs and all members together are tried.
MAX_SUBSET_MEMBERS = 4
#: The postprocessing options tried per mask task (``--postprocess-candidates`` replaces them).
DEFAULT_POSTPROCESS = ("largest_per_class", "largest_foreground", "fill_holes", "largest_per_class+fill_holes",
                       "largest_foreground+fill_holes")


@dataclass(frozen=True)
class Candidate:
    """One configuration of a task (module docstring)."""

    members: tuple[tuple[int, float], ...]  # (member index, weight), by index
    flip: bool = False
    postprocess: MaskPostprocess = field(default=NONE)

    @property
    def runs(self) -> int:
        """Model runs per image."""
        return len(self.members) * (2 if self.flip else 1)

    def cost_key(self) -> tuple:
        return (self.runs, self.postprocess.steps, len(self.members), tuple(m for m, _ in self.members),
                str(self.postprocess))

    def with_postprocess(self, postprocess: MaskPostprocess) -> "Candidate":
        return Candidate(self.members, self.flip, postprocess)

    def label(self, names: Sequence[str]) -> str:
        weights = {w for _, w in self.members}
        members = " + ".join(names[m] + ("" if len(weights) == 1 else f" x{w:g}") for m, w in self.members)
        parts = [members, "flip TTA" if self.flip else "no TTA"]
        if self.postprocess.active:
            parts.append(str(self.postprocess))
        return ", ".join(parts)

    def as_dict(self, names: Sequence[str]) -> dict:
        return {"members": [names[m] for m, _ in self.members], "weights": [w for _, w in self.members],
                "flip": self.flip, "postprocess": str(self.postprocess), "runs_per_image": self.runs}


def member_sets(serving: Sequence[int]) -> list[tuple[int, ...]]:
    """Each member alone, then combinations (all of them up to MAX_SUBSET_MEMBERS members, else pairs and all)."""
    serving = sorted(serving)
    sizes = range(1, len(serving) + 1) if len(serving) <= MAX_SUBSET_MEMBERS else (1, 2)
    sets = [c for size in sizes for c in combinations(serving, size)]
    if tuple(serving) not in sets:
        sets.append(tuple(serving))
    return sets


def base_candidates(serving: Sequence[int], can_flip: bool, max_runs: float | None) -> list[Candidate]:
    """Member sets x flip (where allowed), without postprocessing, within ``max_runs`` model runs per image."""
    out = []
    for members in member_sets(serving):
        for flip in ((False, True) if can_flip else (False,)):
            candidate = Candidate(tuple((m, 1.0) for m in members), flip)
            if max_runs is None or candidate.runs <= max_runs:
                out.append(candidate)
    return sorted(out, key=Candidate.cost_key)


def default_candidate(serving: Sequence[int]) -> Candidate:
    """What the folder does without a choice: every member serving the task, equal weights, no TTA, no postprocessing."""
    return Candidate(tuple((m, 1.0) for m in sorted(serving)))


def postprocess_candidates(texts: Sequence[str], num_classes: int) -> list[MaskPostprocess]:
    """The options to try (``none`` first); with one foreground class ``largest_foreground`` is
    ``largest_per_class`` (tried once)."""
    options = [NONE]
    for text in texts:
        option = parse_postprocess(text)
        if num_classes <= 2 and option.largest == "foreground":
            option = option.model_copy(update={"largest": "per_class"})
        if option not in options:
            options.append(option)
    return options


def cheapest(candidates: Sequence[Candidate]) -> Candidate:
    return min(candidates, key=Candidate.cost_key)
