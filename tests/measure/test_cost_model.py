"""The cost model: FLOPs equal torch.utils.flop_counter on every model, bytes equal hand counts, the
roofline arithmetic, device specs, and the predictions table."""

import math

import pytest
import timm
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from replication import rm, zoo
from replication.experiments.paper_rows import PAPER_ROWS
from replication.measure import cost_model
from replication.measure.cost_model import CostMode, DeviceSpec, device_spec, predict, predict_time, trace
from replication.models import registered_models

# Every model this project registers, and every model a paper row names (timm / torchvision included).
MODELS = sorted(set(registered_models()) | {row.model for row in PAPER_ROWS})


def _meta_forms(name: str) -> dict[str, nn.Module]:
    with torch.device("meta"):
        model = zoo.create(name).eval()
        return {"train": model, "deploy": rm.convert(model)}


def _flop_counter(model: nn.Module, shape: tuple[int, ...]) -> int:
    x = torch.empty(shape, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("name", MODELS)
def test_flops_equal_flop_counter_on_every_model(name):
    side = timm.models.get_pretrained_cfg(name.split(":")[-1]).input_size[-1] if ":" not in name else 224
    shape = (2, 3, side, side)
    for form, model in _meta_forms(name).items():
        cost = trace(model, shape)
        assert cost.flops == _flop_counter(model, shape), f"{name} ({form})"
        assert cost.flops > 0 and len(cost.kernels) > 0 and cost.bytes > cost.weight_bytes > 0


def test_a_conv_moves_its_input_weights_and_output():
    conv = nn.Conv2d(3, 8, 3)
    cost = trace(conv, (2, 3, 10, 10))
    [op] = cost.kernels
    assert op.category == "conv" and op.dense_3x3
    assert op.bytes_read == 2 * 3 * 10 * 10 * 4            # the input
    assert op.bytes_weights == (8 * 3 * 3 * 3 + 8) * 4       # weight and bias
    assert op.bytes_written == 2 * 8 * 8 * 8 * 4            # the output
    assert op.flops == 2 * (2 * 8 * 8 * 8) * (3 * 3 * 3) == _flop_counter(conv, (2, 3, 10, 10))
    assert not trace(nn.Conv2d(8, 8, 3, groups=2), (1, 8, 6, 6)).kernels[0].dense_3x3
    assert not trace(nn.Conv2d(8, 8, 3, stride=2), (1, 8, 6, 6)).kernels[0].dense_3x3


def test_an_eval_batchnorm_reads_input_and_four_vectors_and_writes_output():
    bn = nn.BatchNorm2d(8).eval()
    cost = trace(bn, (2, 8, 5, 5))
    [op] = cost.kernels
    assert op.category == "batch_norm" and op.flops == 0
    assert op.bytes_read == 2 * 8 * 5 * 5 * 4
    assert op.bytes_weights == 4 * 8 * 4                     # weight, bias, running mean, running var
    assert op.bytes_written == 2 * 8 * 5 * 5 * 4


def test_an_add_reads_both_operands_and_writes_once():
    a, b = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    with CostMode() as mode:
        a + b
    [op] = mode.ops
    assert (op.category, op.bytes_read, op.bytes_weights, op.bytes_written) == ("add", 2 * 1600, 0, 1600)

    class HalvesAdded(nn.Module):  # views (chunk) move nothing; the add reads each half once
        def forward(self, x):
            first, second = x.chunk(2, dim=1)
            return first + second

    cost = trace(HalvesAdded(), (2, 8, 5, 5))
    assert [op.category for op in cost.kernels] == ["add"]
    assert cost.kernels[0].bytes_read == 2 * (2 * 4 * 5 * 5 * 4) and cost.kernels[0].bytes_written == 2 * 4 * 5 * 5 * 4
    assert cost.bytes == cost.kernels[0].bytes


def test_a_broadcast_operand_is_read_once_and_fp16_halves_the_bytes():
    x, bias = torch.randn(4, 8, 5, 5), torch.randn(1, 8, 1, 1)
    with CostMode() as mode:
        x + bias.expand(4, 8, 5, 5)
    assert mode.ops[-1].bytes_read == (4 * 8 * 25 + 8) * 4
    bn = nn.BatchNorm2d(8).eval()
    full, half = trace(bn, (2, 8, 5, 5)), trace(bn, (2, 8, 5, 5), dtype="fp16")
    assert half.bytes * 2 == full.bytes


def test_roofline_per_kernel_plus_launches():
    spec = DeviceSpec("toy", "toy", {"fp32": 1e9}, bandwidth=1e6, launch_s=1e-6, source="test")
    conv = trace(nn.Conv2d(3, 8, 3), (2, 3, 10, 10))
    prediction = predict(conv, spec)
    memory = (2400 + 896 + 4096) / 1e6                        # memory-bound: bytes / bandwidth
    assert prediction.memory_s == pytest.approx(memory) and prediction.compute_s == 0
    assert prediction.seconds == pytest.approx(memory + 1e-6) and prediction.kernels == 1
    fast_memory = DeviceSpec("toy2", "toy2", {"fp32": 1e6}, bandwidth=1e12, launch_s=0.0, source="test")
    assert predict(conv, fast_memory).compute_s == pytest.approx(55296 / 1e6)  # compute-bound: FLOPs / peak
    winograd = predict(conv, fast_memory, winograd=2.25)
    assert winograd.compute_s == pytest.approx(55296 / 2.25 / 1e6)
    v100 = device_spec("v100")
    assert predict_time(nn.Conv2d(3, 8, 3), (2, 3, 10, 10), "v100") == pytest.approx(
        max(55296 / 15.7e12, 7392 / 900e9) + v100.launch_s)


def test_device_specs_come_from_the_data_sheets():
    specs = cost_model.load_devices()
    assert {"v100", "a100", "h100"} <= set(specs)
    assert device_spec("Tesla V100-SXM2-16GB").key == "v100" and device_spec("NVIDIA H100 80GB HBM3").key == "h100"
    assert specs["v100"].peak("fp32") == 15.7e12 and specs["h100"].bandwidth == 3.35e12
    for spec in specs.values():
        assert "data sheet" in spec.source and spec.launch_s > 0
    with pytest.raises(ValueError, match="no tf32 peak"):
        specs["v100"].peak("tf32")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        device_spec("tpu")
    with pytest.raises(ValueError, match="dtype"):
        trace(nn.Conv2d(3, 3, 1), (1, 3, 4, 4), dtype="int8")


def test_tracing_leaves_the_callers_model_alone_and_meta_conversion_matches_the_cpu_one():
    torch.manual_seed(0)
    model = timm.create_model("rmnet26x3_32_cifar").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cpu = trace(rm.convert(model), (2, 3, 32, 32))
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu"
    meta = trace(_meta_forms("rmnet26x3_32_cifar")["deploy"], (2, 3, 32, 32))
    assert (meta.flops, meta.bytes, len(meta.kernels)) == (cpu.flops, cpu.bytes, len(cpu.kernels))


def test_predictions_table_for_table2():
    from replication.experiments import cost_predictions
    from replication.report import cost_model_table

    frame = cost_predictions.run(tables=("table2_mobilenet",), datasets=("CIFAR10",), targets=(("v100", "fp32"),))
    assert set(frame["form"]) == {"train", "deploy"} and (frame["batch_size"] == 128).all()
    assert frame["predicted_images_per_sec"].gt(0).all()
    parts = frame[["predicted_compute_s", "predicted_memory_s", "predicted_launch_s"]].sum(axis=1)
    assert parts.to_numpy() == pytest.approx(frame["predicted_seconds"].to_numpy())
    rows = cost_model_table.paper_rows(frame)
    assert list(rows["backbone"]) == ["MobileNetV2", "RMNetV1", "MobileNetV1"]
    ratios = cost_model_table.ratio_rows(rows)
    assert list(ratios["baseline"]) == ["MobileNetV2", "MobileNetV1"]
    assert ratios["paper_ratio"].iloc[0] == pytest.approx(27720 / 19119)
    assert not math.isnan(ratios["predicted_ratio"].iloc[0])
