"""The throughput experiment end to end on tiny settings: CSV rows, ratios table, roofline, ONNX."""

import pandas as pd
import pytest

from replication import cli
from replication.report import roofline


@pytest.mark.parametrize("onnx", [False, True], ids=["pytorch", "pytorch+onnxruntime"])
def test_throughput_command_writes_rows_ratios_and_roofline(tmp_path, onnx):
    if onnx:
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    output = tmp_path / "speed.csv"
    args = ["throughput", "--dataset", "CIFAR10", "--table", "table2_mobilenet", "--device", "cpu",
            "--batch-size", "2", "--warmup", "1", "--iters", "1", "--repeats", "2", "--profile", "test",
            "--note", "CPU smoke test", "--rounds", "2", "--max-rounds", "2", "--output", str(output)]
    assert cli.main(args + (["--onnx"] if onnx else [])) == 0
    frame = pd.read_csv(output)
    assert set(frame["status"]) == {"ok"}
    assert (frame["profile"] == "test").all() and (frame["batch_size"] == 2).all()
    singles, pairs = frame[frame["measure"] == "single"], frame[frame["measure"] == "pair"]
    assert {"train", "deploy"} <= set(singles["form"])
    assert singles["macs_per_image"].gt(0).all() and singles["peak_flops"].gt(0).all()
    # Table 2 has no RMNet row: each model's deploy form over its training form is the paired ratio
    assert sorted(pairs["model"]) == ["mobilenetv1_cifar", "mobilenetv2_rm_cifar"]
    assert (pairs["ratio_kind"] == "deploy_over_train").all() and (pairs["rounds"] == 2).all()
    if onnx:
        ort = singles[singles["runtime"] == "onnxruntime"]
        assert len(ort) == len(singles) / 2 and ort["onnx_max_rel_error"].le(1e-5).all()
    table = (tmp_path / "speed.md").read_text()
    assert "MobileNetV1" in table and "deploy_over_train" in table
    v1 = pairs[pairs["model"] == "mobilenetv1_cifar"].iloc[0]
    assert f"{v1['ratio']:.2f} [{v1['ratio_ci_low']:.2f}, {v1['ratio_ci_high']:.2f}]" in table
    paths = roofline.plot(output, tmp_path / "roofline")
    assert all(p.stat().st_size > 0 for p in paths)


def test_unmatched_filters_are_reported(capsys, tmp_path):
    assert cli.main(["throughput", "--model", "no_such_model", "--device", "cpu"]) == 2
    assert "unknown model 'no_such_model'" in capsys.readouterr().err  # a name that is no paper row is timed as a model
    assert cli.main(["throughput", "--model", "resnet34_cifar", "--dataset", "ImageNet", "--device", "cpu"]) == 2
    assert "no paper rows match" in capsys.readouterr().err
    missing = tmp_path / "predicted.csv"
    assert cli.main(["throughput", "--device", "cpu", "--predictions", str(missing)]) == 2
    assert "--predictions" in capsys.readouterr().err
