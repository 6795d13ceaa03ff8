"""The training engine on tiny data: learning, exact resume after a kill, DDP, presets, bad input."""

import math
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

from replication.data import DataConfig
from replication.rm.file_io import CheckpointError
from replication.train import TrainConfig, get_preset, train
from replication.train.checkpoint import load_training_checkpoint

NARROW_RESNET = {"channels": (8, 16, 32, 64), "stem_width": 8}


def _config(fashion_root, tmp_path, name="run", **kwargs):
    defaults = dict(model="resnet18_cifar", data=DataConfig("fashion_mnist", root=str(fashion_root), image_size=16),
                    preset="embedded", overrides={"epochs": 3, "batch_size": 32}, output_dir=str(tmp_path / name),
                    device="cpu", model_kwargs=NARROW_RESNET)
    defaults.update(kwargs)
    return TrainConfig(**defaults)


def test_training_lowers_the_loss_and_writes_metrics(fashion_root, tmp_path):
    last = train(_config(fashion_root, tmp_path))
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3]
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]
    assert last["top1"] > 10.0  # chance is 10 %
    for column in ("model", "dataset", "preset", "profile", "device", "world_size", "global_batch", "top5", "seconds"):
        assert column in metrics.columns


def test_killed_run_resumes_at_the_right_epoch_with_identical_state(fashion_root, tmp_path, monkeypatch):
    train(_config(fashion_root, tmp_path, "straight"))

    import replication.train.engine as engine

    real_evaluate = engine.evaluate
    calls = {"n": 0}

    def dies_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill during epoch 2")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(_config(fashion_root, tmp_path, "killed"))
    assert load_training_checkpoint(tmp_path / "killed" / "checkpoint.pt", "resnet18_cifar")["epoch"] == 0
    monkeypatch.setattr(engine, "evaluate", real_evaluate)
    train(_config(fashion_root, tmp_path, "killed"))

    straight = load_training_checkpoint(tmp_path / "straight" / "checkpoint.pt", "resnet18_cifar")
    resumed = load_training_checkpoint(tmp_path / "killed" / "checkpoint.pt", "resnet18_cifar")
    assert resumed["epoch"] == straight["epoch"] == 2
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert list(pd.read_csv(tmp_path / "killed" / "metrics.csv")["epoch"]) == [1, 2, 3]


def test_kill_between_metrics_and_checkpoint_leaves_each_epoch_once(fashion_root, tmp_path, monkeypatch):
    """The checkpoint is the commit and the metrics row follows it: a kill while the checkpoint of
    epoch 2 is written leaves no row of epoch 2, and after the resume every epoch appears once."""
    import replication.train.engine as engine

    real_save = engine.save_atomic
    calls = {"n": 0}

    def dies_saving_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill after the metrics row of epoch 2")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(engine, "save_atomic", dies_saving_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(_config(fashion_root, tmp_path))
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv")["epoch"]) == [1]  # no row without its checkpoint
    monkeypatch.setattr(engine, "save_atomic", real_save)
    train(_config(fashion_root, tmp_path))
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv")["epoch"]) == [1, 2, 3]


def test_fresh_start_in_a_used_folder_starts_a_fresh_metrics_file(fashion_root, tmp_path):
    train(_config(fashion_root, tmp_path, overrides={"epochs": 2, "batch_size": 32}))
    train(_config(fashion_root, tmp_path, overrides={"epochs": 2, "batch_size": 32}, resume=False))
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv")["epoch"]) == [1, 2]
    (tmp_path / "run" / "checkpoint.pt").unlink()  # a lost checkpoint: its rows cannot be resumed
    train(_config(fashion_root, tmp_path, overrides={"epochs": 2, "batch_size": 32}))
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv")["epoch"]) == [1, 2]


def test_resume_with_another_recipe_is_refused_with_the_differences(fashion_root, tmp_path):
    from replication.train.engine import ResumeMismatchError

    train(_config(fashion_root, tmp_path, overrides={"epochs": 2, "batch_size": 32}))
    with pytest.raises(ResumeMismatchError) as error:
        train(_config(fashion_root, tmp_path, overrides={"epochs": 3, "batch_size": 32, "lr": 0.5}))
    message = str(error.value)
    assert "recipe.epochs: checkpoint 2, now 3" in message and "recipe.lr: checkpoint 0.05, now 0.5" in message
    with pytest.raises(ResumeMismatchError, match="--extend"):
        train(_config(fashion_root, tmp_path, overrides={"epochs": 3, "batch_size": 32}))
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv")["epoch"]) == [1, 2]  # nothing was touched


def test_extending_a_run_rebuilds_its_schedule(fashion_root, tmp_path):
    train(_config(fashion_root, tmp_path, overrides={"epochs": 2, "batch_size": 32}))
    last = train(_config(fashion_root, tmp_path, overrides={"epochs": 4, "batch_size": 32}, extend=True))
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3, 4] and last["epoch"] == 4
    # Epochs 3 and 4 follow the 4-epoch cosine schedule of lr 0.05, not the finished 2-epoch one (lr 0).
    expected = [0.05 * (1 + math.cos(math.pi * epoch / 4)) / 2 for epoch in (2, 3)]
    assert metrics["lr"].iloc[2:].tolist() == pytest.approx(expected)


def test_checkpoint_of_another_architecture_is_refused(fashion_root, tmp_path):
    train(_config(fashion_root, tmp_path, overrides={"epochs": 1, "batch_size": 32}))
    with pytest.raises(CheckpointError, match="'resnet18_cifar', not 'resnet34_cifar'"):
        train(_config(fashion_root, tmp_path, model="resnet34_cifar"))


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="unknown training preset 'cifar_fast'"):
        get_preset("cifar_fast")
    with pytest.raises(ValueError, match="epochz"):
        get_preset("embedded", epochz=3)


def test_paper_presets_hold_the_paper_hyper_parameters():
    depth = get_preset("cifar_depth_study")
    assert (depth.epochs, depth.batch_size, depth.lr, depth.momentum, depth.weight_decay) == (200, 256, 0.1, 0.9, 5e-4)
    assert (depth.schedule, depth.step_size, depth.gamma) == ("step", 60, 0.1)
    imagenet = get_preset("imagenet_repvgg")
    assert (imagenet.epochs, imagenet.batch_size, imagenet.weight_decay, imagenet.no_decay_on_norm_and_bias) == \
        (120, 256, 1e-4, True)


DDP_SCRIPT = textwrap.dedent('''
    import sys
    import torch
    from torch import nn
    from replication.data import DataConfig
    from replication.train import TrainConfig, train

    root, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    # augment=False: random crops draw from each process's own RNG, so they differ between 1 and 2 processes
    config = TrainConfig(model="tiny-plain", data=DataConfig("fashion_mnist", root=root, image_size=16, augment=False),
                         preset="embedded", overrides={"epochs": 2, "batch_size": 32}, output_dir=out,
                         device="cpu", max_steps_per_epoch=4)
    train(config, model=model)
''')


def _torchrun(script, processes, root, out):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(29500 + processes), str(script), str(root), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_process_ddp_matches_one_process(fashion_root, tmp_path):
    """Same seed and global batch: 2 gloo processes end where 1 process does (BN-free model; see engine docs)."""
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    _torchrun(script, 1, fashion_root, tmp_path / "one")
    _torchrun(script, 2, fashion_root, tmp_path / "two")
    one = load_training_checkpoint(tmp_path / "one" / "checkpoint.pt", "tiny-plain")["model"]
    two = load_training_checkpoint(tmp_path / "two" / "checkpoint.pt", "tiny-plain")["model"]
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6)
    metrics = pd.read_csv(tmp_path / "two" / "metrics.csv")
    assert (metrics["world_size"] == 2).all() and (metrics["global_batch"] == 32).all()
