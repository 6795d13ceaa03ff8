"""A run folder's metrics and checkpoint change together or not at all; one process owns a folder;
an epoch that trains nothing is an error; a lost metrics history is rebuilt or named."""

import errno
import fcntl
import re

import pandas as pd
import pytest
import torch
from torch import nn

from replication import cli
from replication.data import DataConfig
from replication.rm.file_io import DiskFullError
from replication.train import TrainConfig, engine, train
from replication.train.engine import MetricsFileError, MissingHistoryWarning, RunLockedError, read_metrics


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))


def _config(root, out, **kwargs):
    values = dict(model="tiny", data=DataConfig("fashion_mnist", root=str(root), image_size=8, augment=False,
                                                train_subset=64, test_subset=16),
                  preset="embedded", overrides={"epochs": 2, "batch_size": 32}, output_dir=str(out), device="cpu")
    values.update(kwargs)
    return TrainConfig(**values)


def _epochs(out):
    return list(pd.read_csv(out / "metrics.csv")["epoch"])


def _checkpoint(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def _leftovers(out):
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))


def test_a_subset_smaller_than_a_batch_is_refused_before_anything_is_written(shared_fashion_root, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"an epoch would train no step: the training set has 32 images "
                                         r"\(train_subset 32\), fewer than one batch of 64"):
        train(_config(shared_fashion_root, out, overrides={"epochs": 1, "batch_size": 64},
                      data=DataConfig("fashion_mnist", root=str(shared_fashion_root), image_size=8, train_subset=32)),
              model=_tiny())
    assert not out.exists()


def test_the_cli_says_so_in_one_line(shared_fashion_root, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "--model", "resnet18_cifar", "--data-root", str(shared_fashion_root), "--batch-size",
                     "64", "--train-subset", "32", "--device", "cpu", "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "train no step" in err and "train_subset 32" in err
    assert not (out / "metrics.csv").exists() and not (out / "checkpoint.pt").exists()


def test_a_folder_in_use_by_another_process_is_refused(shared_fashion_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a+") as other:  # what a second `train` process holds
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        other.write("4242\n")
        other.flush()
        with pytest.raises(RunLockedError, match=r"in use by another training process \(pid 4242\)"):
            train(_config(shared_fashion_root, out), model=_tiny())
        assert not (out / "metrics.csv").exists()
    train(_config(shared_fashion_root, out), model=_tiny())  # the lock dies with its holder
    assert _epochs(out) == [1, 2]
    train(_config(shared_fashion_root, out), model=_tiny())  # and a finished run releases its own
    assert _epochs(out) == [1, 2]


def test_a_crash_in_a_fresh_start_leaves_the_old_run_whole(shared_fashion_root, tmp_path, monkeypatch):
    """--no-resume in a used folder: the old metrics and checkpoint stay until the new epoch 1 commits."""
    out = tmp_path / "run"
    train(_config(shared_fashion_root, out), model=_tiny())
    old_metrics = (out / "metrics.csv").read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before the new run's first checkpoint")

    monkeypatch.setattr(engine, "save_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        train(_config(shared_fashion_root, out, resume=False), model=_tiny())
    assert (out / "metrics.csv").read_bytes() == old_metrics and _checkpoint(out)["epoch"] == 1
    monkeypatch.undo()
    last = train(_config(shared_fashion_root, out), model=_tiny())  # the old run, finished, reported
    assert last["epoch"] == 2 and _epochs(out) == [1, 2]


def test_a_kill_between_checkpoint_and_metrics_is_repaired_from_the_checkpoint(shared_fashion_root, tmp_path,
                                                                               monkeypatch):
    out = tmp_path / "run"
    train(_config(shared_fashion_root, out), model=_tiny())
    real = engine.write_csv_atomic

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after the checkpoint of the new epoch 1")

    monkeypatch.setattr(engine, "write_csv_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        train(_config(shared_fashion_root, out, resume=False), model=_tiny())
    committed = _checkpoint(out)["history"]
    assert [row["epoch"] for row in committed] == [1] and _epochs(out) == [1, 2]  # the old run's rows
    monkeypatch.setattr(engine, "write_csv_atomic", real)
    train(_config(shared_fashion_root, out), model=_tiny())
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]
    assert metrics["train_loss"].iloc[0] == pytest.approx(committed[0]["train_loss"])  # the new run's epoch 1


def test_deleted_or_damaged_metrics_are_rebuilt_from_the_checkpoint(shared_fashion_root, tmp_path):
    out = tmp_path / "run"
    train(_config(shared_fashion_root, out, overrides={"epochs": 1, "batch_size": 32}), model=_tiny())
    (out / "metrics.csv").unlink()
    train(_config(shared_fashion_root, out, overrides={"epochs": 2, "batch_size": 32}, extend=True), model=_tiny())
    assert _epochs(out) == [1, 2]
    (out / "metrics.csv").write_bytes(b"")
    with pytest.warns(MissingHistoryWarning, match=r"metrics.csv is empty \(0 bytes\); rebuilt from the history"):
        last = train(_config(shared_fashion_root, out), model=_tiny())
    assert last["epoch"] == 2 and _epochs(out) == [1, 2]


def _legacy(out):
    """The checkpoint as an earlier version of the suite wrote it: no metrics history inside."""
    payload = _checkpoint(out)
    del payload["history"]
    torch.save(payload, out / "checkpoint.pt")


def test_a_lost_history_that_cannot_be_rebuilt_is_named(shared_fashion_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = engine.evaluate
    calls = {"n": 0}

    def dies_in_epoch_three(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", dies_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train(_config(shared_fashion_root, out, overrides={"epochs": 3, "batch_size": 32}), model=_tiny())
    monkeypatch.undo()
    _legacy(out)
    (out / "metrics.csv").unlink()
    with pytest.warns(MissingHistoryWarning, match=r"lacks the rows of epoch\(s\) 1-2 of the run"):
        train(_config(shared_fashion_root, out, overrides={"epochs": 3, "batch_size": 32}), model=_tiny())
    assert _epochs(out) == [3]


@pytest.mark.parametrize("content, message", [(b"", r"is empty \(0 bytes\)"),
                                              (b"step,top1\n1,10.0\n", "has no 'epoch' column")],
                         ids=["empty", "no-epoch-column"])
def test_an_unreadable_metrics_file_of_an_old_checkpoint_is_named(shared_fashion_root, tmp_path, content, message):
    out = tmp_path / "run"
    train(_config(shared_fashion_root, out, overrides={"epochs": 1, "batch_size": 32}), model=_tiny())
    _legacy(out)
    (out / "metrics.csv").write_bytes(content)
    with pytest.raises(MetricsFileError, match=f"cannot resume: metrics file {re.escape(str(out / 'metrics.csv'))} "
                                               f"{message}"):
        train(_config(shared_fashion_root, out, overrides={"epochs": 1, "batch_size": 32}), model=_tiny())


@pytest.mark.parametrize("content, message", [(b"", r"is empty \(0 bytes\)"), (b"a,b\n1,2\n", "no 'epoch' column"),
                                              (b"epoch\nfirst\n", "not epoch numbers")],
                         ids=["empty", "no-epoch-column", "text-epochs"])
def test_read_metrics_names_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "metrics.csv"
    path.write_bytes(content)
    with pytest.raises(MetricsFileError, match=message) as info:
        read_metrics(path)
    assert str(path) in str(info.value)


def test_a_full_disk_leaves_no_metrics_row_without_its_checkpoint(shared_fashion_root, tmp_path, monkeypatch,
                                                                  capsys):
    out = tmp_path / "run"
    real = torch.save
    calls = {"n": 0}

    def disk_fills_in_epoch_two(payload, handle, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            handle.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(payload, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_in_epoch_two)
    with pytest.raises(DiskFullError, match=r"disk full: cannot write .*checkpoint.pt \(No space left on device\); "
                                            "it is unchanged and no partial file is left"):
        train(_config(shared_fashion_root, out), model=_tiny())
    assert _epochs(out) == [1] and _checkpoint(out)["epoch"] == 0 and _leftovers(out) == []
