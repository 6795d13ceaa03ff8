"""Timing correctness without a GPU: warm-up is excluded, timed batches are counted exactly, and bad
settings get clear errors. A fake clock makes the checks exact rather than timing-dependent."""

import math

import pandas as pd
import pytest
import torch
from torch import nn

from replication.atomic_io import append_rows_atomic
from replication.measure.throughput import ThroughputConfig, ThroughputError, measure_throughput, result_row


class FakeClock:
    """Advances only when the model runs: warm-up batches cost 1000 s, timed ones 1 s."""

    def __init__(self, warmup_calls: int) -> None:
        self.now = 0.0
        self.calls = 0
        self.warmup_calls = warmup_calls

    def forward_called(self) -> None:
        self.calls += 1
        self.now += 1000.0 if self.calls <= self.warmup_calls else 1.0


def test_warmup_is_excluded_and_timed_batches_are_exact():
    config = ThroughputConfig(batch_size=4, input_size=(3, 2, 2), warmup=3, iters=5, repeats=1, device="cpu")
    clock = FakeClock(warmup_calls=1 + config.warmup)  # the shape check, then the warm-up batches

    class Slow(nn.Module):
        def forward(self, x):
            clock.forward_called()
            return x

    result = measure_throughput(Slow(), config, timer=lambda: clock.now)
    assert clock.calls == 1 + config.warmup + config.iters
    assert result.timed_batches == config.iters
    assert result.ms_per_batch == 1000.0  # 1 s per timed batch: no warm-up second leaked in
    assert result.images_per_sec == config.batch_size / 1.0


def test_repeats_give_median_and_spread():
    config = ThroughputConfig(batch_size=2, input_size=(1, 1, 1), warmup=0, iters=2, repeats=3, device="cpu")
    durations = iter([1.0, 1.0, 4.0, 4.0, 2.0, 2.0])  # per timed batch: repeats take 2 s, 8 s, 4 s
    now = [0.0]

    class Stepped(nn.Module):
        def __init__(self):
            super().__init__()
            self.checked = False

        def forward(self, x):
            if self.checked:
                now[0] += next(durations)
            self.checked = True
            return x

    result = measure_throughput(Stepped(), config, timer=lambda: now[0])
    assert result.repeat_images_per_sec == [2.0, 0.5, 1.0]
    assert result.images_per_sec == 1.0 and result.images_per_sec_min == 0.5 and result.images_per_sec_max == 2.0
    assert result.ms_per_batch == 2000.0
    assert result.timed_batches == 6


def test_input_size_the_model_cannot_take_is_named():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 224 * 224, 10))
    config = ThroughputConfig(batch_size=2, input_size=(3, 32, 32), warmup=0, iters=1, repeats=1, device="cpu")
    with pytest.raises(ThroughputError, match=r"cannot take input \(2, 3, 32, 32\)"):
        measure_throughput(model, config, name="flat-linear")


def test_out_of_memory_is_reported_without_changing_the_batch():
    class Hungry(nn.Module):
        def forward(self, x):
            if x.shape[0] > 4:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return x

    config = ThroughputConfig(batch_size=64, input_size=(1, 1, 1), warmup=0, iters=1, repeats=1, device="cpu")
    with pytest.raises(ThroughputError, match="batch 64 .* does not fit .* not changed"):
        measure_throughput(Hungry(), config)
    row = result_row("hungry", "train", config, None, status="oom")
    assert row["batch_size"] == 64 and row["status"] == "oom" and math.isnan(row["images_per_sec"])


def test_measuring_leaves_the_callers_model_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    config = ThroughputConfig(batch_size=2, input_size=(3, 8, 8), warmup=1, iters=1, repeats=1, device="cpu",
                              channels_last=True)
    measure_throughput(model, config)
    assert model.training
    assert model[0].weight.is_contiguous()


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="dtype"):
        ThroughputConfig(dtype="float8")
    with pytest.raises(ValueError, match="iters"):
        ThroughputConfig(iters=0)


def test_rows_record_their_context():
    config = ThroughputConfig(batch_size=8, input_size=(3, 32, 32), warmup=1, iters=2, repeats=2, device="cpu",
                              dtype="bfloat16", threads=1)
    result = measure_throughput(nn.Conv2d(3, 3, 1), config)
    row = result_row("conv", "deploy", config, result, macs=9)
    for key in ("device_name", "torch_version", "dtype", "batch_size", "input_size", "threads", "repeats",
                "warmup", "iters", "channels_last", "compile", "images_per_sec", "ms_per_batch", "runtime"):
        assert key in row
    assert row["dtype"] == "bfloat16" and row["threads"] == 1 and row["input_size"] == "3x32x32"


def test_appending_rows_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "speed.csv"
    append_rows_atomic([{"model": "a", "images_per_sec": 1.0}], path)
    append_rows_atomic([{"model": "b", "images_per_sec": 2.0, "extra": "x"}], path)
    frame = pd.read_csv(path)
    assert list(frame["model"]) == ["a", "b"] and "extra" in frame.columns

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        append_rows_atomic([{"model": "c", "images_per_sec": 3.0}], path)
    assert list(pd.read_csv(path)["model"]) == ["a", "b"]
    assert [p.name for p in tmp_path.iterdir()] == ["speed.csv"]
