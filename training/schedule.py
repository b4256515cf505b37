"""Cosine annealing driven by the run's progress (0..1), with an optional linear warmup.

The recipe anneals over the total number of steps. A run with a time limit
would stop before the end of such a schedule, at a high learning rate; here the
progress is the larger of ``step / total_steps`` and ``elapsed / time_limit``, so a
time-limited run still ends annealed. Without a time limit this is exactly
cosine annealing over the steps.
"""

from __future__ import annotations

import math

import torch


class ProgressCosine:
    """Sets each parameter group's lr to ``base_lr * factor(progress)``.

    ``factor`` rises linearly from 0 to 1 over the first ``warmup`` of the run, then
    follows ``min_ratio + (1 - min_ratio) * (1 + cos(pi * t)) / 2`` down to ``min_ratio``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup: float = 0.0, min_ratio: float = 0.0):
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup must be a fraction of the run in [0, 1), got {warmup}")
        self.optimizer = optimizer
        self.warmup = warmup
        self.min_ratio = min_ratio
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.progress = 0.0
        self.step(0.0)

    def factor(self, progress: float) -> float:
        p = min(max(progress, 0.0), 1.0)
        if self.warmup > 0 and p < self.warmup:
            return (p + 1e-3) / (self.warmup + 1e-3)
        t = (p - self.warmup) / (1.0 - self.warmup)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    def step(self, progress: float) -> None:
        self.progress = progress
        f = self.factor(progress)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"warmup": self.warmup, "min_ratio": self.min_ratio, "base_lrs": self.base_lrs,
                "progress": self.progress}

    def load_state_dict(self, state: dict) -> None:
        self.warmup, self.min_ratio = state["warmup"], state["min_ratio"]
        self.base_lrs = list(state["base_lrs"])
        self.step(state["progress"])
