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
  rows are kept. The pooled held-out predictions are scored once: the choice made on all the
  rows is adopted only when this held-out score beats the default's score on the same rows
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

    def choose(self, rows: Sequence[int]) -> Candidate:
        """The best base candidate on ``rows``, then the best postprocessing on top of it (module docstring)."""
        best = self._best(self.bases, rows)
        if len(self.postprocess) > 1:
            best = self._best([best.with_postprocess(p) for p in self.postprocess], rows)
        return best

    def decide(self, guard: Guard) -> Decision:
        everything = list(range(len(self.data.rows)))
        on_all = self.choose(everything)
        if len(everything) < guard.min_rows:
            return Decision(self.default, self.default, on_all, None,
                            f"{len(everything)} validation rows, fewer than {guard.min_rows}: the default is kept")
        if on_all == self.default:
            return Decision(self.default, self.default, on_all, None, "the default scores best")
        folds = fold_of(self.data.rows, min(guard.folds, len(everything)), guard.seed)
        pooled: list[Any] = [None] * len(everything)
        for fold in np.unique(folds):
            train = [i for i in everything if folds[i] != fold]
            chosen = self.choose(train)
            for i in everything:
                if folds[i] == fold:
                    pooled[i] = self.values(chosen)[i]
        held_out = self.scorer.aggregate(pooled, self.data.entry.num_classes)
        default = self.metrics(self.default)
        verdict = compare(self.order, held_out, default)
        cheaper = on_all.cost_key() < self.default.cost_key()
        scores = {"choice": held_out[self.metric], "default": default[self.metric]}
        figures = f"{self.metric} {held_out[self.metric]:.4g} vs {default[self.metric]:.4g}"
        if verdict > 0:
            return Decision(on_all, self.default, on_all, scores,
                            f"chosen on all rows; chosen fold by fold it beat the default on held-out rows ({figures})")
        if verdict == 0 and cheaper:
            return Decision(on_all, self.default, on_all, scores,
                            f"chosen on all rows; cheaper than the default and as good on held-out rows ({figures})")
        return Decision(self.default, self.default, on_all, scores,
                        f"the choice did not beat the default on held-out rows ({figures}): the default is kept")
