"""The convert command line, checkpoint errors, and saving / loading plain networks."""

import subprocess
import sys

import pytest
import torch
import torchvision

from replication import cli, rm
from replication.checkpoint_files import load_weights
from replication.rm.file_io import CheckpointError
from replication.rm.plain_io import load_plain, save_plain
from replication.rm.verify import randomize_batchnorm_


def test_convert_command_saves_a_loadable_equivalent_model(tmp_path, capsys):
    model = torchvision.models.resnet18(num_classes=7)
    randomize_batchnorm_(model, seed=5)
    checkpoint = tmp_path / "resnet18.pth"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    output = tmp_path / "out" / "plain.pt"
    code = cli.main(["convert", "--model", "torchvision:resnet18", "--num-classes", "7", "--checkpoint",
                     str(checkpoint), "--input-size", "32", "--output", str(output)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "max relative error" in printed and "BatchNorm layers" in printed
    plain = load_plain(output)
    x = torch.randn(2, 3, 32, 32)
    assert rm.max_error(model.eval(), plain, x)["max_rel"] <= 1e-5


def test_python_dash_m_entry_point_reports_missing_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, "-m", "replication", "convert", "--model", "torchvision:resnet18",
                             "--checkpoint", str(tmp_path / "nope.pth")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "checkpoint file not found" in result.stderr and "nope.pth" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_checkpoint_gets_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00not a checkpoint")
    assert cli.main(["convert", "--model", "torchvision:resnet18", "--checkpoint", str(bad)]) == 2
    assert "is not a PyTorch checkpoint" in capsys.readouterr().err


def test_truncated_checkpoint_gets_one_clear_error(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(torchvision.models.resnet18().state_dict(), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        load_weights(torchvision.models.resnet18(), truncated)


def test_flipped_bytes_in_tensor_data_are_caught_for_convert_and_resume(tmp_path, capsys):
    """torch.load does not check the zip CRCs: a flipped byte in a tensor would load silently."""
    from replication.train.checkpoint import load_training_checkpoint

    good = tmp_path / "good.pth"
    torch.save({"model_name": "resnet18", "epoch": 0, "model": torchvision.models.resnet18().state_dict()}, good)
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor data, far from the zip headers
    flipped = tmp_path / "flipped.pth"
    flipped.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC-32"):
        load_training_checkpoint(flipped, "resnet18")
    assert cli.main(["convert", "--model", "torchvision:resnet18", "--checkpoint", str(flipped)]) == 2
    assert "CRC-32" in capsys.readouterr().err


def test_checkpoint_of_another_architecture_names_the_keys(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(CheckpointError, match="unexpected keys: layer1.2"):
        load_weights(torchvision.models.resnet18(), path)


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torchvision.models.resnet18(), path)  # a whole module, not weights
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_weights(torchvision.models.resnet18(), path)


def test_unknown_model_name_suggests_close_names(capsys):
    assert cli.main(["convert", "--model", "resnt18"]) == 2
    assert "Did you mean" in capsys.readouterr().err


@pytest.mark.parametrize("builder", [torchvision.models.resnet18, torchvision.models.mobilenet_v2])
@pytest.mark.parametrize("downsample", rm.DOWNSAMPLE_TYPES)
def test_plain_model_round_trips_through_file(tmp_path, builder, downsample):
    model = randomize_batchnorm_(builder(num_classes=10), seed=1).eval()
    plain = rm.convert(model, downsample)
    path = save_plain(plain, tmp_path / "plain.pt")
    loaded = load_plain(path)
    x = torch.randn(1, 3, 32, 32) * 5
    assert torch.equal(loaded(x), plain(x))
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_convert_writes_nothing_when_the_check_fails_or_is_nan(tmp_path, monkeypatch, capsys):
    """A NaN output must fail the tolerance check (max(0.0, nan) is 0.0), and a failed check must
    leave nothing on disk."""
    output = tmp_path / "plain.pt"
    monkeypatch.setattr(rm, "max_error", lambda *args, **kwargs: {"max_abs": float("nan"), "max_rel": float("nan"),
                                                                   "reference_scale": 1.0, "num_inputs": 1.0,
                                                                   "finite": 0.0})
    code = cli.main(["convert", "--model", "torchvision:resnet18", "--input-size", "32", "--output", str(output)])
    assert code == 1 and not output.exists()
    assert "nothing written" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_atomic_writers_refuse_a_target_that_is_not_a_regular_file(tmp_path, kind):
    import os

    import pandas as pd

    from replication.atomic_io import write_csv_atomic, write_text_atomic
    from replication.rm.file_io import save_atomic

    target = tmp_path / "target"
    if kind == "symlink":
        (tmp_path / "elsewhere").write_text("keep me")
        target.symlink_to(tmp_path / "elsewhere")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    for write in (lambda: write_csv_atomic(pd.DataFrame({"a": [1]}), target), lambda: write_text_atomic("x", target),
                  lambda: save_atomic({"a": torch.ones(1)}, target)):
        with pytest.raises(FileExistsError, match="refusing to write"):
            write()
    assert target.is_symlink() if kind == "symlink" else (target.is_fifo() if kind == "fifo" else target.is_dir())


def test_max_error_restores_every_submodule_flag():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5), torch.nn.Linear(3, 3))
    model.train()
    model[1].eval()  # a mixed model, on purpose
    rm.max_error(model, model, torch.randn(2, 3))
    assert [m.training for m in model] == [True, False, True] and model.training


# Bad numbers and bad output paths: one message, exit code 2, before any work.

@pytest.mark.parametrize("argv, flag", [
    (["convert", "--input-size", "0"], "--input-size"),
    (["convert", "--input-size", "-32"], "--input-size"),
    (["convert", "--batch-size", "0"], "--batch-size"),
    (["throughput", "--batch-size", "0"], "--batch-size"),
    (["throughput", "--iters", "0"], "--iters"),
    (["train", "--model", "resnet18_cifar", "--output-dir", "x", "--batch-size", "0"], "--batch-size"),
    (["train", "--model", "resnet18_cifar", "--output-dir", "x", "--epochs", "-1"], "--epochs"),
    (["train", "--model", "resnet18_cifar", "--output-dir", "x", "--model-kwargs", "{channels: 8}"], "--model-kwargs"),
    (["convert", "--model-kwargs", "[1, 2]"], "--model-kwargs"),
])
def test_bad_numbers_end_in_one_usage_error(argv, flag, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert f"argument {flag}" in err and "Traceback" not in err


def test_convert_output_that_is_a_directory_fails_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rm, "convert", lambda *a, **k: pytest.fail("converted before checking --output"))
    assert cli.main(["convert", "--input-size", "32", "--output", str(tmp_path)]) == 2
    assert f"refusing to write {tmp_path}: it exists and is a directory" in capsys.readouterr().err


def test_convert_output_under_a_file_fails_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rm, "convert", lambda *a, **k: pytest.fail("converted before checking --output"))
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "sub" / "plain.pt"
    assert cli.main(["convert", "--input-size", "32", "--output", str(target)]) == 2
    assert f"cannot write {target}: {tmp_path / 'file'} is a file, not a folder" in capsys.readouterr().err


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
                    reason="root may write into a read-only folder")
def test_convert_output_in_a_read_only_folder_fails_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rm, "convert", lambda *a, **k: pytest.fail("converted before checking --output"))
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    assert cli.main(["convert", "--input-size", "32", "--output", str(folder / "plain.pt")]) == 2
    assert "does not accept new files" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_read_only_filesystem_is_refused_even_for_root():
    """/proc takes no new files, whoever asks: the check creates a file rather than trusting os.access."""
    from replication.atomic_io import TargetNotWritableError, check_writable

    with pytest.raises(TargetNotWritableError, match="/proc does not accept new files"):
        check_writable("/proc/plain.pt")


@pytest.mark.parametrize("command", ["train", "counts"])
def test_output_dir_that_is_a_file_fails_before_any_work(tmp_path, capsys, command):
    target = tmp_path / "taken"
    target.write_text("x")
    argv = ["train", "--model", "resnet18_cifar"] if command == "train" else ["counts"]
    assert cli.main(argv + ["--output-dir", str(target)]) == 2
    assert f"cannot write into {target}: it exists and is not a folder" in capsys.readouterr().err
