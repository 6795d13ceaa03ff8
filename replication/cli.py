"""Command line: ``python -m replication convert ...`` (also installed as ``rmnet``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

from . import layout, rm, zoo
from .atomic_io import check_writable
from .checkpoint_files import load_weights
from .data import DataConfig, DatasetNotFoundError
from .data.specs import DATASETS
from .inspection import format_report, inspect_model, parse_input_size
from .measure import count_macs, count_params, layer_summary
from .measure.cost_model import PREDICT_DTYPES, load_devices, predict_time
from .measure.throughput import TIMING_DTYPES, ThroughputConfig, ThroughputError
from .rm import DOWNSAMPLE_TYPES, RMConversionError
from .rm.file_io import CheckpointError, load_checkpoint
from .rm.plain_io import save_plain
from .rm.verify import randomize_batchnorm_
from .zoo import UnknownModelError

# The training engine, the experiments and the report builders are imported inside the command that
# runs them: each pulls in more (tqdm and torch.distributed, pandas tables, matplotlib) that the other
# commands, --help and argument errors do not need.

# The precisions of convert's equivalence check (the timing and cost-model precisions are
# measure.throughput.TIMING_DTYPES and measure.cost_model.PREDICT_DTYPES).
CHECK_DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEFAULT_MODEL = "torchvision:resnet18"


# argparse types: a bad value ends in argparse's one-line error and exit code 2, before any work.

def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value >= 0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"is not valid JSON ({error}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _structure(model: nn.Module, input_size: tuple[int, int, int]) -> dict[str, object]:
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


def _bare(name: str) -> str:
    return name.removeprefix("timm:")


def _model_for_convert(args: argparse.Namespace):
    """(model, its name, in_chans, native input size or None, checkpoint payload or None) for ``convert``.

    A checkpoint written by this suite's ``train`` records how to rebuild its model (its ModelSpec):
    then --model / --model-kwargs / --num-classes are optional, and one that contradicts the checkpoint
    is an error naming both values. Any other checkpoint needs --model.
    """
    from .train.checkpoint import ModelSpec  # the engine's package; only a --checkpoint needs it

    payload = load_checkpoint(args.checkpoint) if args.checkpoint else None
    spec = ModelSpec.from_checkpoint(payload) if payload is not None else None
    if spec is not None:
        given = {"--model": (args.model, spec.model, args.model is not None and _bare(args.model) != _bare(spec.model)),
                 "--model-kwargs": (args.model_kwargs, spec.model_kwargs,
                                    args.model_kwargs is not None and args.model_kwargs != spec.model_kwargs),
                 "--num-classes": (args.num_classes, spec.num_classes,
                                   args.num_classes is not None and args.num_classes != spec.num_classes)}
        clashes = [f"{flag} {json.dumps(mine)} but the checkpoint's model has {json.dumps(theirs)}"
                   for flag, (mine, theirs, clash) in given.items() if clash]
        if clashes:
            raise CheckpointError(f"{args.checkpoint} records its model; the command line contradicts it: "
                                  + "; ".join(clashes) + ". Leave these options out to use the checkpoint's.")
        return spec.build(), spec.model, spec.in_chans, spec.image_size, payload
    if payload is not None and args.model is None:
        raise CheckpointError(f"{args.checkpoint} does not record which model it holds (a bare state_dict, a file "
                              "from another tool, or a run that trained a model passed in by code): name it "
                              "with --model (and --num-classes / --model-kwargs where they differ from the "
                              "model's defaults)")
    kwargs = dict(args.model_kwargs or {})
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    name = args.model or DEFAULT_MODEL
    return zoo.create(name, **kwargs), name, int(kwargs.get("in_chans", 3)), None, payload


def run_convert(args: argparse.Namespace) -> int:
    if args.output:
        check_writable(args.output)  # before any work: a bad target fails now, not after the conversion
    model, name, in_chans, native_size, payload = _model_for_convert(args)
    if payload is not None:
        load_weights(model, args.checkpoint, payload)
    else:
        # Untrained BN is the identity; random statistics make the equivalence check meaningful.
        randomize_batchnorm_(model, seed=args.seed)
        print(f"no checkpoint: BatchNorm statistics randomised (seed {args.seed}) for the check")
    model = model.to(CHECK_DTYPES[args.dtype]).eval()
    plain = rm.convert(model, args.downsample)
    side = args.input_size or native_size or 224
    size = (in_chans, side, side)
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, *size, generator=generator).to(CHECK_DTYPES[args.dtype])
    error = rm.max_error(model, plain, x)
    print(f"{name}: downsample={args.downsample}, input {args.batch_size}x{size}")
    _print_summary(_structure(model, size), _structure(plain, size), error, args.dtype)
    tolerance = 1e-10 if args.dtype == "float64" else 1e-5
    if not error["max_rel"] <= tolerance:  # NaN fails too: a non-finite output is never accepted
        print(f"error: relative error {error['max_rel']:.3e} exceeds {tolerance:g}; nothing written", file=sys.stderr)
        return 1
    if args.output:  # only a verified network lands on disk
        path = save_plain(plain, args.output)
        print(f"saved plain model to {path} (load with replication.rm.plain_io.load_plain)")
    return 0


def _cost_model_devices() -> list[str]:
    """The GPU specs the cost model knows (replication/measure/devices.yaml)."""
    return sorted(load_devices())


def run_inspect(args: argparse.Namespace) -> int:
    size = parse_input_size(args.input_size) if args.input_size is not None else None
    predict = None
    if args.device:

        def predict(plain, model, shape):  # residual time over plain time: > 1 means RM speeds it up
            batch = (args.predict_batch_size, *shape[1:])
            return (predict_time(model, batch, args.device, args.predict_dtype)
                    / predict_time(plain, batch, args.device, args.predict_dtype))
    report = inspect_model(args.model, size, args.downsample, predict=predict)
    print(format_report(report, args.format))
    return 0


def run_counts(args: argparse.Namespace) -> int:
    from .experiments import model_counts
    from .experiments.paper_rows import PAPER_ROWS
    from .report import counts_table

    check_writable(args.output_dir, folder=True)
    rows = [row for row in PAPER_ROWS if not args.table or row.table in args.table]
    out = args.output_dir
    model_counts.run(out / "model_counts.csv", rows)
    comparison = counts_table.build(out / "model_counts.csv", out / "counts_vs_paper.csv", out / "counts_vs_paper.md")
    matched = (comparison["matches"] != "none").sum()
    print(f"{matched} of {len(comparison)} paper numbers matched in some form; table: {out / 'counts_vs_paper.md'}")
    return 0


def run_throughput(args: argparse.Namespace) -> int:
    from .experiments import throughput
    from .report import throughput_table

    check_writable(args.output)
    check_writable(args.output.with_suffix(".md"))
    config = ThroughputConfig(batch_size=args.batch_size, warmup=args.warmup, iters=args.iters, repeats=args.repeats,
                              device=args.device, dtype=args.dtype, channels_last=args.channels_last,
                              compile=args.compile, threads=args.threads)
    if args.predictions is not None and not args.predictions.is_file():
        print(f"error: --predictions {args.predictions}: no such file (write it with the cost-model command)",
              file=sys.stderr)
        return 2
    pairs = None if args.no_pairs else throughput.PairSettings(
        rounds=args.rounds, max_rounds=max(args.rounds, args.max_rounds), time_cap_s=args.pair_time_cap)
    rows = throughput.timing_rows(tuple(args.table), tuple(args.dataset) if args.dataset else None)
    if args.model:
        rows = [row for row in rows if row.paper.model in args.model or row.paper.backbone in args.model]
    if not rows:
        print("error: no paper rows match the --table / --dataset / --model filters", file=sys.stderr)
        return 2
    path = throughput.run(args.output, rows, config, profile=args.profile, note=args.note, onnx=args.onnx,
                          pairs=pairs)
    table = throughput_table.build(path, path.with_suffix(".md"), args.predictions)
    print(f"{len(table)} models timed; {path} and {path.with_suffix('.md')}")
    return 0


def run_cost_model(args: argparse.Namespace) -> int:
    from .experiments import cost_predictions
    from .report import cost_model_table

    cost_predictions.run(args.output, batch_size=args.batch_size)
    cost_model_table.build(args.output, args.output.with_suffix(".md"))
    print(f"predictions for every Table 1 / 2 row: {args.output} and {args.output.with_suffix('.md')}")
    return 0


# The options a --run-config replaces (it names the model, recipe and data settings itself).
_RUN_CONFIG_REPLACES = ("model", "data_root", "download", "model_kwargs", "preset", "epochs", "batch_size", "lr",
                        "image_size", "train_subset", "test_subset", "sparsity", "workers", "device")


def _train_config(args: argparse.Namespace):
    """The run's TrainConfig: from the options, or from a workflow run (``--run-config``)."""
    from .train import TrainConfig

    seed = args.seed
    if args.run_config is not None:
        given = [f"--{name.replace('_', '-')}" for name in _RUN_CONFIG_REPLACES
                 if getattr(args, name) not in (None, False)]
        if given:
            raise ValueError(f"--run-config names the model, recipe and data itself; leave out {', '.join(given)}")
        missing = [key for key in ("run", "training", "data") if not isinstance(args.run_config.get(key), dict)]
        if missing:
            raise ValueError(f"--run-config needs the objects {', '.join(missing)} (run, training, data)")
        return TrainConfig.from_mapping(args.run_config["run"], args.run_config["training"], args.run_config["data"],
                                        dataset=args.dataset, output_dir=args.output_dir, profile=args.profile,
                                        seed=seed, resume=not args.no_resume, extend=args.extend)
    if args.model is None:
        raise ValueError("train needs --model (or --run-config)")
    seed = 0 if seed is None else seed
    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr))
                 if v is not None}
    data = DataConfig(name=args.dataset, root=args.data_root, image_size=args.image_size,
                      train_subset=args.train_subset, test_subset=args.test_subset, download=args.download,
                      seed=seed)
    return TrainConfig(model=args.model, data=data, preset=args.preset or "embedded", overrides=overrides,
                       output_dir=str(args.output_dir), seed=seed, workers=args.workers or 0,
                       sparsity=args.sparsity or 0.0, profile=args.profile, resume=not args.no_resume,
                       extend=args.extend, model_kwargs=args.model_kwargs or {},
                       **({"device": args.device} if args.device else {}))


def run_train(args: argparse.Namespace) -> int:
    import shutil

    from .train import train

    check_writable(args.output_dir, folder=True)
    if args.metrics is not None:
        check_writable(args.metrics)
    config = _train_config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    last = train(config)
    if args.metrics is not None:  # the workflow's output: a copy, so that the run folder stays whole
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(args.output_dir) / "metrics.csv", args.metrics)
    if last:
        print(f"{config.model} on {args.dataset}: epoch {last['epoch']}, top-1 {last['top1']:.2f} %, "
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
    convert.add_argument("--model", help=f"model name (default: the checkpoint's, else {DEFAULT_MODEL})")
    convert.add_argument("--checkpoint", type=Path,
                         help="checkpoint (torch.load weights_only=True); one written by `train` records its model, "
                              "so --model, --model-kwargs and --num-classes are then not needed")
    convert.add_argument("--model-kwargs", type=json_object,
                         help='JSON constructor kwargs, e.g. \'{"channels": [16, 32, 64, 128]}\' (default: the '
                              "checkpoint's, else none)")
    convert.add_argument("--num-classes", type=positive_int,
                         help="classifier size (default: the checkpoint's, else the model's own)")
    convert.add_argument("--downsample", choices=DOWNSAMPLE_TYPES, default="dirac",
                         help="downsample block scheme: dirac (paper type 2) or prelu (type 1)")
    convert.add_argument("--input-size", type=positive_int,
                         help="square input side for the check (default: the checkpoint's training size, else 224)")
    convert.add_argument("--batch-size", type=positive_int, default=2, help="inputs in the check batch")
    convert.add_argument("--dtype", choices=sorted(CHECK_DTYPES), default="float64", help="precision of the check")
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
    inspect.add_argument("--downsample", choices=DOWNSAMPLE_TYPES, default="dirac",
                         help="downsample block scheme: dirac (paper type 2) or prelu (type 1)")
    inspect.add_argument("--format", choices=("table", "csv", "json"), default="table")
    inspect.add_argument("--device", choices=_cost_model_devices(),
                         help="add the GPU cost model's predicted speed change of the converted network on this "
                              "device (a roofline prediction, not a measurement)")
    inspect.add_argument("--predict-batch-size", type=positive_int, default=128,
                         help="batch size of the prediction (default: 128, the paper's)")
    inspect.add_argument("--predict-dtype", choices=tuple(PREDICT_DTYPES), default="fp32")
    inspect.set_defaults(func=run_inspect)
    counts = commands.add_parser("counts", help="count params and MACs of every paper table row, beside the paper")
    counts.add_argument("--output-dir", type=Path, default=Path(layout.MANUAL_COUNTS),
                        help="folder for model_counts.csv, counts_vs_paper.csv and .md (default: %(default)s)")
    counts.add_argument("--table", action="append", choices=("table1_sota", "table2_mobilenet",
                                                             "table3_repvgg_vs_resnet"),
                        help="only this paper table (repeatable; default: all)")
    counts.set_defaults(func=run_counts)

    speed = commands.add_parser(
        "throughput", help="time paper Table 1/2 models (train and deploy forms) with the paper's protocol",
        description="Defaults are the paper's protocol (batch 128, 50 warm-up, 50 timed batches) on CUDA if "
                    "available. Rows are appended to --output; a crash keeps every finished model.")
    speed.add_argument("--output", type=Path, default=Path(layout.MANUAL_THROUGHPUT))
    speed.add_argument("--table", nargs="+", default=["table1_sota", "table2_mobilenet"],
                       choices=("table1_sota", "table2_mobilenet"))
    speed.add_argument("--dataset", nargs="+", choices=("CIFAR10", "CIFAR100", "ImageNet"))
    speed.add_argument("--model", nargs="+", help="only these models (registry names or paper backbone names)")
    speed.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    speed.add_argument("--batch-size", type=positive_int, default=128)
    speed.add_argument("--warmup", type=non_negative_int, default=50)
    speed.add_argument("--iters", type=positive_int, default=50)
    speed.add_argument("--repeats", type=positive_int, default=3)
    speed.add_argument("--dtype", choices=tuple(TIMING_DTYPES), default="float32")
    speed.add_argument("--channels-last", action="store_true")
    speed.add_argument("--compile", action="store_true", help="torch.compile each model first")
    speed.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's)")
    speed.add_argument("--onnx", action="store_true", help="also export deploy forms to ONNX and time ONNX Runtime")
    speed.add_argument("--profile", default="adhoc", help="label stored in every row (e.g. embedded, paper)")
    speed.add_argument("--note", default="", help="free text stored in every row (e.g. 'CPU, reduced batch')")
    speed.add_argument("--rounds", type=int, default=8, help="paired ratios: A/B rounds before the CI check")
    speed.add_argument("--max-rounds", type=int, default=32, help="paired ratios: most rounds when the CI stays wide")
    speed.add_argument("--pair-time-cap", type=float, default=300.0,
                       help="paired ratios: stop adding rounds after about this many seconds per pair")
    speed.add_argument("--no-pairs", action="store_true", help="absolute images/s only; ratios print as unpaired")
    speed.add_argument("--predictions", type=Path,
                       help="the cost model's CSV (cost-model command), added to the table as predicted GPU numbers")
    speed.set_defaults(func=run_throughput)

    cost = commands.add_parser(
        "cost-model", help="predict V100 / A100 / H100 throughput of every Table 1/2 row (roofline cost model)",
        description="Traces every model (training and deploy form) on the meta device, counts FLOPs and bytes "
                    "per op and predicts images/s from devices.yaml's data-sheet peaks and bandwidths. "
                    "Nothing is timed; writes --output and a Markdown comparison with the paper beside it.")
    cost.add_argument("--output", type=Path, default=Path(layout.MANUAL_PREDICTED))
    cost.add_argument("--batch-size", type=int, default=128, help="batch to predict (default: the paper's %(default)s)")
    cost.set_defaults(func=run_cost_model)

    fit = commands.add_parser("train", help="train a registered model (resumable; works under torchrun)",
                              description="Train with a named preset; rerunning with the same --output-dir resumes. "
                                          "The workflow's training jobs run this command with --run-config.")
    fit.add_argument("--model", help="registered model name (required unless --run-config)")
    fit.add_argument("--dataset", default="fashion_mnist", choices=DATASETS)
    fit.add_argument("--data-root", help="dataset folder (default: the dataset's usual place)")
    fit.add_argument("--download", action="store_true", help="download CIFAR if missing (needs network)")
    fit.add_argument("--model-kwargs", type=json_object,
                     help='JSON constructor kwargs, e.g. \'{"channels": [16, 32, 64, 128]}\'')
    fit.add_argument("--preset", help="training recipe (default: embedded)")
    fit.add_argument("--epochs", type=positive_int)
    fit.add_argument("--batch-size", type=positive_int, help="global batch (split over torchrun processes)")
    fit.add_argument("--lr", type=float)
    fit.add_argument("--image-size", type=positive_int)
    fit.add_argument("--train-subset", type=positive_int)
    fit.add_argument("--test-subset", type=positive_int)
    fit.add_argument("--sparsity", type=non_negative_float, help="network-slimming L1 factor on BN scales (default 0)")
    fit.add_argument("--workers", type=non_negative_int, help="data-loading workers (default 0)")
    fit.add_argument("--seed", type=int, help="default: 0, or the run config's training.seed")
    fit.add_argument("--device")
    fit.add_argument("--profile", default="adhoc", help="label stored in every row (the workflow passes its own)")
    fit.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's)")
    fit.add_argument("--run-config", type=json_object,
                     help="a workflow run, as JSON {run, training, data}: its runs.<name> entry and the config's "
                          "training and data sections; replaces --model, --preset and the data options")
    fit.add_argument("--metrics", type=Path, help="also copy the run's metrics.csv here when it ends")
    fit.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    fit.add_argument("--extend", action="store_true",
                     help="resume a finished or running run with more --epochs (the schedule is rebuilt); other "
                          "differences from the checkpoint's run are refused")
    fit.add_argument("--output-dir", type=Path, required=True)
    fit.set_defaults(func=run_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, RMConversionError, UnknownModelError, ThroughputError, DatasetNotFoundError,
            ValueError, FileExistsError, PermissionError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
