"""Train / evaluate loop: presets, AMP and channels_last on GPU, torchrun DDP, resumable checkpoints.

One process or many (``torchrun --nproc_per_node N -m replication train ...``, one or many nodes):
the global batch is split evenly across processes and the data order comes from a DistributedSampler
seeded by (seed, epoch), so N processes see the same global batches as one. On GPUs BatchNorm is
synchronised (SyncBatchNorm), making N processes equal to one up to reduction order; on CPUs (gloo)
SyncBatchNorm is unavailable, so each process normalises its own shard and BN models differ slightly.
Rank 0 evaluates, writes ``checkpoint.pt`` (atomically, every epoch) and then ``metrics.csv`` (one row
per epoch, atomically). The checkpoint is the commit: it holds the run's metrics history, and
``metrics.csv`` is rewritten from it, so the two never disagree for long and a lost or damaged
``metrics.csv`` is rebuilt on the next start. A killed run restarted with the same output folder resumes
after its last finished epoch with the same model, optimizer, scheduler and RNG state. One process owns
a run folder at a time (a lock on ``<output_dir>/.lock``, which the system releases when the process ends).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
import warnings
from collections.abc import Mapping, Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from .. import zoo
from ..atomic_io import write_csv_atomic
from ..data import DataConfig, build_datasets
from ..devices import check_device
from ..measure.throughput import device_name
from ..provenance import provenance
from ..prune import add_shortcut_batchnorms_
from ..rm.file_io import CheckpointError, save_atomic
from .checkpoint import ModelSpec, load_training_checkpoint, plain_values as _plain, restore_rng_state, rng_state
from .presets import Preset, get_preset

try:
    import fcntl
except ImportError:  # not on POSIX: runs are not locked
    fcntl = None  # type: ignore[assignment]


class RunLockedError(ValueError):
    """Another process is training in the same output folder."""


class MetricsFileError(ValueError):
    """A ``metrics.csv`` that cannot be read as a run's metrics (empty, no ``epoch`` column, not CSV)."""


class MissingHistoryWarning(UserWarning):
    """A resumed run's metrics history lacks epochs that cannot be restored."""


class RunLock:
    """An exclusive ``flock`` on ``<folder>/.lock`` for the life of a run. The kernel drops it when the
    process ends, however it ends, so a crashed run never leaves its folder locked."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / ".lock"
        self._handle = open(self.path, "a+")  # noqa: SIM115  (held until release())
        if fcntl is None:
            return
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._handle.seek(0)
            holder = self._handle.read().strip()
            self._handle.close()
            who = f" (pid {holder})" if holder else ""
            raise RunLockedError(f"{folder} is in use by another training process{who}: two runs in one folder "
                                 "would mix their epochs. Wait for it to end, or use another output folder") from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"{os.getpid()}\n")
        self._handle.flush()

    def release(self) -> None:
        if not self._handle.closed:
            self._handle.close()  # closing the file drops the flock


def read_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """A run's ``metrics.csv``; an empty file, one without an ``epoch`` column or one that is not a CSV is
    a :class:`MetricsFileError` naming the file."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise MetricsFileError(f"metrics file {path} is empty (0 bytes)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MetricsFileError(f"metrics file {path} cannot be read as CSV ({first})") from None
    if "epoch" not in frame.columns:
        raise MetricsFileError(f"metrics file {path} has no 'epoch' column (columns: "
                               f"{', '.join(map(str, frame.columns[:8])) or 'none'})")
    if not pd.api.types.is_numeric_dtype(frame["epoch"]) or frame["epoch"].isna().any():
        raise MetricsFileError(f"metrics file {path}: its 'epoch' column holds values that are not epoch numbers")
    return frame


def _epoch_ranges(epochs: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    parts: list[str] = []
    for epoch in sorted(epochs):
        if parts and epoch == int(parts[-1].rpartition("-")[2]) + 1:
            parts[-1] = f"{parts[-1].partition('-')[0]}-{epoch}"
        else:
            parts.append(str(epoch))
    return ", ".join(parts)


@dataclass
class TrainConfig:
    """Everything a run needs; stored in the checkpoint and in every metrics row."""

    model: str
    data: DataConfig = field(default_factory=DataConfig)
    preset: str = "embedded"
    overrides: dict[str, Any] = field(default_factory=dict)   # preset fields, e.g. {"epochs": 2}
    output_dir: str = "runs/default"
    seed: int = 0
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    amp: bool = True                   # float16 autocast + GradScaler, CUDA only
    channels_last: bool = True         # CUDA only
    workers: int = 0
    sparsity: float = 0.0              # network slimming: L1 factor on BN scale factors
    max_steps_per_epoch: int | None = None
    shortcut_batchnorms: bool = False  # BN on identity shortcuts, for network slimming through RM
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    profile: str = "adhoc"
    resume: bool = True
    extend: bool = False               # resume with more epochs than the checkpoint's run: rebuild the schedule

    @property
    def recipe(self) -> Preset:
        return get_preset(self.preset, **self.overrides)

    @classmethod
    def from_mapping(cls, run: Mapping[str, Any], training: Mapping[str, Any], data: Mapping[str, Any], *,
                     dataset: str, output_dir: str | os.PathLike, profile: str, seed: int | None = None,
                     finetune: bool = False, **fields: Any) -> TrainConfig:
        """The config of a workflow run: its ``runs.<name>`` entry, the ``training`` and ``data`` sections.

        ``seed`` defaults to ``training.seed``. With ``finetune``, the recipe is ``training.finetune_preset``
        with ``finetune_overrides`` on top of the overrides; ``fields`` set any other field (``model``)."""
        seed = int(training.get("seed", 0)) if seed is None else seed
        values: dict[str, Any] = {"model": run["model"], "data": DataConfig.from_mapping(data, dataset, seed),
                                  "output_dir": str(output_dir), "seed": seed, "profile": profile,
                                  "workers": int(training.get("workers", 0))}
        if finetune:  # the converted network trains with the fine-tuning recipe, and no sparsity term
            values.update(preset=training.get("finetune_preset", "cifar_finetune"),
                          overrides={**training.get("overrides", {}), **training.get("finetune_overrides", {})})
        else:
            values.update(preset=run.get("preset", training.get("preset", "embedded")),
                          overrides={**training.get("overrides", {}), **run.get("overrides", {})},
                          sparsity=float(run.get("sparsity", 0.0)),
                          model_kwargs=dict(run.get("model_kwargs", {}) or {}),
                          shortcut_batchnorms=bool(run.get("shortcut_batchnorms", False)))
        if training.get("device"):
            values["device"] = training["device"]
        return cls(**{**values, **fields})


def _distributed() -> tuple[int, int]:
    """(rank, world size), initialising the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def _parameter_groups(model: nn.Module, recipe: Preset) -> list[dict[str, Any]]:
    if not recipe.no_decay_on_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _scheduler(optimizer: torch.optim.Optimizer, recipe: Preset) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: ``warmup_epochs`` of linear warm-up, then step or cosine over the rest."""
    warmup = recipe.warmup_epochs
    if recipe.schedule == "cosine":
        main: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(recipe.epochs - warmup, 1))
    elif recipe.schedule == "step":
        main = torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.step_size, gamma=recipe.gamma)
    else:
        raise ValueError(f"unknown schedule {recipe.schedule!r} (step or cosine)")
    if warmup <= 0:
        return main
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup + 1), total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def add_bn_l1_subgradient(model: nn.Module, factor: float) -> None:
    """Network slimming (Liu et al., 2017): add ``factor * sign(gamma)`` to every BN scale's gradient."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None \
                and module.weight.grad is not None:
            module.weight.grad.add_(factor * torch.sign(module.weight.detach()))


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: str, *, channels_last: bool = False,
             amp: bool = False, progress: bool = False) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy (%) over ``loader``."""
    was_training = model.training
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    total, loss, correct1, correct5 = 0, 0.0, 0, 0
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=amp and device.startswith("cuda"))
    for images, targets in tqdm(loader, desc="eval", leave=False, disable=not progress):
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = model(images)
        loss += criterion(logits.float(), targets).item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == targets).sum().item()
        correct5 += (top == targets[:, None]).any(dim=1).sum().item()
        total += targets.numel()
    model.train(was_training)
    return {"loss": loss / max(total, 1), "top1": 100.0 * correct1 / max(total, 1),
            "top5": 100.0 * correct5 / max(total, 1), "samples": total}


def build_model(config: TrainConfig, num_classes: int, in_chans: int) -> nn.Module:
    model = zoo.create(config.model, num_classes=num_classes, in_chans=in_chans, **config.model_kwargs)
    if config.shortcut_batchnorms:
        add_shortcut_batchnorms_(model)
    return model


@dataclass
class TrainingRun:
    """What a training run holds between epochs: built by :func:`setup_training`, advanced by
    :func:`train_one_epoch`, recorded by :func:`save_epoch`."""

    config: TrainConfig
    recipe: Preset
    rank: int
    world: int
    device: str
    model: nn.Module                 # the network itself (its state_dict is what a checkpoint holds)
    ddp_model: nn.Module             # what the steps call: ``model``, or its DistributedDataParallel wrapper
    spec: ModelSpec | None           # what rebuilds the network from its checkpoint alone, if known
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: DistributedSampler
    loader: DataLoader
    test_loader: DataLoader
    criterion: nn.Module
    context: dict[str, Any]          # the run's fixed columns of every metrics row
    checkpoint_path: Path
    metrics_path: Path
    start_epoch: int                 # 0, or the epoch after the last checkpointed one
    history: list[dict[str, Any]] = field(default_factory=list)  # the metrics rows of the committed epochs
    lock: RunLock | None = None      # rank 0's hold on the output folder

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def channels_last(self) -> bool:
        return self.config.channels_last and self.cuda


@dataclass
class EpochStats:
    """One epoch's training pass, summed over every process: the lr it ran at and its wall time."""

    loss_sum: float
    correct: int
    seen: int
    lr: float
    seconds: float


def train(config: TrainConfig, model: nn.Module | None = None) -> dict[str, Any]:
    """Train ``config.model`` (or the given ``model``) and return the last epoch's metrics.

    Returns a dict with ``epoch``, ``train_loss``, ``train_top1``, ``test_loss``, ``top1``, ``top5``,
    ``seconds`` and the run's context; the same row is the last line of ``metrics.csv``.
    """
    run = setup_training(config, model)
    last: dict[str, Any] = {}
    try:
        for epoch in range(run.start_epoch, run.recipe.epochs):
            stats = train_one_epoch(run, epoch)
            if run.is_main:
                last = save_epoch(run, epoch, stats)
            if run.world > 1:
                dist.barrier()
    finally:
        if run.lock is not None:
            run.lock.release()
    if not last and run.is_main:
        if not run.history:  # only a checkpoint of an earlier version whose metrics.csv is gone
            raise MetricsFileError(f"{run.checkpoint_path} holds a finished run of {run.start_epoch} epoch(s), but "
                                   f"its metrics are lost ({run.metrics_path} is missing and the checkpoint predates "
                                   "recorded histories): start over with --no-resume (resume=False)")
        last = dict(run.history[-1])  # already finished: report the last row
    return last


def setup_training(config: TrainConfig, model: nn.Module | None = None) -> TrainingRun:
    """Data, network, optimizer, schedule and loaders of a run; resumed from its checkpoint if there is one."""
    rank, world = _distributed()
    is_main = rank == 0
    recipe = config.recipe
    if recipe.batch_size % world:
        raise ValueError(f"global batch {recipe.batch_size} does not split evenly over {world} processes")
    seed_everything(config.seed)
    check_device(config.device)
    train_set, test_set, info = build_datasets(config.data)
    _check_steps(len(cast(Sized, train_set)), recipe.batch_size, world, config)
    device = config.device
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    cuda = device.startswith("cuda")
    # What rebuilds this network from its checkpoint alone (convert --checkpoint); unknown for a model
    # passed in by code, such as a converted network being fine-tuned.
    spec = None
    if model is None:
        spec = ModelSpec(model=config.model, num_classes=info.num_classes, in_chans=info.in_chans,
                         model_kwargs=dict(config.model_kwargs), shortcut_batchnorms=config.shortcut_batchnorms,
                         dataset=config.data.name, image_size=info.image_size)
        model = build_model(config, info.num_classes, info.in_chans)
    model = model.to(device)
    if config.channels_last and cuda:
        model = model.to(memory_format=torch.channels_last)
    if world > 1 and cuda:  # SyncBatchNorm is GPU-only; on CPU each process normalises its own shard
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = torch.optim.SGD(_parameter_groups(model, recipe), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    scheduler = _scheduler(optimizer, recipe)
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and cuda)

    out = Path(config.output_dir)
    checkpoint_path, metrics_path = out / "checkpoint.pt", out / "metrics.csv"
    lock = RunLock(out) if is_main else None  # before anything in the folder is read or written
    try:
        start_epoch, history, scheduler = _resume(config, recipe, model, optimizer, scheduler, scaler, checkpoint_path,
                                                  metrics_path, is_main)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    ddp_model = nn.parallel.DistributedDataParallel(model) if world > 1 else model

    sampler: DistributedSampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                                     seed=config.seed, drop_last=True)
    loader = DataLoader(train_set, batch_size=recipe.batch_size // world, sampler=sampler, drop_last=True,
                        num_workers=config.workers, pin_memory=cuda, persistent_workers=config.workers > 0)
    test_loader = DataLoader(test_set, batch_size=max(recipe.batch_size // world, 64), shuffle=False,
                             num_workers=config.workers, pin_memory=cuda)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    context = {"model": config.model, "dataset": config.data.name, "preset": config.preset,
               "profile": config.profile, "device": device, "device_name": device_name(device),
               "threads": torch.get_num_threads(), "world_size": world, "global_batch": recipe.batch_size,
               "epochs": recipe.epochs, "seed": config.seed, "sparsity": config.sparsity,
               "train_samples": len(cast(Sized, train_set)), "test_samples": len(cast(Sized, test_set)),
               "image_size": info.image_size,
               "num_classes": info.num_classes, "in_chans": info.in_chans,
               "amp": config.amp and cuda, "torch_version": torch.__version__}
    return TrainingRun(config=config, recipe=recipe, rank=rank, world=world, device=device, model=model,
                       ddp_model=ddp_model, spec=spec, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                       sampler=sampler, loader=loader, test_loader=test_loader, criterion=criterion,
                       context=context, checkpoint_path=checkpoint_path, metrics_path=metrics_path,
                       start_epoch=start_epoch, history=history, lock=lock)


def _check_steps(samples: int, batch_size: int, world: int, config: TrainConfig) -> None:
    """An epoch must train at least one step: the loader drops the last incomplete batch, so a training
    set smaller than one batch would write finished epochs that never trained (checked before anything
    is written)."""
    steps = (samples // world) // (batch_size // world)
    if config.max_steps_per_epoch is not None:
        steps = min(steps, config.max_steps_per_epoch)
    if steps >= 1:
        return
    if config.max_steps_per_epoch is not None and config.max_steps_per_epoch < 1:
        raise ValueError(f"max_steps_per_epoch is {config.max_steps_per_epoch}: an epoch would train no step")
    subset = f" (train_subset {config.data.train_subset})" if config.data.train_subset else ""
    raise ValueError(f"an epoch would train no step: the training set has {samples} images{subset}, fewer than "
                     f"one batch of {batch_size} (batch_size; the last incomplete batch is dropped"
                     f"{f', over {world} processes' if world > 1 else ''}). Use a train_subset of at least "
                     f"{batch_size} or a smaller batch_size")


Scheduler = torch.optim.lr_scheduler.LRScheduler


def _resume(config: TrainConfig, recipe: Preset, model: nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: Scheduler, scaler: torch.amp.GradScaler, checkpoint_path: Path, metrics_path: Path,
            is_main: bool) -> tuple[int, list[dict[str, Any]], Scheduler]:
    """(first epoch to train, metrics history of the committed epochs, scheduler), restoring the run's
    state from its checkpoint when resuming. Nothing on disk changes for a fresh start (--no-resume
    included): the old run stays whole until the new run's first epoch is committed."""
    if not (config.resume and checkpoint_path.exists()):
        return 0, [], scheduler
    state = _resume_state(checkpoint_path, config.model)
    extended = _check_resume(state.get("config", {}), config, checkpoint_path)
    _load_resumed_weights(model, state["model"], checkpoint_path)
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    start_epoch = state["epoch"] + 1
    if extended:  # a longer run: the schedule of the new length, advanced to where the run stands
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        scheduler = _scheduler(optimizer, recipe)
        with warnings.catch_warnings():  # fast-forwarding a schedule, not skipping an optimizer step
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            for _ in range(start_epoch):
                scheduler.step()
    else:
        scheduler.load_state_dict(state["scheduler"])
    history: list[dict[str, Any]] = []
    if is_main:
        history = _committed_history(state, start_epoch, checkpoint_path, metrics_path)
    return start_epoch, history, scheduler


def train_one_epoch(run: TrainingRun, epoch: int) -> EpochStats:
    """One pass over this process's shard (at most ``max_steps_per_epoch`` steps), then the schedule's
    step; the loss and accuracy sums are reduced over every process."""
    config, recipe, device, model, optimizer, scaler = (run.config, run.recipe, run.device, run.model,
                                                        run.optimizer, run.scaler)
    run.sampler.set_epoch(epoch)
    run.ddp_model.train()
    started, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
    steps = len(run.loader) if config.max_steps_per_epoch is None else min(len(run.loader),
                                                                           config.max_steps_per_epoch)
    # disable=None: a bar on a terminal, none in log files
    bar = tqdm(run.loader, total=steps, desc=f"epoch {epoch + 1}/{recipe.epochs}", leave=False,
               disable=None if run.is_main else True)
    for step, (images, targets) in enumerate(bar):
        if step >= steps:
            break
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        if run.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16, enabled=config.amp and run.cuda):
            logits = run.ddp_model(images)
            loss = run.criterion(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.sparsity or recipe.grad_clip:
            scaler.unscale_(optimizer)
        if config.sparsity:
            add_bn_l1_subgradient(model, config.sparsity)
        if recipe.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}")
        seen += targets.numel()
        loss_sum += loss.item() * targets.numel()
        correct += (logits.argmax(1) == targets).sum().item()
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
    lr = optimizer.param_groups[0]["lr"]
    run.scheduler.step()
    seconds = time.perf_counter() - started
    if run.world > 1:  # the epoch's training loss / accuracy over every process's shard, as one process sees them
        totals = torch.tensor([loss_sum, correct, seen], dtype=torch.float64, device=device)
        dist.all_reduce(totals)
        loss_sum, correct, seen = totals[0].item(), int(totals[1].item()), int(totals[2].item())
    return EpochStats(loss_sum=loss_sum, correct=correct, seen=seen, lr=lr, seconds=seconds)


def save_epoch(run: TrainingRun, epoch: int, stats: EpochStats) -> dict[str, Any]:
    """Rank 0's end of an epoch: evaluate, write the checkpoint with the run's metrics history (the
    commit), then ``metrics.csv`` from that history, both atomically. A kill or a full disk before the
    commit leaves the previous epoch's checkpoint and metrics; one after it leaves a ``metrics.csv`` one
    row behind, which the next start rebuilds from the checkpoint. Returns the row."""
    config = run.config
    metrics = evaluate(run.model, run.test_loader, run.device, channels_last=run.channels_last, amp=config.amp)
    seen, seconds = stats.seen, stats.seconds
    row = {**run.context, "epoch": epoch + 1, "lr": stats.lr, "train_loss": stats.loss_sum / max(seen, 1),
           "train_top1": 100.0 * stats.correct / max(seen, 1), "test_loss": metrics["loss"],
           "top1": metrics["top1"], "top5": metrics["top5"], "seconds": seconds,
           "train_images_per_sec": seen / seconds}
    row = _plain({**row, **{key: value for key, value in provenance().items() if key not in row}})
    history = [*run.history, row]
    save_atomic({"model_name": config.model, "model_spec": run.spec.as_dict() if run.spec else None,
                 "epoch": epoch, "model": run.model.state_dict(),
                 "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
                 "scaler": run.scaler.state_dict(), "rng": rng_state(), "config": _plain(asdict(config)),
                 "history": history},
                run.checkpoint_path)
    run.history = history
    write_csv_atomic(pd.DataFrame.from_records(history), run.metrics_path)
    print(f"{config.model} epoch {epoch + 1}/{run.recipe.epochs}: train loss {row['train_loss']:.4f}, "
          f"test top-1 {row['top1']:.2f} %, {seconds:.1f} s", flush=True)
    return row


_START_OVER = ("start the run over with --no-resume (resume=False), or delete {path}: the workflow and the "
               "CLI resume from it whenever it is there")


def _resume_state(path: Path, model_name: str) -> dict[str, Any]:
    """The checkpoint a run resumes from; a corrupt or foreign one says how to start over."""
    try:
        return load_training_checkpoint(path, model_name)
    except CheckpointError as error:
        raise CheckpointError(f"cannot resume: {error}. To {_START_OVER.format(path=path)}") from None


def _load_resumed_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """``model.load_state_dict`` with torch's multi-line size-mismatch RuntimeError turned into one message
    (a checkpoint whose settings were not recorded; recorded ones are compared by ``_check_resume``)."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[1:4]) or first[0]
        raise CheckpointError(f"cannot resume: the weights in {path} do not fit the model ({detail}). "
                              f"To {_START_OVER.format(path=path)}") from None


class ResumeMismatchError(ValueError):
    """A checkpoint's run was made with other settings than the run that would resume it."""


_RESUME_KEYS = ("model_kwargs", "sparsity", "shortcut_batchnorms", "seed")
_DATA_KEYS_IGNORED = ("root", "download")  # where the data lies may change; what it is may not


def _check_resume(saved: dict[str, Any], config: TrainConfig, path: Path) -> bool:
    """Raise :class:`ResumeMismatchError` listing every setting that differs from the checkpoint's run.

    With ``config.extend``, more epochs than the checkpoint's run is allowed (returns True: the
    schedule must be rebuilt); every other difference still stops the resume."""
    if not saved:
        return False
    current = _plain(asdict(config))
    before = asdict(get_preset(saved["preset"], **saved.get("overrides", {})))
    now = asdict(config.recipe)
    differences = [f"recipe.{key}: checkpoint {before[key]!r}, now {now[key]!r}"
                   for key in now if before.get(key) != now[key] and key != "description"]
    differences += [f"{key}: checkpoint {saved.get(key)!r}, now {current[key]!r}"
                    for key in _RESUME_KEYS if saved.get(key) != current[key]]
    saved_data, data = saved.get("data", {}), current["data"]
    differences += [f"data.{key}: checkpoint {saved_data.get(key)!r}, now {data[key]!r}"
                    for key in data if key not in _DATA_KEYS_IGNORED and saved_data.get(key) != data[key]]
    longer = now["epochs"] > before["epochs"]
    rest = [d for d in differences if not d.startswith("recipe.epochs:")]
    if not differences or (config.extend and longer and not rest):
        return bool(differences)
    hint = (" To train longer, resume with extend=True (--extend)." if longer and not rest else "")
    raise ResumeMismatchError(f"{path} was written by a run with other settings; resuming would mix two runs. "
                              "Differences:\n  " + "\n  ".join(differences) +
                              f"\nUse another output folder, or start over (resume=False / --no-resume).{hint}")


def _committed_history(state: dict[str, Any], finished_epochs: int, checkpoint_path: Path,
                       metrics_path: Path) -> list[dict[str, Any]]:
    """The metrics rows of the checkpoint's epochs, with ``metrics.csv`` brought in line with them.

    A checkpoint holds its run's history: ``metrics.csv`` is rewritten from it whenever the file is
    missing, unreadable, or holds other epochs (a kill between the commit and the metrics write, a
    deleted or damaged file). A checkpoint written before histories were recorded keeps the rows of
    ``metrics.csv`` up to its epoch; epochs missing there are lost, and the run says which."""
    recorded = state.get("history")
    if isinstance(recorded, list) and all(isinstance(row, dict) for row in recorded):
        history = [dict(row) for row in recorded]
        expected = [int(row["epoch"]) for row in history]
        try:
            current = read_metrics(metrics_path)["epoch"].astype(int).tolist() if metrics_path.exists() else None
        except MetricsFileError as error:
            _warn(f"{error}; rebuilt from the history in {checkpoint_path}")
            current = None
        if current != expected:
            write_csv_atomic(pd.DataFrame.from_records(history), metrics_path, provenance=False)
        return history
    # A checkpoint of an earlier version of the suite: metrics.csv is the only record of its history.
    frame = None
    if metrics_path.exists():
        try:
            frame = read_metrics(metrics_path)
        except MetricsFileError as error:
            raise MetricsFileError(f"cannot resume: {error}. {checkpoint_path} predates recorded histories, so "
                                   f"it cannot be rebuilt: delete {metrics_path} to resume without the history of "
                                   "the finished epochs, or start over with --no-resume") from None
    committed = frame[frame["epoch"] <= finished_epochs] if frame is not None else pd.DataFrame({"epoch": []})
    if frame is not None and len(committed) != len(frame):
        write_csv_atomic(committed, metrics_path, provenance=False)
    missing = sorted(set(range(1, finished_epochs + 1)) - set(committed["epoch"].astype(int)))
    if missing:
        _warn(f"{metrics_path} lacks the rows of epoch(s) {_epoch_ranges(missing)} of the run in {checkpoint_path}, "
              "which predates recorded histories: they cannot be restored, and the file will hold the other "
              "epochs only")
    return [_plain(row) for row in committed.to_dict(orient="records")]


def _warn(message: str) -> None:
    warnings.warn(message, MissingHistoryWarning, stacklevel=3)
    sys.stderr.flush()
