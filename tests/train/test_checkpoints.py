"""Checkpoints written by ``train`` describe their model; resuming from a wrong or damaged one is one
clear error that says how to start over."""

from pathlib import Path

import pytest
import torch

from replication import cli
from replication.data import DataConfig
from replication.rm.file_io import CheckpointError
from replication.train import TrainConfig, train
from replication.train.checkpoint import ModelSpec
from replication.train.engine import ResumeMismatchError

NARROW = '{"channels": [8, 16, 32, 64], "stem_width": 8}'


@pytest.fixture(scope="module")
def trained(shared_fashion_root, tmp_path_factory):
    """A Fashion-MNIST run of the `train` command with --model-kwargs (1 input channel, 16x16 images).
    Shared by the module's tests: they read it and must not change it."""
    out = tmp_path_factory.mktemp("run")
    code = cli.main(["train", "--model", "resnet18_cifar", "--model-kwargs", NARROW, "--data-root",
                     str(shared_fashion_root),
                     "--image-size", "16", "--epochs", "1", "--batch-size", "32", "--train-subset", "64",
                     "--test-subset", "32", "--device", "cpu", "--output-dir", str(out)])
    assert code == 0
    return out / "checkpoint.pt"


def test_train_checkpoint_records_how_to_rebuild_its_model(trained):
    spec = ModelSpec.from_checkpoint(torch.load(trained, weights_only=True))
    assert spec == ModelSpec(model="resnet18_cifar", num_classes=10, in_chans=1,
                             model_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, dataset="fashion_mnist",
                             image_size=16)


def test_convert_needs_nothing_but_the_checkpoint(trained, tmp_path, capsys):
    output = tmp_path / "plain.pt"
    assert cli.main(["convert", "--checkpoint", str(trained), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "resnet18_cifar: downsample=dirac, input 2x(1, 16, 16)" in printed
    from replication import rm
    from replication.rm.plain_io import load_plain

    model = ModelSpec.from_checkpoint(torch.load(trained, weights_only=True)).build()
    model.load_state_dict(torch.load(trained, weights_only=True)["model"])
    x = torch.randn(3, 1, 16, 16)
    assert rm.max_error(model.eval(), load_plain(output), x)["max_rel"] <= 1e-5


@pytest.mark.parametrize("flag, value, shown", [
    ("--model", "resnet34_cifar", '--model "resnet34_cifar" but the checkpoint\'s model has "resnet18_cifar"'),
    ("--model-kwargs", '{"stem_width": 16}', '--model-kwargs {"stem_width": 16} but the checkpoint\'s model has '
                                             '{"channels": [8, 16, 32, 64], "stem_width": 8}'),
    ("--num-classes", "100", "--num-classes 100 but the checkpoint's model has 10"),
])
def test_options_that_contradict_the_checkpoint_are_an_error(trained, capsys, flag, value, shown):
    assert cli.main(["convert", "--checkpoint", str(trained), flag, value]) == 2
    assert shown in capsys.readouterr().err


def test_options_that_agree_with_the_checkpoint_are_accepted(trained, capsys):
    assert cli.main(["convert", "--checkpoint", str(trained), "--model", "timm:resnet18_cifar", "--model-kwargs",
                     NARROW, "--num-classes", "10"]) == 0


def test_checkpoint_without_a_model_record_asks_for_model(tmp_path, capsys):
    import torchvision

    path = tmp_path / "bare.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    assert cli.main(["convert", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path} does not record which model it holds" in err and "name it with --model" in err
    assert cli.main(["convert", "--checkpoint", str(path), "--model", "torchvision:resnet18",
                     "--input-size", "32"]) == 0


def test_checkpoint_written_before_specs_were_recorded_is_rebuilt_from_its_config(trained, tmp_path, capsys):
    payload = torch.load(trained, weights_only=True)
    del payload["model_spec"]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    assert ModelSpec.from_checkpoint(payload) == ModelSpec.from_checkpoint(torch.load(trained, weights_only=True))
    assert cli.main(["convert", "--checkpoint", str(old)]) == 0


def _config(fashion_root, output, **kwargs):
    base = dict(model="resnet18_cifar", data=DataConfig("fashion_mnist", root=str(fashion_root), image_size=16,
                                                        train_subset=64, test_subset=32),
                overrides={"epochs": 1, "batch_size": 32}, output_dir=str(output), device="cpu",
                model_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8})
    return TrainConfig(**{**base, **kwargs})


def _copy_of(trained, tmp_path):
    import shutil

    return Path(shutil.copytree(trained.parent, tmp_path / "run"))


def test_resume_with_other_model_kwargs_is_a_mismatch_not_a_size_error(trained, shared_fashion_root, tmp_path):
    """The checkpoint's weights have other shapes: the settings must be compared before they are loaded."""
    run = _copy_of(trained, tmp_path)
    expected = r"model_kwargs: checkpoint .*'stem_width': 8.*now .*'stem_width': 16"
    with pytest.raises(ResumeMismatchError, match=expected):
        train(_config(shared_fashion_root, run, model_kwargs={"channels": [8, 16, 32, 64], "stem_width": 16},
                      overrides={"epochs": 2, "batch_size": 32}, extend=True))


def test_resume_with_other_model_kwargs_from_the_command_line(trained, shared_fashion_root, capsys):
    code = cli.main(["train", "--model", "resnet18_cifar", "--model-kwargs", '{"stem_width": 16}', "--data-root",
                     str(shared_fashion_root), "--image-size", "16", "--epochs", "1", "--batch-size", "32",
                     "--train-subset", "64", "--test-subset", "32", "--device", "cpu",
                     "--output-dir", str(trained.parent)])
    err = capsys.readouterr().err
    assert code == 2 and "model_kwargs: checkpoint" in err and "size mismatch" not in err


def test_corrupt_latest_checkpoint_says_how_to_start_over(trained, shared_fashion_root, tmp_path):
    run = _copy_of(trained, tmp_path)
    path = run / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as error:
        train(_config(shared_fashion_root, run, overrides={"epochs": 2, "batch_size": 32}, extend=True))
    message = str(error.value)
    assert "CRC-32" in message and "--no-resume" in message and f"delete {path}" in message
    train(_config(shared_fashion_root, run, resume=False))  # the way out it names works
    assert torch.load(path, weights_only=True)["epoch"] == 0


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("epochs", "two"), ("epochs", -1), ("lr", float("nan")),
                                          ("lr", "fast")])
def test_recipe_values_that_cannot_train_are_named(field, value):
    from replication.train import get_preset

    with pytest.raises(ValueError, match=f"training recipe: {field} must be"):
        get_preset("embedded", **{field: value})


def test_a_workflow_run_config_trains_through_the_train_command(shared_fashion_root, tmp_path, capsys):
    """The workflow's train rule: --run-config {run, training, data} instead of the model and data options,
    and --metrics for the copy of metrics.csv that is the rule's output."""
    import json

    run_config = {"run": {"model": "resnet18_cifar", "label": "ResNet 18", "model_kwargs": json.loads(NARROW)},
                  "training": {"preset": "embedded", "overrides": {"epochs": 1, "batch_size": 32}, "device": "cpu"},
                  "data": {"image_size": 16, "train_subset": 64, "test_subset": 32,
                           "roots": {"fashion_mnist": str(shared_fashion_root)}}}
    metrics = tmp_path / "results" / "metrics.csv"
    argv = ["train", "--run-config", json.dumps(run_config), "--dataset", "fashion_mnist", "--seed", "1",
            "--profile", "test", "--output-dir", str(tmp_path / "run"), "--metrics", str(metrics)]
    assert cli.main(argv) == 0
    assert metrics.read_text() == (tmp_path / "run" / "metrics.csv").read_text()
    assert "seed" in metrics.read_text().splitlines()[0]
    assert cli.main([*argv, "--model", "resnet34_cifar"]) == 2
    assert "leave out --model" in capsys.readouterr().err
