"""`flipflow hls`: render the Vitis HLS project of a model and verify it by C simulation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hls", help="generate the Vitis HLS project, C-simulate it against the golden model, write report.json")
    p.add_argument("model", help="zoo name (e.g. nin_pruned) or IR file")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: build/<model>)")
    p.add_argument("--folding", type=Path, default=None,
                   help='folding JSON {layer: {"pe": P, "simd": S}} (default: every layer as fast as the input stream, generator/folding.py default)')
    p.add_argument("--images", type=int, default=100, help="test images for the C simulation (default: 100)")
    p.add_argument("--vitis", action="store_true", help="also run vitis_hls (csim, csynth, IP export); it must be on PATH")
    p.set_defaults(func=_hls)


def _hls(args: argparse.Namespace) -> int:
    from flipflow.generator import hls

    out = args.out or Path("build") / Path(str(args.model)).stem.replace(".ir", "")
    data = hls.build(args.model, out, args.folding, args.images, run_vitis=args.vitis)
    summary = {k: data[k] for k in ("model", "accuracy", "cycles_per_frame_estimate", "fps_at_100mhz_estimate",
                                    "csim", "vitis_hls")}
    print(json.dumps(summary, indent=2))
    print(f"flipflow hls: wrote {out}/report.json, {out}/hls/", file=sys.stderr)
    return 1 if data["csim"]["mismatches"] else 0
