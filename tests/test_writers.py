"""The one atomic writer behind every results file, checkpoint and ONNX export."""

import pytest
import torch
from torch import nn

from replication.rm.file_io import write_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old\n")

    def crash(tmp):
        tmp.write_text("half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, crash)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_write_replaces_a_regular_file_and_refuses_a_symlink(tmp_path):
    target = tmp_path / "a.txt"
    write_atomic(target, lambda tmp: tmp.write_text("one"))
    write_atomic(target, lambda tmp: tmp.write_text("two"))
    assert target.read_text() == "two"
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    with pytest.raises(FileExistsError, match="symlink"):
        write_atomic(link, lambda tmp: tmp.write_text("three"))
    assert target.read_text() == "two" and link.is_symlink()


def test_onnx_export_leaves_the_callers_model_as_it_was(tmp_path):
    pytest.importorskip("onnxscript")
    from replication.deploy.onnx import export

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).double().train()
    export(model, (3, 8, 8), tmp_path / "plain.onnx")
    assert (tmp_path / "plain.onnx").stat().st_size > 0
    assert next(model.parameters()).dtype == torch.float64 and model.training
