"""Command line: ``python -m replication convert ...`` (also installed as ``rmnet``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _structure(model: nn.Module, input_size: tuple[int, int, int]) -> dict[str, object]:
    from .measure import count_macs, count_params, layer_summary

    kinds = layer_summary(model)
    return {"params": count_params(model), "macs": count_macs(model, input_size),
            "conv": kinds.get("Conv2d", 0), "bn": sum(v for k, v in kinds.items() if "BatchNorm" in k),
            "residual_blocks": sum(1 for m in model.modules()
                                   if type(m).__name__ in {"BasicBlock", "Bottleneck", "InvertedResidual"}
                                   and getattr(m, "use_res_connect", True)),
            "layers": ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))}


def _print_summary(before: dict, after: dict, error: dict, dtype: str) -> None:
    rows = [("params (M)", f"{before['params'] / 1e6:.3f}", f"{after['params'] / 1e6:.3f}"),
            ("MACs (G)", f"{before['macs'] / 1e9:.4f}", f"{after['macs'] / 1e9:.4f}"),
            ("conv layers", before["conv"], after["conv"]),
            ("BatchNorm layers", before["bn"], after["bn"]),
            ("residual blocks", before["residual_blocks"], after["residual_blocks"])]
    print(f"{'':18}{'residual':>14}{'plain':>14}")
    for name, a, b in rows:
        print(f"{name:18}{a!s:>14}{b!s:>14}")
    print(f"layers before: {before['layers']}")
    print(f"layers after:  {after['layers']}")
    print(f"equivalence ({dtype}): max abs error {error['max_abs']:.3e}, "
          f"max relative error {error['max_rel']:.3e} (output scale {error['reference_scale']:.3g})")


def run_convert(args: argparse.Namespace) -> int:
    from . import rm, zoo
    from .checkpoints import load_weights
    from .rm.plain_io import save_plain
    from .testing import randomize_batchnorm_

    kwargs = {"num_classes": args.num_classes} if args.num_classes else {}
    model = zoo.create(args.model, **kwargs)
    if args.checkpoint:
        load_weights(model, args.checkpoint)
    else:
        # Untrained BN is the identity; random statistics make the equivalence check meaningful.
        randomize_batchnorm_(model, seed=args.seed)
        print(f"no checkpoint: BatchNorm statistics randomised (seed {args.seed}) for the check")
    model = model.to(DTYPES[args.dtype]).eval()
    plain = rm.convert(model, args.downsample)
    size = (3, args.input_size, args.input_size)
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, *size, generator=generator).to(DTYPES[args.dtype])
    error = rm.max_error(model, plain, x)
    print(f"{args.model}: downsample={args.downsample}, input {args.batch_size}x{size}")
    _print_summary(_structure(model, size), _structure(plain, size), error, args.dtype)
    tolerance = 1e-10 if args.dtype == "float64" else 1e-5
    if not error["max_rel"] <= tolerance:  # NaN fails too: a non-finite output is never accepted
        print(f"error: relative error {error['max_rel']:.3e} exceeds {tolerance:g}; nothing written", file=sys.stderr)
        return 1
    if args.output:  # only a verified network lands on disk
        path = save_plain(plain, args.output)
        print(f"saved plain model to {path} (load with replication.rm.plain_io.load_plain)")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from .inspection import format_report, inspect_model, parse_input_size

    size = parse_input_size(args.input_size) if args.input_size is not None else None
    report = inspect_model(args.model, size, args.downsample)
    print(format_report(report, args.format))
    return 0


def run_counts(args: argparse.Namespace) -> int:
    from .experiments import model_counts
    from .experiments.paper_rows import PAPER_ROWS
    from .report import counts_table

    rows = [row for row in PAPER_ROWS if not args.table or row.table in args.table]
    out = args.output_dir
    model_counts.run(out / "model_counts.csv", rows)
    comparison = counts_table.build(out / "model_counts.csv", out / "counts_vs_paper.csv", out / "counts_vs_paper.md")
    matched = (comparison["matches"] != "none").sum()
    print(f"{matched} of {len(comparison)} paper numbers matched in some form; table: {out / 'counts_vs_paper.md'}")
    return 0


def run_throughput(args: argparse.Namespace) -> int:
    from .experiments import throughput
    from .measure.throughput import ThroughputConfig
    from .report import throughput_table

    config = ThroughputConfig(batch_size=args.batch_size, warmup=args.warmup, iters=args.iters, repeats=args.repeats,
                              device=args.device, dtype=args.dtype, channels_last=args.channels_last,
                              compile=args.compile, threads=args.threads)
    rows = throughput.timing_rows(tuple(args.table), tuple(args.dataset) if args.dataset else None)
    if args.model:
        rows = [row for row in rows if row.paper.model in args.model or row.paper.backbone in args.model]
    if not rows:
        print("error: no paper rows match the --table / --dataset / --model filters", file=sys.stderr)
        return 2
    path = throughput.run(args.output, rows, config, profile=args.profile, note=args.note, onnx=args.onnx)
    table = throughput_table.build(path, path.with_suffix(".md"))
    print(f"{len(table)} models timed; {path} and {path.with_suffix('.md')}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from .data import DataConfig
    from .train import TrainConfig, train

    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr))
                 if v is not None}
    data = DataConfig(name=args.dataset, root=args.data_root, image_size=args.image_size,
                      train_subset=args.train_subset, test_subset=args.test_subset, download=args.download,
                      seed=args.seed)
    config = TrainConfig(model=args.model, data=data, preset=args.preset, overrides=overrides,
                         output_dir=str(args.output_dir), seed=args.seed, workers=args.workers,
                         sparsity=args.sparsity, profile=args.profile, resume=not args.no_resume, extend=args.extend,
                         model_kwargs=json.loads(args.model_kwargs),
                         **({"device": args.device} if args.device else {}))
    last = train(config)
    if last:
        print(f"{args.model} on {args.dataset}: epoch {last['epoch']}, top-1 {last['top1']:.2f} %, "
              f"top-5 {last['top5']:.2f} % -> {args.output_dir}/metrics.csv")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m replication", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert", help="convert a residual model to its plain (RM) equivalent and verify it",
        description="Build a model by name (timm registry incl. this project's models, or "
                    "'torchvision:NAME'), optionally load a checkpoint, convert it with the RM operation, "
                    "check equivalence on random inputs and print a before/after summary.")
    convert.add_argument("--model", default="torchvision:resnet18", help="model name (default: %(default)s)")
    convert.add_argument("--checkpoint", type=Path, help="state_dict file (torch.load weights_only=True)")
    convert.add_argument("--num-classes", type=int, help="classifier size (default: the model's own)")
    convert.add_argument("--downsample", choices=("dirac", "prelu"), default="dirac",
                         help="downsample block scheme: dirac (paper type 2) or prelu (type 1)")
    convert.add_argument("--input-size", type=int, default=224, help="square input side for the check")
    convert.add_argument("--batch-size", type=int, default=2, help="inputs in the check batch")
    convert.add_argument("--dtype", choices=sorted(DTYPES), default="float64", help="precision of the check")
    convert.add_argument("--seed", type=int, default=0)
    convert.add_argument("--output", type=Path, help="where to save the plain model")
    convert.set_defaults(func=run_convert)
    inspect = commands.add_parser(
        "inspect", help="per-block report of what RM would do to a model (no weights, seconds)",
        description="For each part of the model (stem, residual blocks, head): whether RM converts it exactly "
                    "or why not (module path and type), params and MACs before and after, and the reserved "
                    "channels RM adds. Built on the meta device: no weights, no arithmetic.")
    inspect.add_argument("--model", required=True, help="timm name (incl. this project's) or 'torchvision:NAME'")
    inspect.add_argument("--input-size", help="square input side (default: the model's own, else 224)")
    inspect.add_argument("--downsample", choices=("dirac", "prelu"), default="dirac",
                         help="downsample block scheme: dirac (paper type 2) or prelu (type 1)")
    inspect.add_argument("--format", choices=("table", "csv", "json"), default="table")
    inspect.set_defaults(func=run_inspect)
    counts = commands.add_parser("counts", help="count params and MACs of every paper table row, beside the paper")
    counts.add_argument("--output-dir", type=Path, default=Path("results/counts"),
                        help="folder for model_counts.csv, counts_vs_paper.csv and .md (default: %(default)s)")
    counts.add_argument("--table", action="append", choices=("table1_sota", "table2_mobilenet",
                                                             "table3_repvgg_vs_resnet"),
                        help="only this paper table (repeatable; default: all)")
    counts.set_defaults(func=run_counts)

    speed = commands.add_parser(
        "throughput", help="time paper Table 1/2 models (train and deploy forms) with the paper's protocol",
        description="Defaults are the paper's protocol (batch 128, 50 warm-up, 50 timed batches) on CUDA if "
                    "available. Rows are appended to --output; a crash keeps every finished model.")
    speed.add_argument("--output", type=Path, default=Path("results/throughput/throughput.csv"))
    speed.add_argument("--table", nargs="+", default=["table1_sota", "table2_mobilenet"],
                       choices=("table1_sota", "table2_mobilenet"))
    speed.add_argument("--dataset", nargs="+", choices=("CIFAR10", "CIFAR100", "ImageNet"))
    speed.add_argument("--model", nargs="+", help="only these models (registry names or paper backbone names)")
    speed.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    speed.add_argument("--batch-size", type=int, default=128)
    speed.add_argument("--warmup", type=int, default=50)
    speed.add_argument("--iters", type=int, default=50)
    speed.add_argument("--repeats", type=int, default=3)
    speed.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    speed.add_argument("--channels-last", action="store_true")
    speed.add_argument("--compile", action="store_true", help="torch.compile each model first")
    speed.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    speed.add_argument("--onnx", action="store_true", help="also export deploy forms to ONNX and time ONNX Runtime")
    speed.add_argument("--profile", default="adhoc", help="label stored in every row (e.g. embedded, paper)")
    speed.add_argument("--note", default="", help="free text stored in every row (e.g. 'CPU, reduced batch')")
    speed.set_defaults(func=run_throughput)

    fit = commands.add_parser("train", help="train a registered model (resumable; works under torchrun)",
                              description="Train with a named preset; rerunning with the same --output-dir resumes.")
    fit.add_argument("--model", required=True)
    fit.add_argument("--dataset", default="fashion_mnist", choices=("cifar10", "cifar100", "imagenet", "fashion_mnist"))
    fit.add_argument("--data-root", help="dataset folder (default: the dataset's usual place)")
    fit.add_argument("--download", action="store_true", help="download CIFAR if missing (needs network)")
    fit.add_argument("--model-kwargs", default="{}", help='JSON constructor kwargs, e.g. \'{"channels": [16, 32, 64, 128]}\'')
    fit.add_argument("--preset", default="embedded")
    fit.add_argument("--epochs", type=int)
    fit.add_argument("--batch-size", type=int, help="global batch (split over torchrun processes)")
    fit.add_argument("--lr", type=float)
    fit.add_argument("--image-size", type=int)
    fit.add_argument("--train-subset", type=int)
    fit.add_argument("--test-subset", type=int)
    fit.add_argument("--sparsity", type=float, default=0.0, help="network-slimming L1 factor on BN scales")
    fit.add_argument("--workers", type=int, default=0)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--device")
    fit.add_argument("--profile", default="adhoc")
    fit.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    fit.add_argument("--extend", action="store_true",
                     help="resume a finished or running run with more --epochs (the schedule is rebuilt); other "
                          "differences from the checkpoint's run are refused")
    fit.add_argument("--output-dir", type=Path, required=True)
    fit.set_defaults(func=run_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .checkpoints import CheckpointError
    from .data import DatasetNotFoundError
    from .measure.throughput import ThroughputError
    from .rm import RMConversionError
    from .zoo import UnknownModelError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, RMConversionError, UnknownModelError, ThroughputError, DatasetNotFoundError,
            ValueError, FileExistsError, PermissionError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
