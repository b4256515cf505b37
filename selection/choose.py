"""Choosing a task's configuration on its validation rows, guarded against choosing noise.

``choose(rows)`` (on any subset of the rows): the best member set and flip TTA among the
base candidates (``selection.candidates``), then, for mask tasks, the best postprocessing
on top of it. "Best" is the task's selection metric (``selection.score``), then the kind's
other official metrics in order as tie-breakers (classification: auc, f1, f1_weighted, mcc,
accuracy; segmentation: dice, hd); a candidate replaces a cheaper one only when it is
strictly better (ties go to the cheaper).

The guard (``decide``):

- a task with fewer than ``min_rows`` validation rows keeps the default (every member
  serving it, equal weights, no TTA, no postprocessing; when that is over the run-time
  budget, the cheapest candidate);
- otherwise the rows are split into ``folds`` folds (stratified by class label where there is
  one); for each fold the choice is made on the other rows and its predictions of the fold's
  rows are kept, and the pooled held-out predictions are scored once. This is done for the
  procedure choosing members only, members and postprocessing, members and flip TTA, and all
  three (``Extras``): an extra is used only when its procedure scores better on held-out rows
  than the cheaper procedures (so a flip or a postprocessing that wins on the rows it was
  chosen on, but not on the others, is dropped). The choice that procedure makes on all the
  rows is adopted only when its held-out score beats the default's score on the same rows
  (or, for a choice cheaper than the default, equals it: ties go to the cheaper); else the
  task keeps the default.

Every candidate's predictions come from the cache (``selection.cache``): each is decoded and
scored once per row (memoized), whatever the number of folds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from contract.postprocess import MaskPostprocess, postprocess_mask
from selection.cache import TaskData, role_tensor
from selection.candidates import Candidate, base_candidates, default_candidate
from selection.score import KindScorer, compare, ranking

log = logging.getLogger(__name__)


@dataclass
class Guard:
    """How a choice is checked (module docstring)."""

    min_rows: int = 8
    folds: int = 4
    seed: int = 0


@dataclass
class Decision:
    """What was chosen for a task, and why."""

    chosen: Candidate
    default: Candidate
    on_all_rows: Candidate  # the choice made on every row, before the guard
    held_out: dict[str, float] | None  # {"choice": ..., "default": ...}: the guard's scores, if it ran
    reason: str


def fold_of(rows: Sequence[Any], folds: int, seed: int) -> np.ndarray:
    """Each row's fold, stratified by ``row.label`` where the rows have one (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    shuffle = rng.permutation(len(rows))
    strata = np.asarray([getattr(r, "label", None) if getattr(r, "label", None) is not None else -1 for r in rows])
    order = np.lexsort((shuffle, strata))
    out = np.empty(len(rows), np.int64)
    out[order] = np.arange(len(rows)) % folds
    return out


class Selector:
    """Scores candidates of one task on subsets of its rows (memoized per candidate and row)."""

    def __init__(self, data: TaskData, scorer: KindScorer, metric: str, postprocess: Sequence[MaskPostprocess],
                 serving: Sequence[int], max_runs: float | None):
        self.data, self.scorer, self.metric = data, scorer, metric
        self.postprocess = list(postprocess)
        self.bases = base_candidates(serving, data.rule is not None, max_runs)
        self.default = default_candidate(serving)
        if self.default.runs > (max_runs or self.default.runs):  # over the budget: the cheapest is the reference
            self.default = self.bases[0]
        self._values: dict[Candidate, list[Any]] = {}
        self._decoded: dict[Candidate, list[Any]] = {}
        self.decode_seconds: dict[Candidate, float] = {}

    def _predictions(self, base: Candidate) -> list[Any]:
        if base not in self._decoded:
            role = role_tensor(self.data, base)
            plain = self.data.entry.model_copy(update={"postprocess": None})
            started = time.perf_counter()
            self._decoded[base] = [plain.decode(role[i], size) for i, size in enumerate(self.data.sizes)]
            self.decode_seconds[base] = (time.perf_counter() - started) / max(1, len(self.data.sizes))
        return self._decoded[base]

    def values(self, candidate: Candidate) -> list[Any]:
        """Each row's reduced prediction (``KindScorer.row``) under ``candidate``."""
        if candidate not in self._values:
            base = candidate.with_postprocess(MaskPostprocess())
            predictions = self._predictions(base)
            seconds = self.decode_seconds[base]
            if candidate.postprocess.active:
                started = time.perf_counter()
                predictions = [type(p)(p.kind, mask=postprocess_mask(p.mask.copy(), candidate.postprocess))
                               for p in predictions]
                seconds += (time.perf_counter() - started) / max(1, len(predictions))
            self.decode_seconds[candidate] = seconds
            self._values[candidate] = [self.scorer.row(p, row, truth) for p, row, truth
                                       in zip(predictions, self.data.rows, self.data.truths)]
        return self._values[candidate]

    def metrics(self, candidate: Candidate, rows: Sequence[int] | None = None) -> dict[str, float]:
        values = self.values(candidate)
        picked = values if rows is None else [values[i] for i in rows]
        return self.scorer.aggregate(picked, self.data.entry.num_classes)

    @property
    def order(self) -> tuple[str, ...]:
        return ranking(self.data.entry.kind, self.metric)

    def _best(self, candidates: Sequence[Candidate], rows: Sequence[int]) -> Candidate:
        ordered = sorted(candidates, key=Candidate.cost_key)
        best, best_metrics = ordered[0], self.metrics(ordered[0], rows)
        for candidate in ordered[1:]:
            metrics = self.metrics(candidate, rows)
            if compare(self.order, metrics, best_metrics) > 0:
                best, best_metrics = candidate, metrics
        return best

    def choose(self, rows: Sequence[int], extras: "Extras | None" = None) -> Candidate:
        """The best base candidate on ``rows``, then the best postprocessing on top of it (module docstring);
        ``extras``: whether flip TTA and postprocessing may be chosen (default: both)."""
        extras = extras or Extras(True, True)
        best = self._best([c for c in self.bases if extras.flip or not c.flip], rows)
        if extras.postprocess and len(self.postprocess) > 1:
            best = self._best([best.with_postprocess(p) for p in self.postprocess], rows)
        return best

    def held_out(self, folds: np.ndarray, extras: "Extras") -> dict[str, float]:
        """The procedure's score on rows it did not choose on: each fold predicted by the choice made on the others."""
        everything = range(len(self.data.rows))
        pooled: list[Any] = [None] * len(self.data.rows)
        for fold in np.unique(folds):
            chosen = self.choose([i for i in everything if folds[i] != fold], extras)
            values = self.values(chosen)
            for i in everything:
                if folds[i] == fold:
                    pooled[i] = values[i]
        return self.scorer.aggregate(pooled, self.data.entry.num_classes)

    def decide(self, guard: Guard) -> Decision:
        everything = list(range(len(self.data.rows)))
        on_all = self.choose(everything)
        if len(everything) < guard.min_rows:
            return Decision(self.default, self.default, on_all, None,
                            f"{len(everything)} validation rows, fewer than {guard.min_rows}: the default is kept")
        if on_all == self.default:
            return Decision(self.default, self.default, on_all, None, "the default scores best on all rows")
        folds = fold_of(self.data.rows, min(guard.folds, len(everything)), guard.seed)
        flips = any(c.flip for c in self.bases)
        variants = [e for e in EXTRAS if (flips or not e.flip) and (len(self.postprocess) > 1 or not e.postprocess)]
        scores = {e: self.held_out(folds, e) for e in variants}
        extras = variants[0]
        for candidate in variants[1:]:  # an extra is kept only when it improves the held-out score
            if compare(self.order, scores[candidate], scores[extras]) > 0:
                extras = candidate
        chosen = self.choose(everything, extras)
        held_out, default = scores[extras], self.metrics(self.default)
        figures = {"choice": held_out[self.metric], "default": default[self.metric],
                   **{f"procedure: {e.name}": scores[e][self.metric] for e in variants}}
        text = f"{self.metric} {held_out[self.metric]:.4g} vs {default[self.metric]:.4g}"
        verdict = compare(self.order, held_out, default)
        if chosen != self.default and verdict > 0:
            return Decision(chosen, self.default, on_all, figures,
                            f"chosen fold by fold ({extras.name}), it beat the default on held-out rows ({text})")
        if chosen != self.default and verdict == 0 and chosen.cost_key() < self.default.cost_key():
            return Decision(chosen, self.default, on_all, figures,
                            f"cheaper than the default and as good on held-out rows ({extras.name}; {text})")
        return Decision(self.default, self.default, on_all, figures,
                        f"no choice beat the default on held-out rows ({text}): the default is kept")


@dataclass(frozen=True)
class Extras:
    """What a choice may add to a member set: flip TTA, postprocessing."""

    flip: bool
    postprocess: bool

    @property
    def name(self) -> str:
        return "members" + (" + flip" if self.flip else "") + (" + postprocessing" if self.postprocess else "")


#: The procedures the guard compares, cheapest first.
EXTRAS = (Extras(False, False), Extras(False, True), Extras(True, False), Extras(True, True))
