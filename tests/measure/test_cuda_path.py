"""Every option of the GPU timing path, run through the same code on the CPU: autocast (bf16),
channels_last, torch.compile, synchronisation around the timed region, and out-of-memory handling
(the CPU allocator's "can't allocate memory" and an input batch that cannot be allocated at all)."""

import pandas as pd
import pytest
import torch
from torch import nn

from replication.experiments import throughput as throughput_experiment
from replication.experiments.paper_rows import PaperRow
from replication.measure import throughput
from replication.measure.paired import measure_pair
from replication.measure.throughput import ThroughputConfig, ThroughputError, measure_throughput, prepare
from replication.report import roofline, throughput_table

SMALL = dict(batch_size=2, input_size=(3, 8, 8), warmup=1, iters=1, repeats=1, device="cpu")
ALLOCATOR_ERROR = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                   "you tried to allocate 1125899906842624 bytes. Error code 12 (Cannot allocate memory)")


class Probe(nn.Module):
    """A conv that records, per call, its output dtype and whether input and weight are channels_last."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        out = self.conv(x)
        self.record((out.dtype, x.is_contiguous(memory_format=torch.channels_last),
                     self.conv.weight.is_contiguous(memory_format=torch.channels_last)))
        return out


def _probe() -> tuple[Probe, list]:
    seen: list = []
    probe = Probe()
    probe.record = lambda item: seen.append(item)  # a function is not deep-copied with the module
    return probe, seen


def test_bf16_autocast_on_the_cpu_runs_convs_in_bf16_single_and_paired():
    probe, seen = _probe()
    measure_throughput(probe, ThroughputConfig(**SMALL, dtype="bfloat16"))
    assert seen and {dtype for dtype, _, _ in seen} == {torch.bfloat16}
    seen.clear()
    measure_pair(probe, probe, ThroughputConfig(**SMALL, dtype="bfloat16"), rounds=2, max_rounds=2)
    assert seen and {dtype for dtype, _, _ in seen} == {torch.bfloat16}
    seen.clear()
    measure_throughput(probe, ThroughputConfig(**SMALL))
    assert {dtype for dtype, _, _ in seen} == {torch.float32}


def test_channels_last_on_the_cpu_converts_input_and_weights():
    probe, seen = _probe()
    measure_pair(probe, probe, ThroughputConfig(**SMALL, channels_last=True), rounds=2, max_rounds=2)
    assert seen and all(x_last and w_last for _, x_last, w_last in seen)
    seen.clear()
    measure_throughput(probe, ThroughputConfig(**SMALL))
    assert not any(x_last for _, x_last, _ in seen)


def test_compile_on_the_cpu_goes_through_torch_compile():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    config = ThroughputConfig(**SMALL, compile=True, compile_backend="eager")
    compiled, x = prepare(model, config)
    assert isinstance(compiled, torch._dynamo.eval_frame.OptimizedModule)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model.eval()(x))
    result = measure_throughput(model, config)
    row = throughput.result_row("seq", "train", config, result)
    assert result.images_per_sec > 0 and row["compile"] and row["compile_backend"] == "eager"


@pytest.mark.slow
def test_compile_with_inductor_on_the_cpu():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    result = measure_throughput(model, ThroughputConfig(**SMALL, compile=True))
    assert result.images_per_sec > 0


def test_timed_region_is_bracketed_by_synchronisation(monkeypatch):
    events = []
    monkeypatch.setattr(throughput, "synchronizer", lambda device: lambda: events.append("sync"))

    class Logged(nn.Module):
        def forward(self, x):
            events.append("forward")
            return x

    ticks = iter(range(100))

    def timer():
        events.append("clock")
        return float(next(ticks))

    measure_throughput(Logged(), ThroughputConfig(**{**SMALL, "warmup": 1, "iters": 2}), timer=timer)
    # shape check and warm-up untimed, then: sync, clock, 2 timed batches, sync, clock
    assert events == ["forward", "forward", "sync", "clock", "forward", "forward", "sync", "clock"]
    monkeypatch.undo()
    calls = []  # on CUDA the synchroniser waits for the named device's kernels; on the CPU it does nothing
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    throughput.synchronizer("cuda:1")()
    throughput.synchronizer("cpu")()
    assert calls == [torch.device("cuda:1")]


# ------------------------------------------------------------------------------------------ OOM


def test_the_cpu_allocators_error_is_out_of_memory():
    class Hungry(nn.Module):
        def forward(self, x):
            raise RuntimeError(ALLOCATOR_ERROR)

    with pytest.raises(ThroughputError, match="does not fit in cpu memory") as caught:
        measure_throughput(Hungry(), ThroughputConfig(**SMALL), name="hungry")
    assert caught.value.out_of_memory and "hungry" in str(caught.value)


def test_a_real_failed_allocation_in_the_forward_pass_is_out_of_memory():
    class Huge(nn.Module):
        def forward(self, x):
            return torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: the allocator refuses at once

    with pytest.raises(ThroughputError) as caught:
        measure_throughput(Huge(), ThroughputConfig(**SMALL))
    assert caught.value.out_of_memory


def test_an_input_that_cannot_be_allocated_is_refused_before_allocating(monkeypatch):
    def no_randn(*args, **kwargs):
        raise AssertionError("the input must not be allocated")

    config = ThroughputConfig(**{**SMALL, "batch_size": 10**9, "input_size": (3, 224, 224)})  # 600 TB
    monkeypatch.setattr(torch, "randn", no_randn)
    with pytest.raises(ThroughputError, match="input batch alone needs") as caught:
        measure_throughput(nn.Conv2d(3, 4, 3), config)
    assert caught.value.out_of_memory
    monkeypatch.undo()
    # where free memory is unknown, the allocation itself fails and is reported the same way
    monkeypatch.setattr(throughput, "available_memory", lambda device: None)
    with pytest.raises(ThroughputError) as caught:
        measure_throughput(nn.Conv2d(3, 4, 3), config)
    assert caught.value.out_of_memory
    with pytest.raises(ThroughputError) as caught:
        measure_pair(nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3), config)
    assert caught.value.out_of_memory


TINY = {"resnet34_cifar": {"channels": [4, 8, 16, 32]},
        "rmnet26x3_32_cifar": {"widths": [4, 8, 16, 32], "group_width": 4}}


def _tiny_rows(monkeypatch) -> list:
    create = throughput_experiment.zoo.create
    monkeypatch.setattr(throughput_experiment.zoo, "create", lambda name, **kw: create(name, **kw, **TINY[name]))
    rows = []
    for backbone, model in (("ResNet 34", "resnet34_cifar"), ("RMNet 26x3_32", "rmnet26x3_32_cifar")):
        paper = PaperRow("table1_sota", "CIFAR10", backbone, model, 10, 32)
        rows.append(throughput_experiment.TimingRow(paper, "table1_sota/CIFAR10", ("train", "deploy"),
                                                    throughput_experiment.paper_form(backbone)))
    return rows


def test_experiment_rows_pairs_and_table(monkeypatch, tmp_path):
    output = tmp_path / "speed.csv"
    config = ThroughputConfig(batch_size=2, input_size=(3, 32, 32), warmup=1, iters=1, repeats=1, device="cpu")
    pairs = throughput_experiment.PairSettings(rounds=2, max_rounds=2)
    throughput_experiment.run(output, _tiny_rows(monkeypatch), config, profile="test", pairs=pairs)
    frame = pd.read_csv(output)
    singles, paired = frame[frame["measure"] == "single"], frame[frame["measure"] == "pair"]
    assert len(singles) == 4 and set(singles["status"]) == {"ok"}
    assert (singles["flops_per_image"] == 2 * singles["macs_per_image"]).all()  # cost model == flop_counter
    assert singles["bytes_per_image"].gt(0).all() and singles["bandwidth"].gt(0).all()
    assert {"load_start", "load_end", "busy", "other_cpu"} <= set(singles.columns)
    assert sorted(paired["ratio_kind"]) == ["deploy_over_train", "deploy_over_train", "rmnet_over_this"]
    assert paired["pair_id"].is_unique and (paired["rounds"] == 2).all()
    assert (paired["ratio_ci_low"] <= paired["ratio"]).all() and (paired["ratio"] <= paired["ratio_ci_high"]).all()
    rmnet_pair = paired[paired["ratio_kind"] == "rmnet_over_this"].iloc[0]
    assert (rmnet_pair["a_model"], rmnet_pair["a_form"], rmnet_pair["b_model"], rmnet_pair["b_form"]) == (
        "rmnet26x3_32_cifar", "deploy", "resnet34_cifar", "train")
    table = throughput_table.ratios(frame)
    resnet = table[table["backbone"] == "ResNet 34"].iloc[0]
    assert resnet["rmnet_over_this_paired"] and resnet["rmnet_over_this"] == pytest.approx(rmnet_pair["ratio"])
    throughput_table.build(output, tmp_path / "speed.md")
    text = (tmp_path / "speed.md").read_text()
    assert f"{rmnet_pair['ratio']:.2f} [{rmnet_pair['ratio_ci_low']:.2f}, {rmnet_pair['ratio_ci_high']:.2f}]" in text
    points = roofline.roofline_points(frame)  # measured FLOP/s at the cost model's intensity, singles only
    assert len(points) == 4 and (points["achieved_flops"] == points["images_per_sec"] * points["flops_per_image"]).all()
    assert all(path.stat().st_size > 0 for path in roofline.plot(output, tmp_path / "roofline"))


def test_experiment_records_oom_rows_and_the_table_still_builds(monkeypatch, tmp_path):
    output = tmp_path / "speed.csv"
    config = ThroughputConfig(batch_size=10**9, input_size=(3, 32, 32), warmup=1, iters=1, repeats=1, device="cpu")
    throughput_experiment.run(output, _tiny_rows(monkeypatch), config, profile="test",
                              pairs=throughput_experiment.PairSettings(rounds=2, max_rounds=2))
    frame = pd.read_csv(output)
    assert set(frame["status"]) == {"oom"} and (frame["batch_size"] == 10**9).all()
    assert set(frame["measure"]) == {"single", "pair"} and frame["device_name"].notna().all()
    throughput_table.build(output, tmp_path / "speed.md")  # used to fail with KeyError: 'device_name'
    text = (tmp_path / "speed.md").read_text()
    assert "No successful measurement" in text and "Not measured" in text and "| oom" in text
