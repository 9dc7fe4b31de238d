"""The one `flipflow` command. Each subpackage registers its own subcommands
(``register(subparsers)`` in its ``cli`` module), so this file stays small."""

from __future__ import annotations

import argparse
import importlib
import sys

from flipflow.errors import FlipflowError

# Subpackages whose `cli` module adds subcommands, in --help order.
COMMAND_MODULES = [
    "flipflow.training.cli",
    "flipflow.interop.cli",
    "flipflow.generator.cli",
    "flipflow.sim.bench_cli",
    "flipflow.sim.cli",
    "flipflow.host.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flipflow",
        description="Pruned binary neural networks on FPGAs: train, prune, generate HLS/RTL, simulate, deploy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    info = sub.add_parser("info", help="show a model's layers, shapes and binary operations")
    info.add_argument("model", help="zoo name (e.g. nin_pruned) or IR file")
    info.set_defaults(func=_info)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that subpackage has no commands yet
                continue
            raise
        module.register(sub)
    return parser


def _layer_options(l) -> list[str]:
    """A layer's per-kind options for `flipflow info`: its bit planes, N:M and centred domain."""
    options = [f"planes {','.join(map(str, l.planes))}"] if l.planes else []
    options += [f"{l.nm[0]}:{l.nm[1]}"] if l.nm else []
    return options + (["centred"] if l.centred else [])


def _info(args: argparse.Namespace) -> int:
    from flipflow import ir

    net = ir.load_model(args.model)
    print(f"{net.name}: {net.dataset}, input {net.input_shape} (H, W, C), {len(net.classes)} classes")
    print(f"{'layer':<18}{'kind':<14}{'in':>14}{'out':>14}{'k/s/p':>8}{'K':>7}{'MACs':>12}  options")
    for l in net.layers:
        ksp = f"{l.kernel}/{l.stride}/{l.pad}"
        options = " ".join(_layer_options(l))
        print(f"{l.name:<18}{l.kind:<14}{str(l.in_shape):>14}{str(l.out_shape):>14}{ksp:>8}{l.fan_in if l.has_weights else '':>7}"
              f"{l.macs:>12,}  {options}".rstrip())
    print(f"binary operations per image: {net.binary_ops:,}")
    for key, value in {**net.provenance, **net.metrics}.items():
        if key != "arch":
            print(f"{key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("flipflow: interrupted", file=sys.stderr)
        return 130
    except FlipflowError as e:  # the user can fix it: one line; anything else is a bug and keeps its traceback
        print(f"flipflow {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
