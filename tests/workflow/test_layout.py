"""The results layout (replication/layout.py) is the one statement of where results live: the Snakefile
loads it without torch, and every file the verdicts read is written by some rule of the workflow."""

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from replication import layout

ROOT = Path(__file__).resolve().parents[2]


def test_layout_imports_the_standard_library_only():
    """The scheduler loads layout.py by path; an import of torch (or the package) would load torch there."""
    tree = ast.parse((ROOT / "replication" / "layout.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {"." * node.level + (node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "collections", "typing"}, imported


# The paper plan has every rule and ImageNet; the evidence plan other fine-tuning bases (slow tier).
@pytest.mark.parametrize("configfile", ["config/paper.yaml",
                                        pytest.param("config/evidence.yaml", marks=pytest.mark.slow)])
def test_every_file_a_verdict_reads_is_written_by_a_rule(tmp_path, configfile):
    """Dry-run the workflow with every verdict input as a target, under a results name with no files:
    a path no rule writes stops Snakemake ("no rule to produce"), where the verdict would only say
    "not run in this profile"."""
    pytest.importorskip("snakemake")
    config = yaml.safe_load((ROOT / configfile).read_text())
    overlay = tmp_path / "name.yaml"
    overlay.write_text(yaml.safe_dump({"results_name": "layout_check"}))
    from replication.launch.plan_checks import write_stand_ins

    standins = tmp_path / "data.yaml"  # the plan-time checks want the paper's data where the config says
    standins.write_text(yaml.safe_dump(write_stand_ins(str(tmp_path / "data"))))
    inputs = layout.verdict_inputs(config)
    assert layout.EXACTNESS in inputs and layout.SPEED_PAIRS in inputs
    targets = [f"{layout.results_dir('layout_check')}/{path}" for path in inputs]
    env = {**os.environ, "RMNET_NODE_CPUS": "64", "RMNET_NODE_GPUS": "8"}  # a node of the paper profile's size
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--workflow-profile",
                             "profiles/paper", "--configfile", configfile, str(overlay), str(standins), "--",
                             *targets], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_hand_run_commands_write_under_results_manual():
    from replication import cli

    parser = cli.build_parser()
    assert str(parser.parse_args(["counts"]).output_dir) == layout.MANUAL_COUNTS
    # throughput writes a CSV for one model only when asked; for the paper's rows its default is the manual one
    assert parser.parse_args(["throughput"]).output is None
    assert "layout.MANUAL_THROUGHPUT" in inspect.getsource(cli.run_throughput)
    assert str(parser.parse_args(["cost-model"]).output) == layout.MANUAL_PREDICTED
    for name in layout.RESERVED_NAMES:
        schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
        assert name in schema["properties"]["results_name"]["not"]["enum"]
