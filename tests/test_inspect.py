"""``python -m replication inspect``: the per-block RM report, its formats, and its errors."""

import io
import json

import pandas as pd
import pytest
import timm
import torch

from replication import rm
from replication.cli import main
from replication.inspection import STATUS_EXACT, STATUS_REFUSED, STATUS_SIZE, inspect_model
from replication.measure import count_macs, count_params


def test_converting_model_counts_match_a_real_conversion():
    """The meta-device report gives the numbers a real conversion and a real count give."""
    report = inspect_model("resnet18d", 64)
    assert report.status == STATUS_EXACT and report.device == "meta"
    assert report.residual_blocks == report.blocks_converted == 8
    blocks = [p for p in report.parts if p.residual]
    assert [p.path for p in blocks][:2] == ["layer1.0", "layer1.1"]
    assert all(p.status == STATUS_EXACT and p.reserved > 0 for p in blocks)
    assert [p.reserved for p in blocks] == [64, 64, 64, 128, 128, 256, 256, 512]  # the block input (dirac)

    model = timm.create_model("resnet18d").eval()
    plain = rm.convert(model)
    assert report.params_before == count_params(model)
    assert report.params_after == count_params(plain)
    assert report.macs_before == count_macs(model, (3, 64, 64))
    assert report.macs_after == count_macs(plain, (3, 64, 64))
    assert sum(p.params_before for p in report.parts) == report.params_before
    assert sum(p.macs_before for p in report.parts) == report.macs_before


def test_prelu_reserves_the_projection_outputs():
    report = inspect_model("resnet18d", 64, "prelu")
    downsampling = [p for p in report.parts if p.path in ("layer2.0", "layer3.0", "layer4.0")]
    assert [p.reserved for p in downsampling] == [128, 256, 512]


def test_refusing_model_names_every_squeeze_excitation():
    report = inspect_model("seresnet18", 64)
    assert report.status == STATUS_REFUSED
    blocks = [p for p in report.parts if p.residual]
    assert len(blocks) == 8 and report.blocks_converted == 0
    for block in blocks:
        assert block.status == STATUS_REFUSED
        assert block.failing_path == f"{block.path}.se" and block.failing_type == "SEModule"
        assert block.params_after is None and block.macs_before > 0
    assert report.failing_path == "layer1.0.se"
    assert all(p.status == STATUS_EXACT for p in report.parts if not p.residual)  # stem and head convert


def test_model_without_reader_is_refused_as_a_whole():
    report = inspect_model("vit_tiny_patch16_224")
    assert report.status == STATUS_REFUSED and report.parts == []
    assert report.failing_type == "VisionTransformer" and "no RM conversion" in report.reason
    assert report.macs_before > 0 and report.input_size == 224


def test_odd_size_is_reported_per_block():
    report = inspect_model("resnet18d", 36)  # 9x9 at layer2.0, 5x5 at layer3.0, 3x3 at layer4.0
    assert report.status == STATUS_SIZE
    sized = [p.path for p in report.parts if p.status == STATUS_SIZE]
    assert sized == ["layer2.0", "layer3.0", "layer4.0"]
    assert "9x9" in next(p.reason for p in report.parts if p.path == "layer2.0")


def test_caller_model_is_not_mutated():
    """Conversion re-parameterises RepVGG blocks in place: only a copy may see that."""
    with torch.device("meta"):  # shapes only: the structure is what the reader would change
        model = timm.create_model("repvgg_a0").eval()
    before = dict(model.named_parameters())
    report = inspect_model(model, 32)
    assert report.status == STATUS_EXACT and report.parts[1].module_type == "RepVggBlock"
    after = dict(model.named_parameters())
    assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)
    assert all(getattr(m, "reparam_conv", None) is None for m in model.modules())


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_cli_formats(capsys, fmt):
    assert main(["inspect", "--model", "resnet18d", "--input-size", "64", "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "table":
        assert "layer2.0" in out and "verdict: exact" in out
    elif fmt == "csv":
        frame = pd.read_csv(io.StringIO(out))
        assert list(frame["path"])[-1] == "total" and frame["status"].eq("exact").all()
        assert frame["reserved"].iloc[:-1].sum() == frame["reserved"].iloc[-1]
    else:
        data = json.loads(out)
        assert data["status"] == "exact" and len(data["parts"]) == 10


def test_cli_refusing_model_table_names_module(capsys):
    assert main(["inspect", "--model", "seresnet18", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "layer3.1.se (SEModule)" in out and "verdict: refused" in out


@pytest.mark.parametrize("args,message", [
    (["--model", "resnet18x"], "unknown model 'resnet18x'"),
    (["--model", "resnet18", "--input-size", "0"], "--input-size must be a positive integer, got 0"),
    (["--model", "resnet18", "--input-size", "abc"], "--input-size must be a positive integer, got 'abc'"),
    (["--model", "vit_tiny_patch16_224", "--input-size", "100"], "does not run at input size 100"),
])
def test_cli_bad_input_exits_2_with_one_message(capsys, args, message):
    assert main(["inspect", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_cli_adds_the_cost_models_predicted_speed_change(capsys):
    """--device asks the GPU cost model for residual time / plain time; the same ratio as predict_time."""
    from replication.measure.cost_model import predict_time

    assert main(["inspect", "--model", "resnet18", "--input-size", "64", "--format", "json", "--device", "h100",
                 "--predict-batch-size", "8"]) == 0
    speedup = json.loads(capsys.readouterr().out)["predicted_speedup"]
    model = timm.create_model("resnet18").eval()
    expected = predict_time(model, (8, 3, 64, 64), "h100") / predict_time(rm.convert(model), (8, 3, 64, 64), "h100")
    assert speedup == pytest.approx(expected, rel=1e-6)
    assert main(["inspect", "--model", "resnet18", "--input-size", "64"]) == 0
    assert "predicted" not in capsys.readouterr().out  # no device, no prediction
