"""Plan-time checks of the workflow config (check_config): every value that reaches a shell command
or a constructor is vetted before any job starts, with its key named. In-process and fast; one slow
test runs them through `snakemake -n`."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from replication.workflow_steps import check_config, check_launcher

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def _small_config(**changes):
    """The embedded config with few runs (each run's model is built on the meta device by the check)."""
    config = copy.deepcopy(EMBEDDED)
    keep = ("resnet34", "mobilenetv2", "mobilenetv1", "resnet18", "resnet18_sparse")
    config["runs"] = {name: spec for name, spec in config["runs"].items() if name in keep}
    config["experiments"].update(sota=["resnet34"], depth_study=[], table3=[], imagenet_sota=[])
    config["experiments"]["finetune"]["bases"] = ["resnet18"]
    config["ablation"]["sweeps"] = {"width": [16]}
    for dotted, value in changes.items():
        target = config
        *parents, key = dotted.split(".")
        for parent in parents:
            target = target[parent]
        target[key] = value
    return config


def test_the_small_config_passes():
    check_config(_small_config())


@pytest.mark.parametrize("changes, shown", [
    ({"training.launcher": "rm -rf"}, "training.launcher: 'rm -rf' is not a launcher"),
    ({"training.launcher": "torchrun --nproc_per_node 2; rm -rf ~"}, "is not a launcher"),
    ({"training.launcher": "torchrun --bogus 2"}, "torchrun refuses its options (unrecognized arguments: --bogus)"),
    ({"training.launcher": "torchrun other_script.py"}, "'other_script.py' is not a torchrun option"),
    ({"ablation.base.model_kwargs": {"garbage": 1}}, "ablation.base.model_kwargs.garbage: rmnet26x3_32_cifar has "
                                                     "no such constructor argument"),
    ({"ablation.sweeps": {"group_width": [5]}}, "ablation.sweeps.group_width[0] (5): rmnet26x3_32_cifar cannot be "
                                                "built"),
    ({"runs.resnet34.model_kwargs": {"chanels": [8, 16, 32, 64]}}, "runs.resnet34.model_kwargs.chanels: "
                                                                    "resnet34_cifar has no such constructor argument"),
    ({"runs.resnet34.model_kwargs": {"channels": 8}}, "runs.resnet34.model_kwargs.channels: 8 is not of the type"),
    ({"runs.resnet34.model_kwargs": {"num_classes": 10}}, "runs.resnet34.model_kwargs.num_classes: set by the run "
                                                          "itself"),
    ({"data.train_subset": 32}, "data.train_subset: 32 images are fewer than one batch of 64, so an epoch would "
                                "train no step (batch_size of runs.resnet34"),
    ({"training.overrides": {"lr": float("inf")}}, "training recipe: lr must be a finite number >= 0, got inf"),
])
def test_a_bad_value_is_named_before_any_job(changes, shown):
    with pytest.raises(ValueError) as error:
        check_config(_small_config(**changes))
    assert shown in str(error.value)


def test_a_run_name_the_wildcards_cannot_match_is_named():
    config = _small_config()
    config["runs"]["res-net34"] = config["runs"].pop("resnet34")
    config["experiments"]["sota"] = ["res-net34"]
    with pytest.raises(ValueError, match=r"runs\.res-net34: a run name may hold letters, digits and '_' only .* "
                                         r"rename it, e.g. 'res_net34'"):
        check_config(config)


def test_a_subset_that_fills_a_batch_per_process_passes_and_one_that_does_not_fails():
    check_config(_small_config(**{"data.train_subset": 64}))
    with pytest.raises(ValueError, match="fewer than one batch"):  # 2 processes: 32 images each, batch 32 each
        check_config(_small_config(**{"data.train_subset": 63, "training.launcher": "torchrun --nproc_per_node 2"}))


@pytest.mark.parametrize("launcher", ["python", "torchrun", "torchrun --nproc_per_node 4",
                                      "torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d"])
def test_launchers_the_workflow_runs_pass(launcher):
    assert check_launcher(launcher) is None


def test_the_wildcard_pattern_is_the_checks():
    from replication.workflow_steps import RUN_NAME

    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert f'run="{RUN_NAME.pattern}"' in common and f'base="{RUN_NAME.pattern}"' in common


@pytest.mark.slow
@pytest.mark.parametrize("changes, named", [
    ({"training.launcher": "rm -rf"}, "rm -rf"),
    ({"experiments.pruning.thresholds": [0.1, 5.0]}, "5.0"),
    ({"data.train_subset": 32}, "train_subset"),
    ({"ablation.base.model_kwargs": {"garbage": 1}}, "garbage"),
])
def test_the_dry_run_stops_with_the_key(tmp_path, changes, named):
    pytest.importorskip("snakemake")
    config = copy.deepcopy(EMBEDDED)
    for dotted, value in changes.items():
        target = config
        *parents, key = dotted.split(".")
        for parent in parents:
            target = target[parent]
        target[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and named in result.stdout + result.stderr
