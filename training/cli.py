"""`flipflow train`, `flipflow prune` and `flipflow table`."""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from flipflow import atomic
from flipflow.errors import UsageError

DEFAULT_OUT = Path("build")


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _schedule_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and schedule")
    g.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist (default), digits, mnist, cifar10")
    g.add_argument("--data-dir", type=Path, default=None, help="folder with the dataset's standard files (mnist, cifar10)")
    g.add_argument("--train-subset", type=int, default=None, help="train on a fixed random subset of N images (default: all)")
    g.add_argument("--epochs", type=int, default=10)
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    g.add_argument("--lr-steps", type=_ints, default=None, help="epochs after which lr *= --lr-gamma (default: at 50%% and 75%%)")
    g.add_argument("--lr-gamma", type=float, default=0.1)
    g.add_argument("--augment", action="store_true", help="random +-2 px shifts and horizontal flips")
    g.add_argument("--flip-epochs", type=int, default=1, help="pruning interval: track flips over the last K epochs")
    g.add_argument("--flip-sample", choices=("step", "epoch"), default="step", help="sample signs after every optimizer step or every epoch")
    g.add_argument("--eval-images", type=int, default=None, help="test images evaluated after each epoch (default all)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    _margin_args(p)


def _margin_args(p: argparse.ArgumentParser) -> None:
    """The early-exit regulariser's options (training/margin.py), for every training of the run."""
    g = p.add_argument_group("early-exit margin regulariser (docs/DESIGN.md, \"Training for early exit\")")
    g.add_argument("--margin-weight", type=float, default=0.0,
                   help="add this weight x the margin loss, mean(relu(1 - |P - T| / (margin x K))) over the binary "
                        "layers' pre-activations, to the cross-entropy (default 0: off)")
    g.add_argument("--margin", type=float, default=0.2,
                   help="margin as a share of each layer's fan-in K (popcount terms; default 0.2)")
    g.add_argument("--margin-first", action="store_true", help="also regularise the first (pixel) layer")


def _config(args: argparse.Namespace, prefix: str = ""):
    from flipflow.training.train import TrainConfig

    epochs = getattr(args, f"{prefix}epochs")
    steps = getattr(args, f"{prefix}lr_steps")
    if steps is None:
        steps = sorted({max(1, epochs // 2), max(1, (3 * epochs) // 4)} - {epochs})
    return TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=getattr(args, f"{prefix}lr"), lr_steps=steps,
                       lr_gamma=args.lr_gamma, augment=args.augment, flip_epochs=min(args.flip_epochs, epochs),
                       flip_sample=args.flip_sample, eval_images=args.eval_images, seed=args.seed, device=args.device,
                       margin_weight=args.margin_weight, margin=args.margin, margin_first=args.margin_first)


def _dataset(args: argparse.Namespace):
    from flipflow.training import datasets

    return datasets.load(args.dataset, args.data_dir)


def _arch(name: str, data, widths: list[int] | None, planes: list[int] | None = None):
    from flipflow.training import models

    arch = models.build_arch(name, data.input_shape, data.classes, **({"widths": tuple(widths)} if widths else {}))
    return models.with_bit_planes(arch, tuple(planes)) if planes else arch


def _planes_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--planes", type=_ints, default=None,
                   help="bit-plane input (CBNN): the first layer is binary over these pixel bits, e.g. 7,6,5,4 (default: 8-bit pixels)")


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (options that differ from their defaults)."""
    parser: argparse.ArgumentParser = args.parser
    words = [parser.prog.split()[-1]]
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.dest in ("help", "parser", "func") or value == action.default:
            continue
        if not action.option_strings:
            words.append(str(value))
        elif action.nargs == 0:
            words.append(action.option_strings[0])
        else:
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            words += [action.option_strings[0], text]
    return "flipflow " + " ".join(shlex.quote(w) for w in words)


def register(sub: argparse._SubParsersAction) -> None:
    from flipflow.training.models import ARCHS

    p = sub.add_parser("train", help="train a BNN with flip tracking; export its IR and test accuracy")
    p.add_argument("arch", choices=sorted(ARCHS), help="architecture")
    p.add_argument("--widths", type=_ints, default=None, help="output channels of every prunable layer, comma-separated")
    _planes_arg(p)
    p.add_argument("--out", type=Path, default=None, help="run folder (default build/train/ARCH)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--zoo", default=None, metavar="NAME", help="also copy the result to zoo/NAME")
    _schedule_args(p)
    p.set_defaults(func=_train, parser=p)

    p = sub.add_parser("prune", help="weight-flipping pruning rounds; --compare adds the latent and uniform baselines and the table")
    p.add_argument("model", help="architecture name (trains the baseline first) or a checkpoint.pt with flip counts")
    p.add_argument("--out", type=Path, default=None, help="run folder (default build/prune/MODEL)")
    p.add_argument("--criterion", choices=("flip", "latent", "uniform"), default="flip")
    _planes_arg(p)
    p.add_argument("--rule", choices=("flip", "latent"), default="latent",
                   help="which channels go: smallest |latent| (default: 0.4 pt better on NIN, README) or most flipping; --compare runs both, this one becomes ARCH_pruned")
    p.add_argument("--tau", type=int, default=0, help="a weight is insensitive when it flipped more than tau times")
    p.add_argument("--budget", type=int, default=None, help="binary ops per image (latent / uniform criteria)")
    p.add_argument("--multiple", type=int, default=1, help="round pruned widths to this hardware multiple (PE/SIMD)")
    p.add_argument("--max-share", type=float, default=0.9, help="at most this share of a layer's channels go per round")
    p.add_argument("--rounds", type=int, default=3, help="at most this many rounds (stops when max p_l stops decreasing)")
    p.add_argument("--mode", choices=("finetune", "scratch"), default="finetune", help="fine-tune the survivors or retrain from scratch")
    p.add_argument("--ft-epochs", type=int, default=4, help="fine-tuning epochs per round")
    p.add_argument("--ft-lr", type=float, default=1e-4)
    p.add_argument("--ft-lr-steps", type=_ints, default=None)
    p.add_argument("--compare", action="store_true", help="also prune by latent magnitude and uniform width to the flip net's budget; write table.md")
    p.add_argument("--seeds", type=int, default=1,
                   help="with --compare: fine-tune every net with this many seeds (--seed, --seed + 1, ...) from the one baseline; the table averages them")
    p.add_argument("--zoo", type=Path, default=None, metavar="DIR", help="with --compare: write DIR/ARCH and DIR/ARCH_pruned (first seed)")
    p.add_argument("--baseline", type=Path, default=None, metavar="RUN",
                   help="with --compare: start from RUN's finished baseline (same architecture and schedule; "
                        "e.g. another --tau of build/prune/nin) instead of training one")
    _schedule_args(p)
    p.set_defaults(func=_prune, parser=p)

    p = sub.add_parser("bitslice-sensitivity",
                       help="bit-plane sensitivity (CBNN): top-1 with each pixel bit randomised; the planes worth keeping")
    p.add_argument("model", help="a bit-plane IR (zoo name or model.ir.npz, e.g. from `flipflow train nin --planes 7,6,5,4,3,2,1,0`)")
    p.add_argument("--keep", type=int, default=4, help="planes to keep: the ones whose randomisation costs most (default 4)")
    p.add_argument("--images", type=int, default=None, help="first N test images (default: the full test set)")
    p.add_argument("--dataset", default=None, help="dataset (default: the IR's)")
    p.add_argument("--out", type=Path, default=None, help="folder for sensitivity.{json,png} (default build/<model>-bitslice)")
    p.add_argument("--print-planes", action="store_true", help="print only the kept planes (7,6,5,4) for scripts")
    p.set_defaults(func=_bitslice_sensitivity)

    p = sub.add_parser("table", help="print the comparison table (markdown) of a `prune --compare` run")
    p.add_argument("run", type=Path, nargs="?", default=DEFAULT_OUT / "prune" / "nin", help="run folder (default build/prune/nin)")
    p.set_defaults(func=_table)


def _bitslice_sensitivity(args: argparse.Namespace) -> int:
    from flipflow import ir
    from flipflow.training import bitslice, datasets

    net = ir.load_model(args.model)
    data = datasets.load(args.dataset or net.dataset)
    n = args.images or len(data.test)
    report = bitslice.sensitivity(net, data.test.images[:n], data.test.labels[:n])
    report["keep"] = list(bitslice.choose(report, args.keep))
    out = args.out or DEFAULT_OUT / f"{ir.model_label(args.model)}-bitslice"
    bitslice.write(report, out)
    if args.print_planes:
        print(",".join(map(str, report["keep"])))
        return 0
    print(f"{net.name}: top-1 {100 * report['accuracy']:.2f}% on {n:,} test images")
    for r in report["single"]:
        print(f"  plane {r['plane']} random: top-1 {100 * r['accuracy']:.2f}% ({r['drop_pt']:+.2f} pt drop)")
    for g in report["growing"]:
        print(f"  planes {','.join(map(str, g['randomised']))} random: top-1 {100 * g['accuracy']:.2f}% ({g['drop_pt']:+.2f} pt drop)")
    print(f"keep {','.join(map(str, report['keep']))}; {out / 'sensitivity.json'}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from flipflow.training import rounds
    from flipflow.training.blocks import BNN

    t0 = time.perf_counter()
    data = _dataset(args)
    arch = _arch(args.arch, data, args.widths, args.planes)
    cfg = _config(args)
    out = args.out or DEFAULT_OUT / "train" / args.arch
    if (out / "checkpoint.pt").exists() and not args.resume:
        raise UsageError(f"{out} already holds a run", fix="add --resume to continue it, or choose another --out")
    atomic.make_dir(out)
    model, payload = rounds._trained(out, BNN.initialised(arch, cfg.seed), cfg, data, args.train_subset, args.seed, args.arch, {"command": _command(args)})
    _, acc = rounds.evaluate(model, data, out, args.arch, {"run": str(out), "round": 0, "command": _command(args)})
    rounds._report(model, payload, out, "unpruned", 0, acc, 0, {}, time.perf_counter() - t0)
    print(f"{args.arch}: top-1 {100 * acc:.2f}% on {len(data.test)} test images (golden model on the exported IR); {out}")
    if args.zoo:
        print(f"zoo: {rounds.to_zoo(out, Path(__file__).resolve().parent.parent / 'zoo', args.zoo)}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from flipflow.training import checkpoint, models, reports, rounds

    data = _dataset(args)
    base_cfg, ft_cfg = _config(args), _config(args, "ft_")
    name = Path(args.model).parent.name if args.model.endswith(".pt") else args.model
    out = args.out or DEFAULT_OUT / "prune" / name
    atomic.make_dir(out)
    pcfg = rounds.PruneConfig(criterion=args.criterion, rule=args.rule, tau=args.tau, multiple=args.multiple,
                              max_share=args.max_share, rounds=args.rounds, mode=args.mode, budget=args.budget)
    if args.compare:
        if args.model not in models.ARCHS:
            raise UsageError("--compare trains its own baseline", fix=f"give an architecture name ({', '.join(models.ARCHS)})")
        arch = _arch(args.model, data, None, args.planes)
        if args.baseline:
            rounds.adopt_baseline(args.baseline, out, arch)
        result = rounds.compare(arch, data, base_cfg, ft_cfg, pcfg, out, args.train_subset, _command(args),
                                args.seeds)
        print(reports.comparison_table(result["rows"]))
        if args.zoo:
            for folder, zoo_name in ((out / "unpruned", args.model), (out / result["pruned_folder"], f"{args.model}_pruned")):
                print(f"zoo: {rounds.to_zoo(folder, args.zoo, zoo_name)}")
            rounds.copy_comparison(out, args.zoo / f"{args.model}_pruned" / "comparison")
        return 0
    if args.seeds != 1 or args.baseline:
        raise UsageError(f"{'--seeds' if args.seeds != 1 else '--baseline'} belongs to the --compare table",
                         fix="add --compare, or drop it")
    if args.model in models.ARCHS:
        base, payload, _ = rounds.baseline(_arch(args.model, data, None, args.planes), data, base_cfg, out, args.train_subset, _command(args))
    else:
        base, payload = checkpoint.load(args.model)
    if args.criterion == "flip":
        reps = rounds.flip_rounds(base, payload, data, pcfg, ft_cfg, base_cfg, out / rounds.flip_folder(pcfg.rule), args.train_subset, _command(args), f"{name}_pruned")
    else:
        _, _, rep = rounds.one_round(base, payload, data, pcfg, ft_cfg, base_cfg, out / args.criterion / "round1", 1,
                                     args.train_subset, _command(args), f"{name}_{args.criterion}")
        reps = [rep]
    for r in reps:
        print(f"{r['criterion']} round {r['round']}: {r['binary_ops'] / 1e6:.2f}M binary ops, top-1 {100 * r['accuracy']:.2f}%")
    return 0


def _table(args: argparse.Namespace) -> int:
    from flipflow.training import reports

    path = Path(args.run) / "comparison.json"
    if not path.exists():
        raise UsageError(f"{path} not found", fix=f"run `flipflow prune MODEL --compare --out {args.run}` first")
    try:
        rows = json.loads(path.read_text())["rows"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise UsageError(f"{path}: not a comparison report ({e!r})", fix=f"re-run `flipflow prune MODEL --compare --out {args.run}`") from e
    print(reports.comparison_table(rows), end="")
    return 0
