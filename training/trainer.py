"""The training loop of the seed-000 recipe.

Each step draws one task uniformly at random and a batch of that task's samples
(the baseline routes a whole batch through one head), applies the light
photometric augmentation, and takes one AdamW step on the task's loss
(``training.losses``). Two parameter groups: encoder + FPN decoder at
``lr_backbone``, the heads at ``lr_heads``; cosine annealing over the run
(``training.schedule``). Every ``steps_per_epoch`` steps (an "epoch") the model
is validated (``training.validate``), the summary is logged and appended to
``OUT/metrics.jsonl``, and ``OUT/last.pt`` is written; ``OUT/best.pt`` when the
validation score improves. ``resume`` continues from ``OUT/last.pt`` with the
same step count, optimizer, schedule and random states.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from contract.manifest import ModelConfig, Preprocessing
from contract.tasks import TaskRegistry
from network import build_model
from training.augment import Augmenter, uint8_to_input
from training.checkpoint import BEST, LAST, checkpoint_config, load_checkpoint, save_checkpoint
from training.data import TaskData, load_dataset
from training.kinds import task_loss
from training.losses import LossSettings
from training.options import DEFAULT_ENCODER, DEFAULT_PARAMS, TrainingError, TrainOptions
from training.schedule import ProgressCosine
from training.validate import format_summary, validate

log = logging.getLogger(__name__)


def _ordered_specs(data: dict[str, TaskData]) -> list:
    """Tasks of the data, official ones in the registry's order, then the others by id."""
    official = TaskRegistry.official().ids
    return sorted((d.spec for d in data.values()),
                  key=lambda s: (official.index(s.task_id) if s.task_id in official else len(official), s.task_id))


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class Trainer:
    """One training run; ``Trainer(options).run()`` returns the last validation metrics."""

    def __init__(self, options: TrainOptions):
        self.opts = options
        if options.threads:
            torch.set_num_threads(options.threads)
        self.device = options.torch_device()
        self.out = Path(options.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        last = self.out / LAST
        resumed = load_checkpoint(last) if options.resume and last.is_file() else None
        if options.resume and resumed is None:
            log.warning("--resume: %s does not exist yet; starting a new run", last)
        if resumed is None and last.exists():
            raise TrainingError(f"{last} exists: pass --resume to continue that run, or choose another --out")
        torch.manual_seed(options.seed)
        size = (options.input_size, options.input_size)
        cache = options.cache_dir if options.cache_dir is not None else self.out / "cache"
        if resumed is not None:
            self.config = checkpoint_config(resumed)
            size = tuple(self.config.preprocessing.input_size)
            self._warn_overrides()
        self.train_data = load_dataset(options.train_dir, size, cache, options.tasks)
        if resumed is None:
            self.config = ModelConfig(
                encoder_name=options.encoder or DEFAULT_ENCODER,
                params=DEFAULT_PARAMS if options.params is None else options.params,
                tasks=_ordered_specs(self.train_data),
                preprocessing=Preprocessing(input_size=size),
            )
        registry = self.config.registry
        for task_id, task in self.train_data.items():
            if task_id not in registry or registry[task_id] != task.spec:
                raise TrainingError(f"training task {task_id} ({task.spec.kind.value}, {task.spec.num_classes}) "
                                    f"is not a task of the checkpoint's model; train a new run instead of --resume")
        self.task_ids = list(self.train_data)
        weights = np.array([options.task_sampling.get(self.train_data[t].spec.kind.value, 1.0) for t in self.task_ids])
        self.task_probs = weights / weights.sum()
        self.val_data = self._load_val(size, cache, registry)
        self.prep = self.config.preprocessing
        try:
            self.model = build_model(self.config).to(self.device)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise TrainingError(f"cannot build the model (encoder {self.config.encoder_name!r}, "
                                f"params {self.config.params}): {exc}") from None
        if resumed is None and options.init_from is not None:
            self._warm_start(Path(options.init_from))
        backbone = [p for n, p in self.model.named_parameters() if n.startswith(("encoder.", "fpn_decoder."))]
        heads = [p for n, p in self.model.named_parameters() if not n.startswith(("encoder.", "fpn_decoder."))]
        self.optimizer = torch.optim.AdamW(
            [{"params": backbone, "lr": options.lr_backbone, "name": "backbone"},
             {"params": heads, "lr": options.lr_heads, "name": "heads"}],
            weight_decay=options.weight_decay)
        self.scheduler = ProgressCosine(self.optimizer, options.warmup, options.min_lr_ratio)
        self.losses = LossSettings(seg_ce=options.seg_ce, det_l1=options.det_l1, det_negative=options.det_negative)
        self.augmenter = Augmenter(options.seed)
        self.sampler = np.random.default_rng(options.seed + 1)
        self.step, self.epoch, self.elapsed_before = 0, 0, 0.0
        self.best_score, self.metrics = -math.inf, {}
        if resumed is not None:
            self._restore(resumed)
        _write_json(self.out / "config.json", self.config.model_dump(mode="json"))
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("model %s/%s, %d tasks, %.2fM parameters, device %s, step %d of %d",
                 self.config.architecture, self.config.encoder_name, len(self.config.tasks), n_params / 1e6,
                 self.device, self.step, options.total_steps)

    # --- setup helpers ------------------------------------------------------------
    def _warn_overrides(self) -> None:
        if self.opts.encoder and self.opts.encoder != self.config.encoder_name:
            log.warning("--resume: keeping the checkpoint's encoder %s (not %s)", self.config.encoder_name,
                        self.opts.encoder)
        if self.opts.params is not None and self.opts.params != self.config.params:
            log.warning("--resume: keeping the checkpoint's params %s", self.config.params)

    def _load_val(self, size, cache, registry: TaskRegistry) -> dict[str, TaskData]:
        if self.opts.val_dir is None:
            return {}
        data = load_dataset(self.opts.val_dir, size, cache)
        unknown = [t for t in data if t not in registry]
        if unknown:
            log.warning("validation tasks %s are not tasks of the model; they are not validated", unknown)
        return {t: d for t, d in data.items() if t in registry and registry[t] == d.spec}

    def _warm_start(self, path: Path) -> None:
        """Copy every tensor of another checkpoint whose name and shape match; report the rest."""
        source = load_checkpoint(path)["state_dict"]
        target = self.model.state_dict()
        copied = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
        self.model.load_state_dict(copied, strict=False)
        fresh = sorted({k.rsplit(".", 2)[0] for k in target if k not in copied})
        log.info("warm start from %s: %d of %d tensors copied; fresh: %s", path, len(copied), len(target),
                 ", ".join(fresh) or "none")

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.step, self.epoch = int(ckpt["step"]), int(ckpt["epoch"])
        self.elapsed_before = float(ckpt.get("elapsed_s", 0.0))
        self.best_score = float(ckpt.get("best_score", -math.inf))
        self.metrics = ckpt.get("metrics", {})
        rng = ckpt["rng"]
        self.augmenter.load_state_dict(rng["augment"])
        self.sampler.bit_generator.state = rng["sampler"]
        torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available() and rng.get("cuda") is not None:
            torch.cuda.set_rng_state_all(rng["cuda"])
        log.info("resumed from %s at step %d (epoch %d)", self.out / LAST, self.step, self.epoch)

    # --- the loop -----------------------------------------------------------------
    def _progress(self, elapsed: float) -> float:
        by_steps = self.step / self.opts.total_steps
        by_time = elapsed / (60.0 * self.opts.time_limit) if self.opts.time_limit else 0.0
        return max(by_steps, by_time)

    def train_step(self) -> tuple[str, float]:
        """One optimizer step on a batch of one drawn task (uniform unless --task-sampling); returns (task_id, loss)."""
        task_id = self.task_ids[int(self.sampler.choice(len(self.task_ids), p=self.task_probs))]
        data = self.train_data[task_id]
        count = min(self.opts.batch_size, len(data))
        index = np.sort(self.sampler.choice(len(data), size=count, replace=False))
        images = data.images[index]
        x = self.augmenter(images, self.prep) if self.opts.augment else uint8_to_input(images, self.prep)
        target = torch.from_numpy(data.target[index]).to(self.device)
        kind = data.spec.kind
        output = self.model(x.to(self.device), task_id)
        loss = task_loss(kind, output, target, self.losses) * self.opts.kind_weights.get(kind.value, 1.0)
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss of task {task_id} became {loss.item()} at step {self.step + 1}; "
                                "lower the learning rates (--lr-backbone, --lr-heads) or enable --grad-clip")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.opts.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.opts.grad_clip)
        self.optimizer.step()
        self.step += 1
        return task_id, float(loss.item())

    def run(self) -> dict:
        start = time.monotonic()
        total = self.opts.total_steps
        end = min(total, self.opts.stop_at or total)
        elapsed = lambda: self.elapsed_before + time.monotonic() - start  # noqa: E731
        timed_out = lambda: bool(self.opts.time_limit) and elapsed() >= 60.0 * self.opts.time_limit  # noqa: E731
        interactive = sys.stderr.isatty()
        while self.step < end and not timed_out():
            epoch_end = min(end, (self.step // self.opts.steps_per_epoch + 1) * self.opts.steps_per_epoch)
            kind_losses: dict[str, list[float]] = {}
            running = None
            bar = tqdm(total=epoch_end - self.step, desc=f"epoch {self.epoch + 1}", unit="step",
                       disable=not self.opts.progress, mininterval=0.5 if interactive else 30.0,
                       dynamic_ncols=interactive)
            while self.step < epoch_end and not timed_out():
                self.scheduler.step(self._progress(elapsed()))
                task_id, loss = self.train_step()
                kind_losses.setdefault(self.train_data[task_id].spec.kind.value, []).append(loss)
                running = loss if running is None else 0.95 * running + 0.05 * loss
                bar.set_postfix(loss=f"{running:.4f}", lr=f"{self.scheduler.get_last_lr()[1]:.2e}", refresh=False)
                bar.update(1)
            bar.close()
            self.epoch += 1
            self._end_epoch(kind_losses, elapsed())
        if self.step < total and not timed_out():
            log.info("paused at step %d of %d; continue with --resume", self.step, total)
        else:
            log.info("training finished at step %d (%s) after %.1f min", self.step,
                     "step budget reached" if self.step >= total else "time limit reached", elapsed() / 60.0)
        return self.metrics

    def _end_epoch(self, kind_losses: dict[str, list[float]], elapsed: float) -> None:
        train_loss = {k: float(np.mean(v)) for k, v in sorted(kind_losses.items())}
        record = {"epoch": self.epoch, "step": self.step, "elapsed_s": round(elapsed, 1),
                  "lr": self.scheduler.get_last_lr(), "train_loss": train_loss}
        if self.val_data:
            self.metrics = validate(self.model, self.val_data, self.prep, self.device, self.opts.val_batch_size)
            record["val"] = self.metrics
            log.info("epoch %d step %d | train %s | val %s", self.epoch, self.step,
                     " ".join(f"{k} {v:.4f}" for k, v in train_loss.items()), format_summary(self.metrics))
        else:
            self.metrics = {"train_loss": train_loss}
            log.info("epoch %d step %d | train %s", self.epoch, self.step,
                     " ".join(f"{k} {v:.4f}" for k, v in train_loss.items()))
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        score = self.metrics.get("score", float("nan"))
        improved = self.val_data and not math.isnan(score) and score > self.best_score
        if improved:
            self.best_score = score
        payload = self._payload(elapsed)
        save_checkpoint(self.out / LAST, payload)
        if improved:
            save_checkpoint(self.out / BEST, payload)
            log.info("new best score %.4f: %s", score, self.out / BEST)

    def _payload(self, elapsed: float) -> dict:
        return {
            "config": self.config.model_dump(mode="json"),
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "metrics": self.metrics,
            "best_score": self.best_score,
            "elapsed_s": elapsed,
            "rng": {"augment": self.augmenter.state_dict(), "sampler": self.sampler.bit_generator.state,
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "options": self.opts.model_dump(mode="json"),
        }


def train(options: TrainOptions) -> dict:
    """Run training with ``options``; returns the last validation metrics."""
    return Trainer(options).run()
