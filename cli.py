"""The one `flipflow` command. Each subpackage registers its own subcommands
(``register(subparsers)`` in its ``cli`` module), so this file stays small."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subpackages whose `cli` module adds subcommands, in --help order.
COMMAND_MODULES = ["flipflow.training.cli", "flipflow.generator.cli", "flipflow.sim.cli", "flipflow.host.cli"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flipflow",
        description="Pruned binary neural networks on FPGAs: train, prune, generate HLS/RTL, simulate, deploy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that subpackage has no commands yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("flipflow: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:  # our errors name the problem and the fix
        print(f"flipflow {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
