"""`flipflow fold` (folding search in a device budget) and `flipflow bench`
(baseline vs pruned report). Registered through cli.COMMAND_MODULES."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flipflow import atomic
from flipflow.generator.cli import add_budget_args, budget_from_args
from flipflow.training.cli import _ints


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fold", help="choose PE/SIMD per layer: max frames/s in a device budget, or a target rate with the fewest resources")
    p.add_argument("model", help="zoo name (e.g. nin_pruned) or IR file")
    add_budget_args(p)
    p.add_argument("--target-fps", type=float, default=None, help="meet this frame rate with the fewest resources instead of maximising it")
    p.add_argument("--max-pe", type=int, default=None, help="cap PE per layer (e.g. a tool's unroll limit)")
    p.add_argument("--max-simd", type=int, default=None, help="cap SIMD per layer")
    p.add_argument("--out", type=Path, default=Path("folding.json"), help='folding JSON {layer: {"pe": P, "simd": S}} (default: folding.json)')
    p.add_argument("--report", type=Path, default=None, help="also write the plan (per-layer cycles, resources, bottleneck) as JSON")
    p.add_argument("--early-exit", action="store_true",
                   help="let XNOR layers take early exit, ranked by their expected (mean) cycles on training images")
    p.add_argument("--early-exit-images", type=int, default=64,
                   help="training images whose real layer inputs give the expected cycles (default 64; 512 vectors per layer)")
    p.set_defaults(func=_fold)

    b = sub.add_parser("bench", help="nin vs nin_pruned (same and best folding) and FINN's CNV-W1A1: report.{md,json,png}")
    b.add_argument("--out", type=Path, default=Path("build/bench"), help="output folder (default: build/bench)")
    b.add_argument("--models", nargs=2, default=["nin", "nin_pruned"], metavar=("BASELINE", "PRUNED"),
                   help="zoo names or IR files (default: nin nin_pruned)")
    add_budget_args(b)
    b.add_argument("--sim-frames", type=int, default=4, help="frames per RTL simulation (steady state from the second half)")
    b.add_argument("--sim-timeout", type=float, default=3600, help="seconds allowed per design: RTL simulation (compile + run), yosys resources and timing")
    b.add_argument("--no-sim", action="store_true", help="skip the RTL simulations (predicted cycles only)")
    b.add_argument("--no-cnv", action="store_true", help="leave out the CNV-W1A1 row")
    b.add_argument("--no-yosys", action="store_true", help="skip yosys resources and timing of the simulated designs")
    b.add_argument("--images", type=int, default=None, help="first N test images for accuracy (default: the full test set)")
    b.add_argument("--early-exit", action="store_true",
                   help="add a row: the pruned model at its best folding with early exit allowed per XNOR layer")
    b.add_argument("--variants", type=lambda v: tuple(m for m in v.split(",") if m), default=(),
                   help="more models at their best folding in the same budget, comma-separated (e.g. nin_planes4)")
    b.set_defaults(func=_bench)

    s = sub.add_parser("bitslice", help="8-bit-input vs bit-plane-input networks (CBNN) in one device budget: "
                                        "top-1, cycles, LUT, DSP side by side, report.{json,png}")
    s.add_argument("model", help="the 8-bit-input reference: zoo name (e.g. nin_pruned), IR file or prune run folder")
    s.add_argument("--planes-models", type=lambda v: [m for m in v.split(",") if m], default=["nin_planes4", "nin_pruned_planes4"],
                   help="bit-plane networks to compare, comma-separated zoo names, IR files or prune run folders "
                        "(default: nin_planes4,nin_pruned_planes4)")
    s.add_argument("--images", type=int, default=None, help="first N test images for top-1 (default: the full test set)")
    s.add_argument("--out", type=Path, default=None, help="output folder (default build/<model>-bitslice)")
    add_budget_args(s)
    s.set_defaults(func=_bitslice)

    m = sub.add_parser("margin-sweep", help="fine-tune with the early-exit margin regulariser at several weights: "
                                            "top-1 and skipped XNOR work side by side, report.{json,png}")
    m.add_argument("model", help="zoo name (e.g. nin_pruned), a checkpoint.pt, a prune run folder or a model.ir.npz "
                                 "with its checkpoint.pt beside it")
    m.add_argument("--weights", type=_floats, default=[0.0, 0.5, 1.0, 2.0],
                   help="regulariser weights, comma-separated; 0 is the control (default 0,0.5,1,2)")
    m.add_argument("--margin", type=float, default=0.2, help="margin as a share of each layer's fan-in K (default 0.2)")
    m.add_argument("--margin-first", action="store_true", help="also regularise the first (pixel) layer")
    m.add_argument("--train-subset", type=int, default=2048, help="fine-tune on a fixed random subset of N training images (default 2048)")
    m.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (default 1)")
    m.add_argument("--batch-size", type=int, default=32)
    m.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, constant (default 1e-3)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--dataset", default="fashion_mnist", help="the checkpoint's dataset (default fashion_mnist)")
    m.add_argument("--images", type=int, default=1000, help="first N test images for the early-exit analysis (default 1000)")
    m.add_argument("--folding", type=Path, default=None, help="folding JSON (default: the fastest folding in the budget)")
    m.add_argument("--out", type=Path, default=None, help="output folder (default build/<model>-margin)")
    add_budget_args(m)
    m.set_defaults(func=_margin_sweep)

    s = sub.add_parser("sparse", help="N:M sparse binary layers (SBNN): fine-tune a checkpoint at each setting, top-1, cycles "
                                      "and resources against sparsity beside the dense model, report.{json,png}")
    s.add_argument("model", help="zoo name (e.g. nin_pruned), a checkpoint.pt, or a prune run folder (its pruned net; "
                                 "top-1 the mean of its fine-tuning seeds)")
    s.add_argument("--reference", default=None,
                   help="the model the drop and speedup are taken against, in the same forms (default: the start model; "
                        "e.g. nin_pruned when the start is a bit-plane net)")
    s.add_argument("--nm", default="1:2,1:4,2:8,1:8", help="settings, comma-separated: N:M for every binary layer, LAYER=N:M for one (its IR name's number), "
                        "joined by + (e.g. 2:8,04=1:16+08=1:16,1:4+04=1:16); unnamed layers stay dense; LAYER=Cch first narrows "
                        "a layer to its C channels of largest |latent| (e.g. 04=2:32+00=168ch: the 8-bit first layer, which "
                        "no sparsity reaches), LAYER=Cch-activity drops its most constant output bits instead "
                        "(default 1:2,1:4,2:8,1:8)")
    s.add_argument("--zoo", type=Path, help="also write each setting's net (its first seed) and metrics.json to ZOO/<net name>")
    s.add_argument("--centred", action="store_true",
                   help="sparse layers compute with weights b - N/M instead of b (SBNN's {alpha, beta} domain; exact "
                        "integers; in hardware each input pixel's ones are counted once, a count unit per layer)")
    s.add_argument("--train-subset", type=int, default=16384, help="fine-tune on a fixed random subset of N training images (default 16384)")
    s.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (default 2)")
    s.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    s.add_argument("--lr-steps", type=_ints, default=[1], help="epochs after which lr *= 0.1 (default 1)")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per setting, --seed, --seed + 1, ... (default 3)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--distill", type=float, default=0.0,
                   help="share of the distillation loss from the dense start model in every fine-tuning, the control's "
                        "too (0..1; default 0: cross-entropy only)")
    s.add_argument("--distill-temperature", type=float, default=4.0, help="its softmax temperature (default 4)")
    s.add_argument("--dataset", default="fashion_mnist", help="the checkpoint's dataset (default fashion_mnist)")
    s.add_argument("--out", type=Path, default=None, help="output folder (default build/<model>-sparse)")
    add_budget_args(s)
    s.set_defaults(func=_sparse)


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


_WHERE = {"distributed": "LUT", "block": "BRAM"}  # weights_in, as the table says it


def plan_table(plan) -> str:
    from flipflow.generator.folding import RESOURCE_KEYS

    d = plan.to_dict()
    head = (f"{'layer':<22}{'PE':>5}{'SIMD':>6}{'weights':>8}{'cycles':>11}" + "".join(f"{k:>9}" for k in RESOURCE_KEYS)
            + f"{'path ns':>9}")
    lines = [head, "-" * len(head)]
    for l in d["layers"]:
        mark = "  <- bottleneck" if l["name"] == d["bottleneck"] else ""
        lines.append(f"{l['name']:<22}{l.get('pe', ''):>5}{l.get('simd', ''):>6}{_WHERE.get(l.get('weights_in'), ''):>8}{l['cycles']:>11,}"
                     + "".join(f"{l[k]:>9,.1f}" if k == "BRAM36" else f"{l[k]:>9,.0f}" for k in RESOURCE_KEYS)
                     + f"{l['path_ns_estimate']:>9.2f}" + mark)
    r = d["result_unit"]
    lines.append(f"{'result unit':<22}{'':>19}{r['cycles']:>11,}" + "".join(
        f"{r[k]:>9,.1f}" if k == "BRAM36" else f"{r[k]:>9,.0f}" for k in RESOURCE_KEYS))
    dev = d["device"]
    budget = {"LUT": dev["lut"], "FF": dev["ff"], "BRAM36": dev["bram36"], "DSP": dev["dsp"]}
    lines.append("-" * len(head))
    lines.append(f"{'total':<22}{'':>19}{d['cycles_per_frame']:>11,}" + "".join(
        f"{d['totals'][k]:>9,.1f}" if k == "BRAM36" else f"{d['totals'][k]:>9,.0f}" for k in RESOURCE_KEYS))
    lines.append(f"{'budget ' + dev['name']:<22}{'':>30}" + "".join(f"{budget[k]:>9,g}" for k in RESOURCE_KEYS))
    lines.append(f"{d['fps']:,.0f} frames/s at {dev['mhz']:g} MHz; bottleneck {d['bottleneck']}; {d['objective']}"
                 + ("" if d["optimal"] else " (search fronts were thinned: near-optimal)"))
    if d["next_step"]:
        lines.append(f"faster: {d['next_step']}")
    lines.append(f"clock {d['clock_ns']:g} ns: " + ("every layer's estimated path fits" if d["meets_clock"] else
                 "some layer's estimated path does NOT fit") + f" ({d['timing_note']})")
    return "\n".join(lines)


def _fold(args: argparse.Namespace) -> int:
    from flipflow import ir
    from flipflow.generator import folding

    net = ir.load_model(args.model)
    budget = budget_from_args(args)
    expected = None
    if args.early_exit:
        from flipflow.generator import earlyexit
        from flipflow.training import datasets

        expected = earlyexit.ExpectedCycles(net, datasets.load(net.dataset).train.head(args.early_exit_images).images)
    plan = folding.optimize(net, budget.as_device(), target_fps=args.target_fps, max_pe=args.max_pe, max_simd=args.max_simd,
                            expected=expected)
    print(plan_table(plan))
    report = plan.to_dict()
    if expected is not None:
        exits = {n for n, f in plan.folding.items() if f.early_exit}
        cycles = {n: expected.mvu_cycles(net.layer(n), plan.folding[n]) if n in exits else c
                  for n, c in plan.layer_cycles.items()}
        mean = max(*cycles.values(), plan.result_cycles)
        report["early_exit"] = {"layers": sorted(exits),
                                "expected_cycles_per_frame": mean, "expected_layer_cycles": cycles,
                                "note": "cycles above are without a decision (worst case); expected = mean over sampled "
                                        "vectors of the early-exit units (what FIFOs would average to)"}
        print(f"early exit in {', '.join(report['early_exit']['layers']) or 'no layer'}: expected (mean) {mean:,} "
              f"cycles per frame, {plan.device['mhz'] * 1e6 / mean:,.0f} frames/s")
    atomic.make_dir(args.out.parent)
    folding.save(plan.folding, args.out)
    if args.report:
        atomic.write_text(args.report, json.dumps(report, indent=1))
    print(f"flipflow fold: wrote {args.out}", file=sys.stderr)
    return 0


def _bitslice(args: argparse.Namespace) -> int:
    from flipflow.sim import bitslice

    out = args.out or bitslice.default_out(args.model)
    report = bitslice.run(args.model, args.planes_models, out, budget_from_args(args), args.images)
    print(bitslice.table(report))
    print(f"flipflow bitslice: wrote {out}/report.json and report.png", file=sys.stderr)
    return 0


def _margin_sweep(args: argparse.Namespace) -> int:
    import shlex

    from flipflow.generator import folding as folding_mod
    from flipflow.sim import margin_sweep
    from flipflow.training import checkpoint, reports
    from flipflow.training.export import export

    # the folding is the start's: fine-tuning keeps every width
    source = reports.model_source(args.model)
    net = export(checkpoint.load(source.checkpoint_file)[0], source.label, args.dataset)
    folding = folding_mod.load(args.folding) if args.folding else folding_mod.default(net, budget_from_args(args))
    schedule = margin_sweep.Schedule(train_subset=args.train_subset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                     margin=args.margin, margin_first=args.margin_first, seed=args.seed)
    out = args.out or margin_sweep.default_out(args.model)
    command = "flipflow " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = margin_sweep.run(args.model, args.weights, schedule, out, args.images, margin_sweep.foldings(net, folding),
                              args.dataset, command)
    print(margin_sweep.table(report))
    print(f"flipflow margin-sweep: wrote {out}/report.json, report.png ({report['wall_s']:.0f} s)", file=sys.stderr)
    return 0


def _sparse(args: argparse.Namespace) -> int:
    import shlex

    from flipflow.sim import sparse_sweep

    settings = sparse_sweep.parse_nm(args.nm, args.centred)
    schedule = sparse_sweep.Schedule(train_subset=args.train_subset, epochs=args.epochs, lr=args.lr, lr_steps=args.lr_steps,
                                     batch_size=args.batch_size, seeds=args.seeds, seed=args.seed, distill=args.distill,
                                     temperature=args.distill_temperature)
    out = args.out or sparse_sweep.default_out(args.model)
    command = "flipflow " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = sparse_sweep.run(args.model, settings, schedule, out, budget_from_args(args), args.dataset, command, args.reference,
                              args.zoo)
    print(sparse_sweep.table(report))
    print(f"flipflow sparse: wrote {out}/report.json, report.png ({report['wall_s']:.0f} s)", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from flipflow.sim import bench

    bench.run(args.out, tuple(args.models), budget_from_args(args), sim_frames=args.sim_frames, sim_timeout=args.sim_timeout,
              with_cnv=not args.no_cnv, images=args.images, simulate_rtl=not args.no_sim,
              synthesize=not args.no_yosys, early_exit=args.early_exit, variants=args.variants)
    print((args.out / "report.md").read_text())
    print(f"flipflow bench: wrote {args.out}/report.md, report.json, report.png", file=sys.stderr)
    return 0
