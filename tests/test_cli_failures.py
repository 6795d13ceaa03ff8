"""Probes of a careless or hostile user on the command line: each ends in one line naming the file, key
or value (exit 2) or in a correct result, and nothing is destroyed or half-written."""

import errno
import hashlib
import json

import pytest
import torch

from replication import cli, zoo
from replication.train.checkpoint import ModelSpec

NARROW = {"channels": [8, 16, 32, 64], "stem_width": 8}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert "\x1b[" not in err
    return lines[0]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def run_checkpoint(tmp_path):
    """A checkpoint as `train` writes it (small: a narrow CIFAR ResNet 18 on 1-channel 16x16 images)."""
    spec = ModelSpec(model="resnet18_cifar", num_classes=10, in_chans=1, model_kwargs=NARROW,
                     dataset="fashion_mnist", image_size=16)
    model = spec.build()
    path = tmp_path / "checkpoint.pt"
    torch.save({"model_name": spec.model, "model_spec": spec.as_dict(), "epoch": 0, "model": model.state_dict(),
                "optimizer": {"state": {}}, "rng": {}}, path)
    return path


def test_convert_refuses_to_write_over_its_own_checkpoint(run_checkpoint, capsys, monkeypatch):
    before = _digest(run_checkpoint)
    monkeypatch.setattr(cli.rm, "convert", lambda *a, **k: pytest.fail("converted before checking --output"))
    assert cli.main(["convert", "--checkpoint", str(run_checkpoint), "--output", str(run_checkpoint)]) == 2
    line = _one_error_line(capsys)
    assert f"refusing to write {run_checkpoint}: it is the file given to --checkpoint" in line
    same_file = run_checkpoint.parent / "." / "sub" / ".." / run_checkpoint.name
    (run_checkpoint.parent / "sub").mkdir()
    assert cli.main(["convert", "--checkpoint", str(run_checkpoint), "--output", str(same_file)]) == 2
    assert "--checkpoint" in _one_error_line(capsys) and _digest(run_checkpoint) == before


def test_throughput_refuses_to_write_over_its_predictions(tmp_path, capsys):
    predictions = tmp_path / "predicted.csv"
    predictions.write_text("model\nx\n")
    assert cli.main(["throughput", "--device", "cpu", "--predictions", str(predictions), "--output",
                     str(predictions)]) == 2
    assert "it is the file given to --predictions" in _one_error_line(capsys)
    assert predictions.read_text() == "model\nx\n"


@pytest.mark.parametrize("argv, shown", [
    (["train", "--model", "resnet18_cifar", "--output-dir", "x", "--device", "cdua"], "unknown device 'cdua'"),
    (["train", "--model", "resnet18_cifar", "--output-dir", "x", "--lr", "inf"], "finite number >= 0, got inf"),
    (["train", "--model", "resnet18_cifar", "--output-dir", "x", "--lr", "nan"], "got nan"),
    (["throughput", "--device", "gpu0"], "unknown device 'gpu0'"),
])
def test_bad_device_and_learning_rate_are_usage_errors(argv, shown, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and shown in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_a_device_this_machine_lacks_is_named(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "resnet18_cifar", "--output-dir", "x", "--device", "cuda"])
    assert "device 'cuda': CUDA is not available" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--input-size", "100000"], ["--input-size", "32", "--batch-size", "100000000"]],
                         ids=["input-size", "batch-size"])
def test_an_absurd_check_batch_is_refused_before_allocating(argv, capsys, monkeypatch):
    monkeypatch.setattr(cli.rm, "convert", lambda *a, **k: pytest.fail("converted an absurd batch"))
    assert cli.main(["convert", "--model", "resnet18_cifar", "--model-kwargs", '{"channels": [8, 16, 32, 64]}',
                     *argv]) == 2
    line = _one_error_line(capsys)
    assert "out of memory" in line and "GiB available" in line and argv[1] in line


@pytest.mark.parametrize("command", ["convert", "train"])
@pytest.mark.parametrize("kwargs, shown", [
    ('{"chanels": [8, 16, 32, 64]}', "--model-kwargs.chanels: resnet18_cifar has no such constructor argument "
                                     "(did you mean channels"),
    ('{"channels": "wide"}', '--model-kwargs.channels: "wide" is not of the type resnet18_cifar expects'),
    ('{"stem_width": 2.5}', "--model-kwargs.stem_width: 2.5 is not of the type"),
], ids=["unknown-key", "wrong-type", "float-for-int"])
def test_model_kwargs_are_checked_against_the_constructor(command, kwargs, shown, tmp_path, capsys):
    argv = (["convert", "--model", "resnet18_cifar", "--input-size", "16"] if command == "convert" else
            ["train", "--model", "resnet18_cifar", "--device", "cpu", "--output-dir", str(tmp_path / "run")])
    assert cli.main([*argv, "--model-kwargs", kwargs]) == 2
    assert shown in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_zoo_create_turns_a_constructor_type_error_into_one_message():
    with pytest.raises(zoo.ModelKwargsError, match=r"model 'resnet18_cifar' cannot be built with \{\"foo\": 1\}"):
        zoo.create("resnet18_cifar", foo=1)


def _spec_checkpoint(run_checkpoint, **changes):
    payload = torch.load(run_checkpoint, weights_only=True)
    payload["model_spec"].update(changes)
    torch.save(payload, run_checkpoint)
    return run_checkpoint


@pytest.mark.parametrize("changes, shown", [
    ({"num_classes": "ten"}, "num_classes='ten' (expected a positive integer)"),
    ({"in_chans": 0}, "in_chans=0 (expected a positive integer)"),
    ({"model_kwargs": [1, 2]}, "model_kwargs=[1, 2]"),
    ({"model": 7}, "model=7"),
])
def test_a_model_spec_with_bad_fields_is_one_error(run_checkpoint, capsys, changes, shown):
    path = _spec_checkpoint(run_checkpoint, **changes)
    assert cli.main(["convert", "--checkpoint", str(path)]) == 2
    line = _one_error_line(capsys)
    assert f"checkpoint {path}: invalid model_spec field(s): {shown}" in line


def test_a_model_spec_from_a_newer_version_loads_with_a_warning(run_checkpoint, capsys, tmp_path):
    path = _spec_checkpoint(run_checkpoint, width_multiplier=2, quantized=False)
    output = tmp_path / "plain.pt"
    assert cli.main(["convert", "--checkpoint", str(path), "--output", str(output)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: ")
    assert "does not know (written by a newer version?), ignored: quantized, width_multiplier" in err
    assert output.is_file()


def test_a_state_dict_without_batchnorm_step_counters_is_accepted(tmp_path, capsys):
    model = zoo.create("resnet18_cifar", num_classes=7, **NARROW)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "trimmed.pt"
    torch.save(state, path)
    assert cli.main(["convert", "--model", "resnet18_cifar", "--model-kwargs", json.dumps(NARROW), "--num-classes",
                     "7", "--checkpoint", str(path), "--input-size", "16"]) == 0


def test_a_pickled_full_model_is_one_line(tmp_path, capsys):
    path = tmp_path / "full_model.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), path)
    assert cli.main(["convert", "--model", "torchvision:resnet18", "--checkpoint", str(path)]) == 2
    assert str(path) in _one_error_line(capsys)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_convert_leaves_the_old_output(run_checkpoint, tmp_path, capsys, monkeypatch):
    output = tmp_path / "plain.pt"
    output.write_bytes(b"the previous plain network")
    monkeypatch.setattr(torch, "save", _disk_full)
    assert cli.main(["convert", "--checkpoint", str(run_checkpoint), "--output", str(output)]) == 2
    line = _one_error_line(capsys)
    assert f"disk full: cannot write {output}" in line and "it is unchanged" in line
    assert output.read_bytes() == b"the previous plain network"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "plain.pt"]


def test_a_full_disk_during_counts_is_one_line(tmp_path, capsys, monkeypatch):
    import pandas as pd

    from replication.atomic_io import write_csv_atomic
    from replication.experiments import model_counts

    monkeypatch.setattr(model_counts, "run", lambda path, rows: write_csv_atomic(pd.DataFrame({"a": [1]}), path))
    monkeypatch.setattr(pd.DataFrame, "to_csv", _disk_full)
    out = tmp_path / "counts"
    assert cli.main(["counts", "--output-dir", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "disk full: cannot write" in line and "model_counts.csv" in line and "nothing was written" in line
    assert list(out.iterdir()) == []
