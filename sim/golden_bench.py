"""Speed of the golden model against the Brevitas model's own eval forward,
measured side by side in one run on the same images."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from flipflow import atomic
from flipflow import golden


def _timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def run(model, net, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> dict:
    """Return images/s of both and whether their integer scores agree."""
    import torch

    from flipflow.training.blocks import images_to_input


    def brevitas_scores(imgs: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(imgs), batch):
                x = images_to_input(imgs[i : i + batch])
                out.append(model(x).numpy())
        return np.concatenate(out) / model.output_scale()

    model.eval()
    brevitas_scores(images[:8])  # warm-up both paths
    golden.scores(net, images[:8])
    t_golden, g = _timed(golden.scores, net, images)
    t_brevitas, b = _timed(brevitas_scores, images)
    return {
        "model": net.name,
        "images": int(len(images)),
        "golden_images_per_s": len(images) / t_golden,
        "brevitas_images_per_s": len(images) / t_brevitas,
        "speedup": t_brevitas / t_golden,
        "scores_identical": bool(np.array_equal(g, b)),
        "golden_accuracy": float((golden.argmax(g) == labels).mean()),
        "torch_threads": torch.get_num_threads(),
    }


def write_report(result: dict, path: Path) -> None:
    atomic.write_json(path, result)
