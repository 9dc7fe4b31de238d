"""Training loop: Adam with a step learning-rate schedule, an atomic
checkpoint after every epoch (``resume`` loses at most the epoch in flight),
a JSON log per epoch, and flip tracking over the last ``flip_epochs`` epochs.
With ``margin_weight`` > 0 the loss adds the early-exit margin regulariser
(training/margin.py) to the cross-entropy. With ``distill_weight`` > 0 and a
teacher (a trained model, e.g. the dense net a sparse one was made from) the
cross-entropy is mixed with the distillation loss: the KL divergence from the
teacher's class probabilities at ``distill_temperature`` (Hinton et al.),
times T^2 so its gradients keep their size as T grows.

Determinism: epoch e's batch order and augmentation come from a generator
seeded with (seed, e), so a resumed run sees the same batches it would have.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from flipflow import atomic, kinds
from flipflow.errors import FlipflowError
from flipflow.training import checkpoint, margin
from flipflow.training.blocks import BNN, images_to_input
from flipflow.training.datasets import Split, augment
from flipflow.training.flips import FlipTracker, tracked_layers

CHECKPOINT = "checkpoint.pt"
LOG = "log.json"


class TrainingError(FlipflowError, ValueError):
    """A training configuration or run folder that training cannot use."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_steps: list[int] = field(default_factory=list)  # epochs after which lr *= lr_gamma
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    augment: bool = False
    flip_epochs: int = 1  # the pruning interval: the last K epochs
    flip_sample: str = "step"  # "step" (after every optimizer step) or "epoch"
    eval_images: int | None = None  # test images evaluated after each epoch (None: all)
    margin_weight: float = 0.0  # weight of the early-exit margin loss (0: off)
    margin: float = 0.2  # its margin, a share of each layer's pre-activation range (|P - T| / K)
    margin_first: bool = False  # also regularise the first (pixel) layer
    distill_weight: float = 0.0  # share of the distillation loss in the loss (0: off; needs a teacher)
    distill_temperature: float = 4.0  # softmax temperature of teacher and student in that loss
    seed: int = 0
    device: str = "cpu"

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise TrainingError(f"epochs, batch size and learning rate must be positive (got {self.epochs}, {self.batch_size}, {self.lr})")
        if self.flip_sample not in ("step", "epoch"):
            raise TrainingError(f"flip_sample must be 'step' or 'epoch', got {self.flip_sample!r}")
        if not 0 <= self.flip_epochs <= self.epochs:
            raise TrainingError(f"flip_epochs ({self.flip_epochs}) must lie in 0..epochs ({self.epochs})")
        if self.margin_weight < 0 or not 0 < self.margin <= 1:
            raise TrainingError(f"the margin weight must be >= 0 and the margin in (0, 1] (got {self.margin_weight}, {self.margin})")
        if not 0 <= self.distill_weight <= 1 or self.distill_temperature <= 0:
            raise TrainingError(f"the distillation weight must lie in [0, 1] and its temperature be positive "
                                f"(got {self.distill_weight}, {self.distill_temperature})")

    def same_as(self, saved: dict[str, Any]) -> bool:
        """Whether a checkpoint's stored configuration is this one; options added since it
        was written take their defaults (a run from before the margin loss had it off)."""
        return {**asdict(TrainConfig()), **saved} == asdict(self)


def score_positions(model: BNN) -> int:
    """How many positions the final global sum adds (1 for dense heads): the
    loss divides logits by it, i.e. trains with average pooling as NIN does,
    while the integer scores (and their argmax) stay those of the sum."""
    if kinds.get(model.arch.layers[-1].kind).role != "reduce":
        return 1
    h, w, c = model.arch.input_shape
    was_training = model.training
    model.eval()
    with torch.no_grad():
        dev = next(model.parameters()).device
        outs = model.forward_layers(torch.zeros(1, c, h, w, device=dev))
    model.train(was_training)
    return int(outs[-2].shape[2] * outs[-2].shape[3])


@torch.no_grad()
def integer_scores(model: BNN, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """The exported network's integer class scores, computed by Brevitas."""
    model.eval()
    dev = next(model.parameters()).device
    scale = model.output_scale()
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.array(images[i : i + batch])).permute(0, 3, 1, 2).to(dev)
        out.append(torch.round(model(images_to_input(x)) / scale).to(torch.int64).cpu().numpy())
    return np.concatenate(out)


def accuracy(model: BNN, split: Split) -> float:
    """Top-1 from integer scores, lowest index wins ties (as the golden model)."""
    return float((np.argmax(integer_scores(model, split.images), axis=1) == split.labels).mean())


def clip_latent(model: BNN) -> None:
    """BinaryConnect: keep binary layers' latent weights in [-1, 1] so a sign can flip back."""
    with torch.no_grad():
        for block in tracked_layers(model).values():
            if kinds.get(block.kind).binary_weights:
                block.op.weight.clamp_(-1.0, 1.0)


def _lr_at(cfg: TrainConfig, epoch: int) -> float:
    return cfg.lr * cfg.lr_gamma ** sum(epoch >= s for s in cfg.lr_steps)


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 KL(teacher || student) of the class probabilities at temperature T, batch mean."""
    t = temperature
    return torch.nn.functional.kl_div(torch.log_softmax(logits / t, 1), torch.log_softmax(teacher_logits / t, 1),
                                      reduction="batchmean", log_target=True) * t * t


def train(model: BNN, cfg: TrainConfig, train_split: Split, test_split: Split, out_dir: Path,
          resume: bool = False, extra: dict | None = None, desc: str = "train", teacher: BNN | None = None) -> dict[str, Any]:
    """Train ``model`` in place; returns the final checkpoint payload's summary.

    ``out_dir`` gets checkpoint.pt (model, optimizer, epoch, flip counts,
    log; rewritten atomically after every epoch) and log.json. ``teacher`` (kept in
    eval mode, not trained) is needed when ``cfg.distill_weight`` > 0."""
    cfg.check()
    if cfg.distill_weight > 0 and teacher is None:
        raise TrainingError(f"distillation weight {cfg.distill_weight} without a teacher model",
                            fix="pass the teacher (e.g. the dense model) or set the distillation weight to 0")
    if teacher is model:
        raise TrainingError("the teacher is the model being trained", fix="distil from a copy of it")
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT
    device = torch.device(cfg.device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    tracker = FlipTracker(model)
    log: list[dict[str, Any]] = []
    start_epoch = 0
    if resume and ckpt_path.exists():
        saved, payload = checkpoint.load(ckpt_path)
        if not cfg.same_as(payload.get("train_config", {})):
            raise TrainingError(f"{ckpt_path} was written with a different training configuration",
                                fix="use another --out or drop --resume to start over")
        model.load_state_dict(saved.state_dict())
        if "optimizer" in payload:  # finished runs may be stored without it (zoo, transfers)
            opt.load_state_dict(payload["optimizer"])
        elif payload["epoch"] < cfg.epochs:
            raise TrainingError(f"{ckpt_path} holds no optimizer state, so it cannot be resumed", fix="start a new run")
        tracker.load_state_dict(payload["flips"])
        log, start_epoch = payload["log"], payload["epoch"]
        print(f"{desc}: resuming {ckpt_path} after epoch {start_epoch}", file=sys.stderr)
    positions = score_positions(model)
    if cfg.distill_weight > 0:
        teacher = teacher.to(device).eval()
        teacher_positions = score_positions(teacher)
    loss_fn = torch.nn.CrossEntropyLoss()
    eval_split = test_split.head(cfg.eval_images)
    x_all = torch.from_numpy(np.array(train_split.images)).permute(0, 3, 1, 2)
    y_all = torch.from_numpy(train_split.labels)
    steps = math.ceil(len(train_split) / cfg.batch_size)
    regularising = margin.attached(model, cfg.margin, cfg.margin_first) if cfg.margin_weight > 0 else contextlib.nullcontext()
    with regularising as regulariser:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, epoch)
            tracking = epoch >= cfg.epochs - cfg.flip_epochs
            if tracking and not tracker.active:
                tracker.start()
            overhead0 = tracker.overhead_s
            gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
            order = torch.randperm(len(train_split), generator=gen)
            model.train()
            total_loss, margin_total, distill_total, correct = 0.0, 0.0, 0.0, 0
            bar = tqdm(range(steps), desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}", file=sys.stderr, leave=False,
                       dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30.0)
            for step in bar:
                idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                x = x_all[idx]
                if cfg.augment:
                    x = augment(x, gen)
                x, y = images_to_input(x.to(device)), y_all[idx].to(device)
                logits = model(x)
                loss = loss_fn(logits / positions, y)
                if cfg.distill_weight > 0:
                    with torch.no_grad():
                        teacher_logits = teacher(x) / teacher_positions
                    w = cfg.distill_weight
                    distill_loss = distillation_loss(logits / positions, teacher_logits, cfg.distill_temperature)
                    loss = (1 - w) * loss + w * distill_loss
                    distill_total += distill_loss.item() * len(idx)
                if regulariser is not None:
                    margin_loss = regulariser()
                    loss = loss + cfg.margin_weight * margin_loss
                    margin_total += margin_loss.item() * len(idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                clip_latent(model)
                if tracking and cfg.flip_sample == "step":
                    tracker.sample()
                total_loss += loss.item() * len(idx)
                correct += int((logits.argmax(1) == y).sum())
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if tracking and cfg.flip_sample == "epoch":
                tracker.sample()
            train_s = time.perf_counter() - t0
            record = {
                "epoch": epoch + 1,
                "lr": _lr_at(cfg, epoch),
                "train_loss": total_loss / len(train_split),
                "train_accuracy": correct / len(train_split),
                "test_accuracy": accuracy(model, eval_split),
                "test_images": len(eval_split),
                "train_s": train_s,
                "flip_tracking": tracking,
                "flip_overhead_s": tracker.overhead_s - overhead0,
                "flip_overhead_share": (tracker.overhead_s - overhead0) / train_s,
                **({"margin_loss": margin_total / len(train_split)} if regulariser is not None else {}),
                **({"distill_loss": distill_total / len(train_split)} if cfg.distill_weight > 0 else {}),
            }
            log.append(record)
            checkpoint.save(ckpt_path, model.cpu(), optimizer=opt.state_dict(), flips=tracker.state_dict(), epoch=epoch + 1,
                            log=log, train_config=asdict(cfg), **(extra or {}))
            model.to(device)
            atomic.write_json(out_dir / LOG, log)
            print(f"{desc} epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.4f} "
                  f"test acc {record['test_accuracy']:.4f} ({record['train_s']:.1f} s, flips {record['flip_overhead_share']:.2%})",
                  file=sys.stderr)
    model.cpu().eval()
    if teacher is not None:
        teacher.cpu()
    return {"log": log, "flips": tracker}


def load_flip_counts(payload: dict) -> dict[int, np.ndarray]:
    """Flip counts stored in a training checkpoint, per tracked block index."""
    flips = payload.get("flips")
    if not flips or not flips.get("counts"):
        raise TrainingError("the checkpoint holds no flip counts", fix="train with --flip-epochs >= 1")
    return {int(i): t.numpy().astype(np.int32) for i, t in flips["counts"].items()}
