"""``rmnet convert --output`` in every format, ``rmnet throughput`` on any model, and the CLI's messages."""

import re
import subprocess
import sys

import pytest
import torch
import torchvision

from replication import cli, rm
from replication.rm.plain_io import load_plain
from replication.rm.verify import randomize_batchnorm_

NARROW = ["--model", "resnet18_cifar", "--model-kwargs", '{"channels": [8, 16, 32, 64], "stem_width": 8}',
          "--num-classes", "10", "--input-size", "32"]
ANSI = re.compile(r"\x1b\[")


def _error_line(printed: str) -> float:
    found = re.search(r"file check: .* max relative error ([0-9.e+-]+)", printed)
    assert found, printed
    return float(found.group(1))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".pt2", ".onnx"])
def test_convert_writes_the_format_its_suffix_names_and_checks_the_file(tmp_path, capsys, suffix):
    if suffix == ".onnx":
        pytest.importorskip("onnxruntime")
    output = tmp_path / f"plain{suffix}"
    assert cli.main(["convert", *NARROW, "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert f"saved {output}" in printed and "float32" in printed
    assert _error_line(printed) <= 1e-4  # a float32 file against the float64 source model
    if suffix in (".pt", ".safetensors"):
        plain = load_plain(output)
        assert next(plain.parameters()).dtype == torch.float32
    elif suffix == ".pt2":
        program = torch.export.load(output)
        assert program.module()(torch.randn(3, 3, 32, 32)).shape == (3, 10)  # dynamic batch
    else:
        assert output.read_bytes()[:2] != b"PK"  # an ONNX protobuf, not a torch zip


def test_convert_save_dtype_float64_keeps_float64_rounding(tmp_path, capsys):
    output = tmp_path / "plain.safetensors"
    assert cli.main(["convert", *NARROW, "--save-dtype", "float64", "--output", str(output)]) == 0
    assert _error_line(capsys.readouterr().out) <= 1e-10
    assert next(load_plain(output).parameters()).dtype == torch.float64


def test_float32_file_is_half_the_float64_one(tmp_path, capsys):
    small, large = tmp_path / "f32.pt", tmp_path / "f64.pt"
    assert cli.main(["convert", *NARROW, "--output", str(small)]) == 0
    assert cli.main(["convert", *NARROW, "--save-dtype", "float64", "--output", str(large)]) == 0
    assert 0.45 < small.stat().st_size / large.stat().st_size < 0.55


def test_convert_refuses_an_unknown_suffix_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rm, "convert", lambda *a, **k: pytest.fail("converted before checking --output"))
    assert cli.main(["convert", *NARROW, "--output", str(tmp_path / "plain.h5")]) == 2
    err = capsys.readouterr().err
    assert "plain.h5" in err and ".onnx" in err and ".safetensors" in err
    assert not list(tmp_path.iterdir())


def test_convert_without_output_says_nothing_was_saved(capsys):
    assert cli.main(["convert", *NARROW]) == 0
    assert "nothing saved" in capsys.readouterr().out


def test_convert_features_only_model(tmp_path, capsys):
    output = tmp_path / "features.pt"
    assert cli.main(["convert", "--model", "mobilenetv2_035", "--model-kwargs", '{"features_only": true}',
                     "--input-size", "32", "--output", str(output)]) == 0
    plain = load_plain(output)
    assert isinstance(plain, rm.PlainFeatures) and len(plain(torch.randn(1, 3, 32, 32))) == 5


def test_convert_help_shows_the_defaults():
    text = cli.build_parser()._subparsers._group_actions[0].choices["convert"].format_help()  # type: ignore[union-attr]
    flat = " ".join(text.split())
    assert "--save-dtype" in flat and "(default: float32)" in flat
    assert "--check-dtype" in flat and "(default: float64)" in flat


def test_every_help_is_plain_text_under_the_name_rmnet():
    commands = ["convert", "inspect", "counts", "throughput", "cost-model", "train"]
    for argv in [[]] + [[command] for command in commands]:
        result = subprocess.run([sys.executable, "-m", "replication", *argv, "--help"], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: rmnet"), result.stdout[:80]
        for markup in ("``", ":func:", ":class:", "python -m replication", "%%"):
            assert markup not in result.stdout, (argv, markup)


def test_pickled_model_checkpoint_error_is_whole_plain_and_says_how_to_save_a_state_dict(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torchvision.models.resnet18(), path)  # a whole pickled module, not weights
    result = subprocess.run([sys.executable, "-m", "replication", "convert", "--model", "torchvision:resnet18",
                             "--checkpoint", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    err = result.stderr.strip()
    assert not ANSI.search(err) and "Traceback" not in err and len(err.splitlines()) == 1
    assert "torchvision.models.resnet.ResNet" in err and "model.state_dict()" in err
    assert err.endswith("pass weights.pth.")  # whole, not cut off


@pytest.mark.parametrize("model, code", [("resnet18", 0), ("seresnet18", 1)])
def test_inspect_check_exits_non_zero_unless_exact(model, code, capsys):
    assert cli.main(["inspect", "--model", model, "--input-size", "64", "--check"]) == code
    if code:
        assert "not 'exact'" in capsys.readouterr().err


def test_inspect_without_check_exits_zero_on_a_refusal():
    assert cli.main(["inspect", "--model", "seresnet18", "--input-size", "64"]) == 0


QUICK = ["--batch-size", "2", "--warmup", "1", "--iters", "2", "--repeats", "2", "--device", "cpu",
         "--input-size", "32"]


def test_throughput_times_any_torchvision_model(capsys):
    assert cli.main(["throughput", "--model", "torchvision:mobilenet_v3_small", *QUICK]) == 0
    printed = capsys.readouterr().out
    assert "torchvision:mobilenet_v3_small:" in printed and "images/s" in printed
    assert "protocol: batch 2, input 3x32x32" in printed


def test_throughput_compare_rm_prints_a_paired_ratio_with_its_ci(tmp_path, capsys):
    output = tmp_path / "pair.csv"
    assert cli.main(["throughput", "--model", "resnet18_cifar", *QUICK, "--rounds", "2", "--max-rounds", "2",
                     "--compare-rm", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"speed ratio resnet18_cifar RM form / resnet18_cifar: [0-9.]+ \[[0-9.]+, [0-9.]+\]", printed)
    import pandas as pd

    row = pd.read_csv(output).iloc[0]
    assert row["ratio_ci_low"] <= row["ratio"] <= row["ratio_ci_high"] and row["rounds"] == 2


def test_throughput_of_a_converted_file_against_a_timm_name(tmp_path, capsys):
    plain_path = tmp_path / "plain.pt"
    assert cli.main(["convert", *NARROW, "--output", str(plain_path)]) == 0
    capsys.readouterr()
    assert cli.main(["throughput", "--model", str(plain_path), "--compare", "timm:resnet18_cifar", *QUICK,
                     "--rounds", "2", "--max-rounds", "2", "--num-classes", "10"]) == 0
    assert "speed ratio plain.pt / timm:resnet18_cifar:" in capsys.readouterr().out


def test_throughput_of_a_bare_state_dict_needs_arch(tmp_path, capsys):
    path = tmp_path / "weights.pth"
    model = randomize_batchnorm_(torchvision.models.resnet18(num_classes=3))
    torch.save(model.state_dict(), path)
    assert cli.main(["throughput", "--model", str(path), *QUICK]) == 2
    assert "--arch" in capsys.readouterr().err
    assert cli.main(["throughput", "--model", str(path), "--arch", "torchvision:resnet18", "--num-classes", "3",
                     *QUICK]) == 0


def test_throughput_compare_options_exclude_each_other(capsys):
    assert cli.main(["throughput", "--model", "resnet18", "--compare", "resnet34", "--compare-rm"]) == 2
    assert "exclude" in capsys.readouterr().err
