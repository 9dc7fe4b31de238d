"""`flipflow hls`: render the Vitis HLS project of a model and verify it by C simulation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_budget_args(p: argparse.ArgumentParser) -> None:
    """The device budget options shared by `flipflow hls`, `fold` and `bench`."""
    from flipflow.generator import devices

    g = p.add_argument_group("device budget (default: 85%% of the PYNQ-Z2 less its DMA shell and the cost model's reserve)")
    g.add_argument("--device", default=devices.DEFAULT_DEVICE, help=f"by name: {', '.join(devices.DEVICES)}")
    g.add_argument("--ceiling", type=float, default=devices.CEILING,
                   help="share of the device that design plus shell may use, the rest left for routing (default 0.85)")
    g.add_argument("--shell", default="pynq-dma", choices=sorted(devices.SHELLS), help="board shell to reserve")
    g.add_argument("--shell-lut", type=int, default=None, help="the shell's LUTs (e.g. from your Vivado utilisation report)")
    g.add_argument("--shell-ff", type=int, default=None, help="the shell's FFs")
    g.add_argument("--shell-bram", type=float, default=None, help="the shell's BRAM36")
    g.add_argument("--no-model-reserve", action="store_true",
                   help=f"do not keep {devices.MODEL_RESERVE.lut:,.0f} LUT / {devices.MODEL_RESERVE.ff:,.0f} FF for the cost model's error")
    g.add_argument("--lut", type=int, default=None, help="override the device's LUTs")
    g.add_argument("--ff", type=int, default=None, help="override the device's FFs")
    g.add_argument("--bram", type=float, default=None, help="override the device's BRAM36 (RAMB18 = 0.5)")
    g.add_argument("--dsp", type=int, default=None, help="override the device's DSPs")
    g.add_argument("--mhz", type=float, default=None, help="clock for frames/s (default: the device's, 100 MHz)")


def budget_from_args(args: argparse.Namespace):
    from flipflow.generator import devices

    device = devices.custom(args.device, lut=args.lut, ff=args.ff, bram36=args.bram, dsp=args.dsp, mhz=args.mhz)
    return devices.budget(device, args.ceiling, args.shell, args.shell_lut, args.shell_ff, args.shell_bram,
                          model_reserve=not args.no_model_reserve)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hls", help="generate the Vitis HLS project, C-simulate it against the golden model, write report.json")
    p.add_argument("model", help="zoo name (e.g. nin_pruned) or IR file")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: build/<model>)")
    p.add_argument("--folding", type=Path, default=None,
                   help='folding JSON {layer: {"pe": P, "simd": S}}, refused when over the budget (default: the fastest folding in the budget)')
    p.add_argument("--images", type=int, default=100, help="test images for the C simulation (default: 100)")
    p.add_argument("--vitis", action="store_true", help="also run vitis_hls (csim, csynth, IP export); it must be on PATH")
    add_budget_args(p)
    p.set_defaults(func=_hls)
    register_earlyexit(sub)


def _count(text: str) -> int:
    """A whole number >= 0 (argparse type)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return n


def register_earlyexit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("earlyexit", help="how much popcount work an early-deciding neuron (O3BNN-R) would skip: table, earlyexit.{json,png}")
    p.add_argument("model", help="zoo name (e.g. nin_pruned) or IR file")
    p.add_argument("--folding", type=Path, default=None,
                   help='folding JSON {layer: {"pe": P, "simd": S}} (default: the fastest folding in the budget)')
    p.add_argument("--images", type=int, default=1000, help="first N test images (default: 1000)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: build/<model>/earlyexit)")
    p.add_argument("--bound", type=_count, default=0, metavar="N",
                   help="also price the ideal early-exit unit (per-term, per-neuron decisions at no cost, max-pool "
                        "skipping) on the first N test images: the most any unit could skip and gain, bound.{json,png}")
    add_budget_args(p)
    p.set_defaults(func=_earlyexit)


def _earlyexit(args: argparse.Namespace) -> int:
    import time

    from flipflow import atomic, ir
    from flipflow.generator import earlyexit
    from flipflow.generator import folding as folding_mod
    from flipflow.training import datasets

    net = ir.load_model(args.model)
    folding = folding_mod.load(args.folding) if args.folding else folding_mod.default(net, budget_from_args(args))
    earlyexit.check_folding(net, folding)
    images = datasets.load(net.dataset).test.head(args.images).images
    out = atomic.make_dir(args.out or Path("build") / Path(str(args.model)).stem.replace(".ir", "") / "earlyexit")
    start = time.perf_counter()
    analysis = earlyexit.analyse(net, folding, images, progress=True)
    report = earlyexit.summary(analysis)
    report.update(folding_source=str(args.folding) if args.folding else "default: fastest in the budget",
                  seconds=round(time.perf_counter() - start, 1))
    print(earlyexit.table(report))
    atomic.write_json(out / "earlyexit.json", report, indent=1)
    earlyexit.plot(analysis, report, out / "earlyexit.png")
    print(f"flipflow earlyexit: {report['images']} images in {report['seconds']:.0f} s; wrote {out}/earlyexit.json, earlyexit.png",
          file=sys.stderr)
    if args.bound > 0:
        from flipflow.generator import exit_bound

        start = time.perf_counter()
        print(f"early-exit bound on {args.bound} images ...", file=sys.stderr)
        bound = exit_bound.bound(net, datasets.load(net.dataset).test.head(args.bound).images, budget_from_args(args))
        bound["seconds"] = round(time.perf_counter() - start, 1)
        print(exit_bound.table(bound))
        atomic.write_json(out / "bound.json", bound, indent=1)
        exit_bound.plot(bound, out / "bound.png")
        print(f"flipflow earlyexit: bound in {bound['seconds']:.0f} s; wrote {out}/bound.json, bound.png", file=sys.stderr)
    return 0


def _hls(args: argparse.Namespace) -> int:
    from flipflow.generator import hls

    out = args.out or Path("build") / Path(str(args.model)).stem.replace(".ir", "")
    data = hls.build(args.model, out, args.folding, args.images, run_vitis=args.vitis, budget=budget_from_args(args))
    summary = {k: data[k] for k in ("model", "accuracy", "cycles_per_frame_estimate", "fps_at_100mhz_estimate",
                                    "resources", "fits", "utilisation_after_shell", "csim", "vitis_hls")}
    print(json.dumps(summary, indent=2))
    print(f"flipflow hls: wrote {out}/report.json, {out}/hls/", file=sys.stderr)
    return 1 if data["csim"]["mismatches"] else 0
