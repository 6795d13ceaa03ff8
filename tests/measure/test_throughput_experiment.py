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
            "--note", "CPU smoke test", "--output", str(output)] + (["--onnx"] if onnx else [])
    assert cli.main(args) == 0
    frame = pd.read_csv(output)
    assert set(frame["status"]) == {"ok"}
    assert {"train", "deploy"} <= set(frame["form"])
    assert (frame["profile"] == "test").all() and (frame["batch_size"] == 2).all()
    assert frame["macs_per_image"].gt(0).all() and frame["peak_flops"].gt(0).all()
    if onnx:
        ort = frame[frame["runtime"] == "onnxruntime"]
        assert len(ort) == len(frame) / 2 and ort["onnx_max_rel_error"].le(1e-5).all()
    table = (tmp_path / "speed.md").read_text()
    assert "MobileNetV1" in table and "deploy_over_train" in table
    paths = roofline.plot(output, tmp_path / "roofline")
    assert all(p.stat().st_size > 0 for p in paths)


def test_unmatched_filters_are_reported(capsys):
    assert cli.main(["throughput", "--model", "no_such_model", "--device", "cpu"]) == 2
    assert "no paper rows match" in capsys.readouterr().err
