"""`flipflow golden`: evaluate and benchmark the golden model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flipflow import ir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("golden", help="run the golden model on a dataset's test set (accuracy; --bench compares speed with Brevitas)")
    p.add_argument("model", help="zoo name (e.g. nin_pruned) or IR file")
    p.add_argument("--images", type=int, default=None, help="first N test images (default: all)")
    p.add_argument("--bench", action="store_true", help="also time the Brevitas eval forward of the model's checkpoint, side by side")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint for --bench (default: the zoo model's checkpoint.pt)")
    p.add_argument("--report", type=Path, default=None, help="write the result as JSON here")
    p.set_defaults(func=_golden)

    from flipflow.sim import rtl_cli  # `flipflow sim` (RTL simulation) lives in its own module

    rtl_cli.register(sub)


def _golden(args: argparse.Namespace) -> int:
    from flipflow import golden
    from flipflow.sim import golden_bench
    from flipflow.training import datasets

    path = ir.resolve(args.model)
    net = ir.load(path)
    test = datasets.load(net.dataset).test.head(args.images)
    if args.bench:
        from flipflow.training import checkpoint

        model, _ = checkpoint.load(args.checkpoint or path.parent / "checkpoint.pt")
        result = golden_bench.run(model, net, test.images, test.labels)
    else:
        result = {"model": net.name, "images": len(test), "accuracy": golden.accuracy(net, test.images, test.labels)}
    print(json.dumps(result, indent=2))
    if args.report:
        golden_bench.write_report(result, args.report)
    return 0
