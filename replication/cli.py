"""Command line: ``rmnet convert ...`` (also ``python -m replication convert ...``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from . import evidence_check, layout, rm, zoo
from .atomic_io import check_writable
from .checkpoint_files import load_weights
from .data import DataConfig, DatasetNotFoundError
from .data.specs import DATASETS, dataset_spec
from .deploy.onnx import OnnxUnavailable
from .devices import check_device
from .inspection import STATUS_EXACT, format_report, inspect_model, parse_input_size
from .measure import count_macs, count_params, layer_summary
from .measure.cost_model import PREDICT_DTYPES, load_devices, predict_time
from .measure.counting import largest_activation_bytes
from .measure.throughput import TIMING_DTYPES, ThroughputConfig, ThroughputError, available_memory
from .rm import DOWNSAMPLE_TYPES, RMConversionError
from .rm.file_io import CheckpointError, DiskFullError, load_checkpoint
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


def finite_non_negative_float(text: str) -> float:
    value = non_negative_float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def device_arg(text: str) -> str:
    try:
        return check_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
    spec = ModelSpec.from_checkpoint(payload, args.checkpoint) if payload is not None else None
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
    name = args.model or DEFAULT_MODEL
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.model_kwargs:
        zoo.check_kwargs(name, kwargs, where="--model-kwargs")
    return zoo.create(name, **kwargs), name, int(kwargs.get("in_chans", 3)), None, payload


# The check runs the source model and the plain one on the batch; each keeps a few tensors of the size
# of its largest activation alive at once (input, output, a shortcut), and both outputs are compared.
_CHECK_COPIES = 4


def _check_fits_in_memory(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, args) -> None:
    """Refuse, before allocating anything, a check batch whose activations cannot fit in memory."""
    largest = largest_activation_bytes(model, shape, dtype)
    needed = _CHECK_COPIES * (largest if largest is not None else math.prod(shape) * dtype.itemsize)
    free = available_memory("cpu")
    if free is not None and needed > free:
        raise MemoryError(f"--input-size {shape[-1]} with --batch-size {args.batch_size} ({args.check_dtype}): "
                          f"the check needs about {needed / 2**30:.3g} GiB, this machine has "
                          f"{free / 2**30:.3g} GiB available; use a smaller --input-size or --batch-size")


def run_convert(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .deploy.formats import CheckFailedError, format_of, human_size, write_checked

    if args.output:
        # before any work: a bad target (or one that is an input of this command) fails now, and so does
        # an unknown suffix (UnknownFormatError: exit 2)
        check_writable(args.output, inputs={"--checkpoint": args.checkpoint})
        format_of(args.output)
    check_dtype, save_dtype = CHECK_DTYPES[args.check_dtype], CHECK_DTYPES[args.save_dtype]
    steps = ["build the model", "convert", "check equivalence", "count params and MACs"]
    if args.output:
        steps += [f"write and check {args.output}"]
    # a step bar on stderr, shown only when the whole takes more than 2 s (ResNet-50: about 20 s)
    with tqdm(total=len(steps), desc="convert", unit="step", delay=2, leave=False, file=sys.stderr,
              disable=None) as bar:  # no bar when stderr is not a terminal (logs, pipes, tests)

        def step(index: int) -> None:
            bar.n = index
            bar.set_postfix_str(steps[index])

        step(0)
        model, name, in_chans, native_size, payload = _model_for_convert(args)
        if payload is not None:
            load_weights(model, args.checkpoint, payload)
            randomized = None
        else:
            # Untrained BN is the identity; random statistics make the equivalence check meaningful.
            randomize_batchnorm_(model, seed=args.seed)
            randomized = args.seed
        model = model.to(check_dtype).eval()
        side = args.input_size or native_size or 224
        size = (in_chans, side, side)
        _check_fits_in_memory(model, (args.batch_size, *size), check_dtype, args)
        step(1)
        plain = rm.convert(model, args.downsample)
        generator = torch.Generator().manual_seed(args.seed)
        x = torch.randn(args.batch_size, *size, generator=generator).to(check_dtype)
        step(2)
        error = rm.max_error(model, plain, x)
        step(3)
        before, after = _structure(model, size), _structure(plain, size)
        written = None
        tolerance = 1e-10 if args.check_dtype == "float64" else 1e-5
        if args.output and error["max_rel"] <= tolerance:  # only a verified network lands on disk
            step(4)
            try:
                written = write_checked(plain, args.output, model, x, save_dtype=save_dtype)
            except CheckFailedError as failure:
                bar.close()
                print(f"error: {failure}", file=sys.stderr)
                return 1
        bar.n = len(steps)
    if randomized is not None:
        print(f"no checkpoint: BatchNorm statistics randomised (seed {randomized}) for the check")
    print(f"{name}: downsample={args.downsample}, input {args.batch_size}x{size}")
    _print_summary(before, after, error, args.check_dtype)
    if not error["max_rel"] <= tolerance:  # NaN fails too: a non-finite output is never accepted
        print(f"error: relative error {error['max_rel']:.3e} exceeds {tolerance:g}; nothing written", file=sys.stderr)
        return 1
    if written is None:
        print("nothing saved (no --output; give --output PATH ending in .pt, .safetensors, .pt2 or .onnx)")
        return 0
    dtype_name = str(written.dtype).removeprefix("torch.")
    print(f"saved {written.path}: {written.description}, {dtype_name}, {human_size(written.bytes)}")
    print(f"file check: loaded with {written.loader}, run in {dtype_name} against the source model in "
          f"{args.check_dtype}: max abs error {written.error['max_abs']:.3e}, "
          f"max relative error {written.error['max_rel']:.3e}")
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
    if args.check and report.status != STATUS_EXACT:
        print(f"error: the verdict for {args.model} is {report.status!r}, not 'exact'", file=sys.stderr)
        return 1
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


def _paper_models() -> set[str]:
    from .experiments import throughput

    return {name for row in throughput.timing_rows(("table1_sota", "table2_mobilenet"))
            for name in (row.paper.model, row.paper.backbone)}


def run_any_throughput(args: argparse.Namespace) -> int:
    """``throughput --model NAME_OR_CHECKPOINT [--compare OTHER | --compare-rm]``: any model, the paper's protocol."""
    import dataclasses

    from .experiments import any_throughput as anyt

    if len(args.model) != 1:
        print("error: time one model at a time (--model NAME_OR_CHECKPOINT), or name paper rows only",
              file=sys.stderr)
        return 2
    first = anyt.load_model(args.model[0], arch=args.arch, num_classes=args.num_classes)
    second = None
    if args.compare_rm:
        second = first
        first = anyt.rm_form(first, args.downsample)
    elif args.compare:
        second = anyt.load_model(args.compare, arch=args.compare_arch, num_classes=args.num_classes)
    side = args.input_size
    size = (first.input_size or (second.input_size if second else None) or (3, 224, 224))
    if side is not None:
        size = (size[0], side, side)
    config = ThroughputConfig(batch_size=args.batch_size, input_size=size, warmup=args.warmup, iters=args.iters,
                              repeats=args.repeats, device=args.device, dtype=args.dtype,
                              channels_last=args.channels_last, compile=args.compile, threads=args.threads)
    print(anyt.describe(config))
    if second is None:
        result = anyt.time_one(first, config)
        lines = anyt.single_lines(first, config, result)
        row = {"model": first.name, "images_per_sec": result.images_per_sec,
               "images_per_sec_min": result.images_per_sec_min, "images_per_sec_max": result.images_per_sec_max,
               "ms_per_batch": result.ms_per_batch}
    else:
        pair = anyt.time_pair(first, second, config, rounds=args.rounds, max_rounds=max(args.rounds, args.max_rounds),
                              time_cap_s=args.pair_time_cap)
        lines = anyt.pair_lines(first, second, pair)
        row = {"model": first.name, "compare": second.name, "images_per_sec": pair.images_per_sec_a,
               "compare_images_per_sec": pair.images_per_sec_b, **pair.as_row()}
    print("\n".join(lines))
    if args.output is not None:
        import pandas as pd

        from .atomic_io import write_csv_atomic
        from .measure.throughput import environment

        config_row = environment(dataclasses.replace(config, pin_allocator=False))
        write_csv_atomic(pd.DataFrame([{**row, **config_row}]), args.output)
        print(f"row written to {args.output}")
    return 0


def run_throughput(args: argparse.Namespace) -> int:
    from .experiments import throughput
    from .report import throughput_table

    if args.compare and args.compare_rm:
        print("error: --compare and --compare-rm exclude each other", file=sys.stderr)
        return 2
    if (args.compare or args.compare_rm) and not args.model:
        print("error: --compare and --compare-rm need --model", file=sys.stderr)
        return 2
    adhoc = bool(args.compare or args.compare_rm) or (
        args.model is not None and not set(args.model) <= _paper_models())
    if adhoc:
        if args.output is not None:
            check_writable(args.output)
        return run_any_throughput(args)
    args.output = args.output or Path(layout.MANUAL_THROUGHPUT)
    check_writable(args.output, inputs={"--predictions": args.predictions})
    check_writable(args.output.with_suffix(".md"), inputs={"--predictions": args.predictions})
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
    spec = dataset_spec(args.dataset)  # what the run gives the constructor itself
    zoo.check_kwargs(args.model, args.model_kwargs or {}, where="--model-kwargs", reserved=("num_classes", "in_chans"),
                     num_classes=spec.num_classes, in_chans=spec.in_chans)
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


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with each option's default at the end of its help where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("%(default)" not in text and action.default not in (None, "") and action.default is not False
                and action.default != argparse.SUPPRESS
                and action.option_strings and not isinstance(action, argparse._HelpAction)):
            text += " (default: %(default)s)"
        return text


DESCRIPTION = ("RMNet replication suite: convert residual networks (ResNet, ResNeXt, RegNetX, MobileNetV2, "
               "EfficientNet-Lite, MnasNet, RepVGG, RMNet ...) to exactly equivalent plain networks with the RM "
               "operation, inspect what RM does to a model, save the result as .pt, .safetensors, .pt2 or "
               ".onnx, time models with the paper's protocol, count params and MACs, and train. "
               "'rmnet COMMAND --help' describes each command.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmnet", description=DESCRIPTION, formatter_class=_HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    convert = commands.add_parser(
        "convert", help="convert a residual model to its plain (RM) equivalent, check it, save it",
        description="Build a model by name (timm registry incl. this project's models, or 'torchvision:NAME'), "
                    "optionally load a checkpoint, convert it with the RM operation, check equivalence on random "
                    "inputs and print a before/after summary. With --output, write the plain network in the "
                    "format the file name's suffix names, load the file back and check it against the source "
                    "model: .pt (this suite's format: layer spec + state_dict, read with "
                    "replication.rm.plain_io.load_plain), .safetensors (weights, layer spec in the metadata), "
                    ".pt2 (torch.export), .onnx (checked in ONNX Runtime).",
        formatter_class=_HelpFormatter)
    convert.add_argument("--model", help=f"model name (default: the checkpoint's, else {DEFAULT_MODEL})")
    convert.add_argument("--checkpoint", type=Path,
                         help="checkpoint (a state_dict, read with torch.load(weights_only=True)); one written by "
                              "the train command records its model, so --model, --model-kwargs and --num-classes "
                              "are then not needed")
    convert.add_argument("--model-kwargs", type=json_object,
                         help='JSON constructor kwargs, e.g. \'{"channels": [16, 32, 64, 128]}\' or '
                              '\'{"features_only": true}\' (default: the checkpoint\'s, else none)')
    convert.add_argument("--num-classes", type=positive_int,
                         help="classifier size (default: the checkpoint's, else the model's own)")
    convert.add_argument("--downsample", choices=DOWNSAMPLE_TYPES, default="dirac",
                         help="downsample block scheme: dirac (paper type 2) or prelu (type 1)")
    convert.add_argument("--input-size", type=positive_int,
                         help="square input side for the check (default: the checkpoint's training size, else 224)")
    convert.add_argument("--batch-size", type=positive_int, default=2, help="inputs in the check batch")
    convert.add_argument("--check-dtype", "--dtype", dest="check_dtype", choices=sorted(CHECK_DTYPES),
                         default="float64",
                         help="precision of the model, its conversion and the equivalence checks (--dtype: the "
                              "old name)")
    convert.add_argument("--save-dtype", choices=sorted(CHECK_DTYPES), default="float32",
                         help="precision of the saved network (ONNX: float32 only)")
    convert.add_argument("--seed", type=int, default=0, help="seed of the random BN statistics and check inputs")
    convert.add_argument("--output", type=Path,
                         help="where to save the plain network: PATH.pt, .safetensors, .pt2 or .onnx (default: "
                              "nothing is saved)")
    convert.set_defaults(func=run_convert)
    inspect = commands.add_parser(
        "inspect", help="per-block report of what RM would do to a model (no weights, seconds)",
        description="For each part of the model (stem, residual blocks, head): whether RM converts it exactly "
                    "or why not (module path and type), params and MACs before and after, and the reserved "
                    "channels RM adds. Built on the meta device: no weights, no arithmetic. With --check, the exit "
                    "status is 1 unless the verdict is exact.",
        formatter_class=_HelpFormatter)
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
    inspect.add_argument("--predict-dtype", choices=tuple(PREDICT_DTYPES), default="fp32",
                         help="precision of the prediction")
    inspect.add_argument("--check", action="store_true",
                         help="exit with status 1 unless the verdict is exact (for scripts and CI)")
    inspect.set_defaults(func=run_inspect)
    counts = commands.add_parser("counts", help="count params and MACs of every paper table row, beside the paper",
                                 description="Counts params and MACs (torch.utils.flop_counter) of every model row "
                                             "of the paper's Tables 1-3 in training and deploy form, beside the "
                                             "paper's numbers.", formatter_class=_HelpFormatter)
    counts.add_argument("--output-dir", type=Path, default=Path(layout.MANUAL_COUNTS),
                        help="folder for model_counts.csv, counts_vs_paper.csv and .md (default: %(default)s)")
    counts.add_argument("--table", action="append", choices=("table1_sota", "table2_mobilenet",
                                                             "table3_repvgg_vs_resnet"),
                        help="only this paper table (repeatable; default: all)")
    counts.set_defaults(func=run_counts)

    speed = commands.add_parser(
        "throughput", help="time any model, a pair of models, or the paper's Table 1/2 models (paper protocol)",
        description="Times with the paper's protocol (batch 128, 50 warm-up and 50 timed batches, 3 repeats, "
                    "eval mode, inference mode) on CUDA if available. With --model NAME_OR_CHECKPOINT: that model "
                    "(a timm or 'torchvision:' name, a plain network saved by convert, a checkpoint of train, or a "
                    "state_dict with --arch); with --compare OTHER or --compare-rm as well: both, as a paired "
                    "speed ratio with its 95 % CI (interleaved rounds). Without --model, or with --model naming "
                    "paper rows only: every Table 1/2 model in its train and deploy forms, rows appended to "
                    "--output; a crash keeps every finished model.",
        formatter_class=_HelpFormatter)
    speed.add_argument("--model", nargs="+",
                       help="a model name or file to time (see above); or paper rows (registry or backbone names)")
    speed.add_argument("--compare", metavar="OTHER",
                       help="a second model or file: print the paired ratio MODEL / OTHER")
    speed.add_argument("--compare-rm", action="store_true",
                       help="compare the model with its own RM form: print the ratio RM form / model")
    speed.add_argument("--arch", help="architecture of a --model file that is a bare state_dict")
    speed.add_argument("--compare-arch", help="architecture of a --compare file that is a bare state_dict")
    speed.add_argument("--num-classes", type=positive_int, help="classifier size of a named model")
    speed.add_argument("--input-size", type=positive_int,
                       help="square input side (default: the model's own config or training size, else 224)")
    speed.add_argument("--downsample", choices=DOWNSAMPLE_TYPES, default="dirac", help="RM scheme for --compare-rm")
    speed.add_argument("--output", type=Path,
                       help="CSV to write (default: none for one model or a pair; {layout.MANUAL_THROUGHPUT} "
                            "for paper rows, with a .md table beside it)")
    speed.add_argument("--table", nargs="+", default=["table1_sota", "table2_mobilenet"],
                       choices=("table1_sota", "table2_mobilenet"), help="paper rows: these tables")
    speed.add_argument("--dataset", nargs="+", choices=("CIFAR10", "CIFAR100", "ImageNet"),
                       help="paper rows: these datasets only (default: all)")
    speed.add_argument("--device", type=device_arg, default="cuda" if torch.cuda.is_available() else "cpu",
                       help="device to time on")
    speed.add_argument("--batch-size", type=positive_int, default=128, help="images per batch")
    speed.add_argument("--warmup", type=non_negative_int, default=50, help="untimed batches before each repeat")
    speed.add_argument("--iters", type=positive_int, default=50, help="timed batches per repeat")
    speed.add_argument("--repeats", type=positive_int, default=3, help="repeats (the median is reported)")
    speed.add_argument("--dtype", choices=tuple(TIMING_DTYPES), default="float32",
                       help="float16 / bfloat16 run under autocast")
    speed.add_argument("--channels-last", action="store_true", help="channels-last memory format")
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
                    "Nothing is timed; writes --output and a Markdown comparison with the paper beside it.",
        formatter_class=_HelpFormatter)
    cost.add_argument("--output", type=Path, default=Path(layout.MANUAL_PREDICTED))
    cost.add_argument("--batch-size", type=int, default=128, help="batch to predict (default: the paper's %(default)s)")
    cost.set_defaults(func=run_cost_model)

    fit = commands.add_parser("train", help="train a registered model (resumable; works under torchrun)",
                              description="Train with a named preset; rerunning with the same --output-dir resumes. "
                                          "The workflow's training jobs run this command with --run-config.",
                              formatter_class=_HelpFormatter)
    fit.add_argument("--model", help="registered model name (required unless --run-config)")
    fit.add_argument("--dataset", default="fashion_mnist", choices=DATASETS)
    fit.add_argument("--data-root", help="dataset folder (default: the dataset's usual place)")
    fit.add_argument("--download", action="store_true", help="download CIFAR if missing (needs network)")
    fit.add_argument("--model-kwargs", type=json_object,
                     help='JSON constructor kwargs, e.g. \'{"channels": [16, 32, 64, 128]}\'')
    fit.add_argument("--preset", help="training recipe (default: embedded)")
    fit.add_argument("--epochs", type=positive_int)
    fit.add_argument("--batch-size", type=positive_int, help="global batch (split over torchrun processes)")
    fit.add_argument("--lr", type=finite_non_negative_float)
    fit.add_argument("--image-size", type=positive_int)
    fit.add_argument("--train-subset", type=positive_int)
    fit.add_argument("--test-subset", type=positive_int)
    fit.add_argument("--sparsity", type=non_negative_float, help="network-slimming L1 factor on BN scales (default 0)")
    fit.add_argument("--workers", type=non_negative_int, help="data-loading workers (default 0)")
    fit.add_argument("--seed", type=int, help="default: 0, or the run config's training.seed")
    fit.add_argument("--device", type=device_arg, help="cpu, cuda, cuda:N or mps (default: cuda if available)")
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
    evidence_check.add_subcommand(commands)  # verify-evidence: replication/evidence_check.py
    return parser


def _one_line_warnings(show):  # noqa: ANN001, ANN202
    """A ``warnings.showwarning`` that prints the suite's own warnings as ``warning: <message>`` (one line,
    no source line) and passes any other to ``show``."""

    def showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        if category.__module__.startswith("replication"):
            print(f"warning: {message}", file=sys.stderr if file is None else file)
        else:
            show(message, category, filename, lineno, file, line)
    return showwarning


def _out_of_memory(error: BaseException) -> bool:
    return isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # restores the warnings machinery as it was
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        try:
            return args.func(args)
        except (CheckpointError, RMConversionError, UnknownModelError, ThroughputError, DatasetNotFoundError,
                ValueError, FileExistsError, PermissionError, IsADirectoryError, DiskFullError,
                OnnxUnavailable) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except (MemoryError, RuntimeError) as error:
            if not _out_of_memory(error):
                raise
            first = str(error).strip().splitlines()[0] if str(error).strip() else "out of memory"
            print(f"error: out of memory: {first}", file=sys.stderr)
            return 2
