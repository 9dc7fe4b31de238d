"""Bit-plane sensitivity of a bit-plane input network (CBNN; docs/DESIGN.md, "Bit-plane input").

A plane is insensitive when replacing it by random bits barely moves test accuracy: the
network has learnt to ignore it, so it can be dropped and the first layer narrowed.
Each measurement replaces bit b of every pixel channel (the same bit across colour
channels) with random bits and runs the golden model on the real test images; the
single-plane row says which planes matter, the growing rows (all planes below b
random) say how many low-order planes can go together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flipflow import atomic, golden, kinds
from flipflow.errors import UsageError
from flipflow.ir import Network


def randomised(images: np.ndarray, planes: list[int], rng: np.random.Generator) -> np.ndarray:
    """``images`` with bit b of every pixel channel replaced by a random bit, for b in ``planes``."""
    out = images.copy()
    for b in planes:
        noise = rng.integers(0, 2, images.shape, dtype=np.uint8)
        out = (out & np.uint8(~(1 << b) & 0xFF)) | (noise << b).astype(np.uint8)
    return out


def sensitivity(net: Network, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Top-1 with each read plane randomised alone, and with the lowest 1, 2, ... read planes
    randomised together (same random bits in every row: one generator seed per row)."""
    first = net.layers[0]
    if not kinds.of(first).bit_planes:
        raise UsageError(f"{net.name} reads 8-bit pixels, not bit planes",
                         fix="train a bit-plane network first: flipflow train nin --planes 7,6,5,4,3,2,1,0")
    planes = list(first.planes)
    base = golden.accuracy(net, images, labels)
    single = {b: golden.accuracy(net, randomised(images, [b], np.random.default_rng(seed + b)), labels) for b in planes}
    low_first = sorted(planes)
    growing = [{"randomised": low_first[: j + 1],
                "accuracy": golden.accuracy(net, randomised(images, low_first[: j + 1], np.random.default_rng(seed + 100 + j)), labels)}
               for j in range(len(planes) - 1)]
    return {"model": net.name, "images": int(len(images)), "planes": planes, "accuracy": base,
            "single": [{"plane": b, "accuracy": single[b], "drop_pt": 100 * (base - single[b])} for b in planes],
            "growing": [{**g, "drop_pt": 100 * (base - g["accuracy"])} for g in growing]}


def choose(report: dict[str, Any], keep: int) -> tuple[int, ...]:
    """The ``keep`` planes whose randomisation costs the most accuracy, most significant first."""
    if not 1 <= keep <= len(report["planes"]):
        raise UsageError(f"--keep {keep}: the network reads {len(report['planes'])} planes", fix="keep between 1 and that many")
    ranked = sorted(report["single"], key=lambda r: (-r["drop_pt"], -r["plane"]))
    return tuple(sorted((r["plane"] for r in ranked[:keep]), reverse=True))


def plot(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    single = report["single"]
    a.bar([str(r["plane"]) for r in single], [r["drop_pt"] for r in single], color="tab:blue")
    a.set_xlabel("pixel bit randomised (7 = most significant)")
    a.set_ylabel("top-1 drop (points)")
    a.set_title("one plane at a time")
    grow = report["growing"]
    b.plot([len(g["randomised"]) for g in grow], [g["drop_pt"] for g in grow], "o-", color="tab:red")
    b.set_xlabel("lowest planes randomised together")
    b.set_ylabel("top-1 drop (points)")
    b.set_title("growing sets of low-order planes")
    for ax in (a, b):
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{report['model']}: bit-plane sensitivity on {report['images']:,} test images "
                 f"(top-1 {100 * report['accuracy']:.2f}%)")
    fig.tight_layout()
    return atomic.save_figure(fig, path)


def write(report: dict[str, Any], out_dir: Path) -> None:
    out_dir = atomic.make_dir(out_dir)
    atomic.write_json(out_dir / "sensitivity.json", report, indent=1)
    plot(report, out_dir / "sensitivity.png")
