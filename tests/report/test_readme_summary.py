"""The README's verdict summary is generated from the committed claims.csv and cannot drift from it."""

from pathlib import Path

import pandas as pd
import pytest

from replication.report import readme_summary

ROOT = Path(__file__).resolve().parents[2]


def test_committed_readme_block_matches_the_committed_evidence():
    text = (ROOT / "README.md").read_text()
    block = readme_summary.summary_block(ROOT / "results" / "evidence")
    assert readme_summary.replace_block(text, block) == text, (
        "README's verdict summary drifted: python -m replication.report.readme_summary README.md results/evidence")


def test_block_says_only_what_the_claims_table_says(tmp_path):
    rows = [{"id": "a", "source": "Table 1", "statement": "A is faster", "verdict": "reproduced",
             "standing": "evidence", "effect": 1.2, "ci_low": 1.1, "ci_high": 1.3, "n_seeds": None, "paper": "1.2x",
             "dataset": "",
             "scope": "cpu", "evidence_csv": "speed/pairs.csv", "rule": "r", "note": "", "device": "cpu",
             "profile": "p"},
            {"id": "b", "source": "Table 1", "statement": "B on ImageNet", "verdict": "not run in this profile",
             "standing": "evidence", "effect": None, "ci_low": None, "ci_high": None, "n_seeds": None, "paper": "",
             "dataset": "", "scope": "", "evidence_csv": "", "rule": "r", "note": "needs ImageNet", "device": "",
             "profile": "p"}]
    pd.DataFrame(rows).to_csv(tmp_path / "claims.csv", index=False)
    (tmp_path / "speed").mkdir()
    pd.DataFrame([{"device": "cpu", "device_name": "Test CPU", "threads": 1, "dtype": "float32", "batch_size": batch,
                   "suite_commit": "abcdef0123456"} for batch in (8, 16, 1)]).to_csv(tmp_path / "speed" / "pairs.csv",
                                                                                  index=False)
    block = readme_summary.summary_block(tmp_path)
    assert "reproduced 1, not run in this profile 1" in block
    assert "A is faster" in block and "B on ImageNet" not in block  # decided rows only; the rest counted
    assert "Test CPU" in block and "1 thread(s)" in block and "abcdef0123" in block
    assert "batch 1, 8, 16." in block  # sizes by value, not as text
    with pytest.raises(ValueError, match="verdicts:start"):
        readme_summary.replace_block("no markers", block)
