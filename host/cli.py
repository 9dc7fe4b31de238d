"""`flipflow deploy`: the folder and archive that go to the PYNQ-Z2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        help="gather bitstream (when built), driver, notebook, metadata, IR and test set for the PYNQ-Z2 into a folder and a .tar.gz",
    )
    p.add_argument("model", help="zoo name (e.g. nin_pruned) or IR file")
    p.add_argument("--out", type=Path, required=True, help="deploy folder (e.g. build/nin_pruned/deploy); the archive goes next to it")
    p.add_argument("--build", type=Path, default=None, help="build folder with accelerator.json and the .bit/.hwh (default: the parent of --out)")
    p.add_argument("--bitstream", type=Path, default=None, help="a .bit to ship (its .hwh must sit next to it); default: the newest under --build")
    p.add_argument("--test-images", type=int, default=None, help="ship only the first N test images (default: the whole test set)")
    p.add_argument("--data-dir", type=Path, default=None, help="dataset folder for mnist / cifar10")
    p.set_defaults(func=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    from flipflow.host.deploy import deploy

    result = deploy(args.model, args.out, build=args.build, bitstream=args.bitstream, test_images=args.test_images, data_dir=args.data_dir)
    print(json.dumps(result.summary(), indent=2))
    return 0
