"""Every results CSV records what produced it: the suite's commit and the package versions."""

import pandas as pd

from replication import provenance
from replication.atomic_io import append_rows_atomic, write_csv_atomic


def test_results_rows_carry_commit_and_versions(tmp_path):
    frame = pd.DataFrame({"model": ["a", "b"], "top1": [1.0, 2.0]})
    written = pd.read_csv(write_csv_atomic(frame, tmp_path / "r.csv"), keep_default_na=False)
    for package in ("torch", "torchvision", "timm"):
        assert (written[f"{package}_version"] != "").all()
    assert "onnxruntime_version" in written
    assert written["torch_version"].iloc[0] == provenance.provenance()["torch_version"]
    commit = written["suite_commit"].iloc[0]
    assert commit == "unknown" or len(commit.removesuffix("+dirty")) == 40
    assert list(frame.columns) == ["model", "top1"]  # the caller's frame is not modified


def test_existing_provenance_is_kept(tmp_path):
    """Gathering per-seed CSVs must not restamp them with the gathering process's commit."""
    path = tmp_path / "r.csv"
    append_rows_atomic([{"x": 1, "suite_commit": "abc", "torch_version": "1.0"}], path)
    append_rows_atomic([{"x": 2}], path)
    written = pd.read_csv(path, dtype=str)
    assert written["suite_commit"].tolist()[0] == "abc" and written["torch_version"].tolist()[0] == "1.0"
    assert written["suite_commit"].tolist()[1] == provenance.provenance()["suite_commit"]  # new rows stamped


def test_outside_a_checkout_the_commit_is_unknown(tmp_path, monkeypatch):
    provenance.suite_commit.cache_clear()
    monkeypatch.setattr(provenance, "_git", lambda root, *args: "")
    try:
        assert provenance.suite_commit() == "unknown"
    finally:
        provenance.suite_commit.cache_clear()
