"""Structured pruning of a BNN's output channels, and the criteria that choose them.

* ``flip`` (Li & Ren): p_l = share of layer l's weights that flipped more
  than tau times during the pruning interval; remove round(p_l * C_l)
  channels, the most-flipping ones first (or, by ``rule``, the lowest
  latent magnitude).
* ``latent`` (baseline): p_l = share of layer l's latent weights with
  |w| < eps; eps is searched so the pruned net meets a binary-op budget.
* ``uniform`` (baseline): every prunable width times one factor, searched
  for the same budget.

Prunable layers: every thresholded layer (the fixed-point first layer, whose
consumer is binary, and the binary ones); the last layer's outputs are the
classes and stay. Surgery builds the narrower Arch and copies the surviving
weight rows, BN rows, and the consumer's input columns (for a dense consumer
of a spatial map: the CHW-flattened columns of the kept channels).
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch

from flipflow import kinds
from flipflow.errors import FlipflowError
from flipflow.training.blocks import BNN, Arch, arch_layers, images_to_input
from flipflow.training.flips import channel_flip_scores, insensitive_portion

CRITERIA = ("flip", "latent", "uniform")
RULES = ("flip", "latent")
# rules that need no flip tracking (flipflow sparse's width cuts); "activity" also needs images
CUT_RULES = ("latent", "activity")


class PruneError(FlipflowError, ValueError):
    """Pruning settings that do not fit the model or each other."""


def layer_shapes(arch: Arch) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """(input (H, W, C), output (H, W, C)) of every layer."""
    return [(tuple(l.in_shape), tuple(l.out_shape)) for l in arch_layers(arch)]


def binary_ops(arch: Arch) -> dict[int, int]:
    """Binary MACs (XNOR-popcount terms) per image of every binary layer."""
    return {i: l.macs for i, l in enumerate(arch_layers(arch)) if kinds.of(l).counts_binary_ops}


def prunable(arch: Arch) -> list[int]:
    return [i for i, s in enumerate(arch.layers) if kinds.get(s.kind).prunable]


def widths(arch: Arch) -> dict[int, int]:
    return {i: arch.layers[i].out_ch for i in prunable(arch)}


def with_widths(arch: Arch, new: dict[int, int]) -> Arch:
    out = copy.deepcopy(arch)
    for i, w in new.items():
        if not kinds.get(out.layers[i].kind).prunable:
            raise PruneError(f"{arch.name} layer {i} ({out.layers[i].kind}) cannot be pruned")
        out.layers[i].out_ch = int(w)
    return out


def round_width(width: float, original: int, multiple: int = 1) -> int:
    """Round to a multiple of the hardware's PE/SIMD factor, at least one multiple, at most the original."""
    w = max(1, int(round(width)))
    if multiple > 1:
        w = max(multiple, int(round(w / multiple)) * multiple)
    return min(w, original)


def widths_from_portions(arch: Arch, portions: dict[int, float], multiple: int = 1, max_share: float = 0.9) -> dict[int, int]:
    """C_l - round(p_l * C_l), with p_l capped at ``max_share``, rounded to ``multiple``."""
    out = {}
    for i, c in widths(arch).items():
        p = min(portions.get(i, 0.0), max_share)
        out[i] = round_width(c - round(p * c), c, multiple)
    return out


def latent_magnitudes(model: BNN) -> dict[int, np.ndarray]:
    return {i: model.blocks[i].op.weight.detach().abs().cpu().numpy() for i in prunable(model.arch)}


def channel_order(model: BNN, layer: int, rule: str, flip_counts: dict[int, np.ndarray] | None,
                  images: np.ndarray | None = None) -> np.ndarray:
    """Channels of ``layer`` from first-to-remove to last-to-remove. ``activity``: the channels
    whose output bit is the most constant over ``images`` first (|mean of the +-1 output|):
    a near-constant bit carries little information and its consumer's threshold absorbs it,
    where a latent magnitude says little about a channel that BatchNorm rescales."""
    if rule == "activity":
        if images is None:
            raise PruneError("rule 'activity' needs images", fix="give training images (N, H, W, C uint8)")
        with torch.no_grad():
            out = model.eval().forward_layers(images_to_input(images))[layer]
        return np.argsort(-out.mean(dim=(0, 2, 3)).abs().numpy(), kind="stable")
    if rule == "flip":
        if flip_counts is None:
            raise PruneError("rule 'flip' needs flip counts", fix="prune a checkpoint trained with flip tracking, or use --rule latent")
        score = channel_flip_scores(flip_counts[layer])
        return np.argsort(-score, kind="stable")
    if rule == "latent":
        w = model.blocks[layer].op.weight.detach().abs().cpu().numpy()
        return np.argsort(w.reshape(len(w), -1).mean(1), kind="stable")
    raise PruneError(f"unknown channel rule {rule!r}; choose one of {', '.join(dict.fromkeys(RULES + CUT_RULES))}")


def keep_sets(model: BNN, new_widths: dict[int, int], rule: str, flip_counts: dict[int, np.ndarray] | None,
              images: np.ndarray | None = None) -> dict[int, np.ndarray]:
    keep = {}
    for i, w in new_widths.items():
        order = channel_order(model, i, rule, flip_counts, images)
        keep[i] = np.sort(order[len(order) - w :])
    return keep


@torch.no_grad()
def surgery(model: BNN, keep: dict[int, np.ndarray]) -> BNN:
    """A narrower BNN holding ``model``'s weights for the kept output channels
    (``keep[i]``: sorted channel indices of prunable layer i; absent = all)."""
    arch = model.arch
    shapes = layer_shapes(arch)
    new = BNN(with_widths(arch, {i: len(k) for i, k in keep.items()}))
    state = {}
    in_keep: np.ndarray | None = None  # kept channels of the tensor feeding the current layer
    for i, spec in enumerate(arch.layers):
        block = model.blocks[i]
        if not hasattr(block, "op"):
            continue  # max-pool and global sum keep channels as they are
        rows = torch.as_tensor(keep.get(i, np.arange(spec.out_ch)), dtype=torch.long)
        w = block.op.weight.detach()[rows]
        if in_keep is not None:
            src_h, src_w, _ = shapes[i][0]
            if not kinds.get(spec.kind).spatial:  # torch flattens C, H, W: channel c owns columns c*H*W ...
                cols = (in_keep[:, None] * (src_h * src_w) + np.arange(src_h * src_w)).ravel()
            else:
                cols = in_keep
            w = w[:, torch.as_tensor(cols, dtype=torch.long)]
        state[f"blocks.{i}.op.weight"] = w.clone()
        if hasattr(block, "bn"):
            for name in ("weight", "bias", "running_mean", "running_var"):
                state[f"blocks.{i}.bn.{name}"] = getattr(block.bn, name).detach()[rows].clone()
            state[f"blocks.{i}.bn.num_batches_tracked"] = block.bn.num_batches_tracked.clone()
        in_keep = rows.numpy()
    new.load_state_dict(state)
    new.eval()
    return new


def _bisect(ops_at: Callable[[float], int], lo: float, hi: float, target: int, decreasing: bool, iters: int = 40) -> float:
    """The parameter in [lo, hi] whose ops are closest to ``target`` from below-or-equal."""
    best = None
    for _ in range(iters):
        mid = (lo + hi) / 2
        ops = ops_at(mid)
        if ops <= target:
            best = mid
            lo, hi = (lo, mid) if decreasing else (mid, hi)
        else:
            lo, hi = (mid, hi) if decreasing else (lo, mid)
    return best if best is not None else (hi if decreasing else lo)


def plan(model: BNN, criterion: str, *, flip_counts: dict[int, np.ndarray] | None = None, tau: int = 0,
         budget: int | None = None, multiple: int = 1, max_share: float = 0.9) -> tuple[dict[int, int], dict[int, float]]:
    """New widths and the per-layer portions p_l that produced them."""
    arch = model.arch
    total = lambda wd: sum(binary_ops(with_widths(arch, wd)).values())  # noqa: E731
    if criterion == "flip":
        if flip_counts is None:
            raise PruneError("the flip criterion needs flip counts", fix="prune a checkpoint trained with flip tracking (--flip-epochs >= 1)")
        portions = {i: p for i, p in insensitive_portion(flip_counts, tau).items() if i in widths(arch)}
        return widths_from_portions(arch, portions, multiple, max_share), portions
    if budget is None:
        raise PruneError(f"the {criterion} criterion needs a binary-op budget", fix="give --budget (e.g. the flip-pruned net's binary ops)")
    if criterion == "latent":
        mags = latent_magnitudes(model)

        def portions_at(eps: float) -> dict[int, float]:
            return {i: float((m < eps).mean()) for i, m in mags.items()}

        hi = max(float(m.max()) for m in mags.values())
        eps = _bisect(lambda e: total(widths_from_portions(arch, portions_at(e), multiple, max_share)), 0.0, hi, budget, decreasing=True)
        portions = portions_at(eps)
        return widths_from_portions(arch, portions, multiple, max_share), portions
    if criterion == "uniform":
        full = widths(arch)
        scaled = lambda f: {i: round_width(c * f, c, multiple) for i, c in full.items()}  # noqa: E731
        f = _bisect(lambda f: total(scaled(f)), 0.0, 1.0, budget, decreasing=False)
        return scaled(f), {i: 1.0 - f for i in full}
    raise PruneError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
